/**
 * umount.fusegate: what umount(8) runs for a sandboxed mount, because the
 * helper recorded `helper=fusegate` in utab.
 *
 *   umount.fusegate DIR [-flnrv] [-N NS] [-t TYPE]
 *
 * A plain `fuse` mount gets no DESTROY request from the kernel: umount(2)
 * returns while the FUSE server may still be writing its last blocks (fuse2fs
 * closes the filesystem, ntfs-3g flushes its caches) after it sees the
 * connection end. Someone who pulls the stick when umount(8) returns could
 * lose that data. So this helper unmounts with `umount -i` (which also
 * updates utab) and then waits until the service instance's processes have
 * exited: when umount(8) returns, the server has finished writing.
 */
import { FusegateError, MountExit } from '../lib/errors';
import { VERSION } from '../lib/version';
import { readMountinfo } from '../lib/mountinfo';
import { run } from '../lib/native';
import { instanceProcesses } from './service-instance';
import * as fs from 'node:fs';

export const UMOUNT_HELP = `Usage: umount.fusegate DIR [-flnrv] [-N NS] [-t TYPE]

Unmount a filesystem that mount.fusegate mounted through a sandboxed FUSE
server, and wait until that server has finished writing and exited, so the
device is safe to remove when umount(8) returns. umount(8) runs this helper
for such mounts by itself (utab records helper=fusegate); run umount(8).

Options (as umount(8) passes them):
  -l   lazy unmount; does not wait, since files may still be open
  -f   force
  -n   do not update utab
  -r   accepted for compatibility (passed on)
  -v   say what happens
  -t   ignored
  -h, --help     show this text
  -V, --version  print the version

Environment:
  FUSEGATE_TIMEOUT   seconds to wait for the server to exit (default 30)

Exit status: 0 unmounted and the server exited; umount(8)'s status if the
unmount failed; 32 if the server was still running when the time ran out.`;

const UTAB = '/run/mount/utab';

function say(line: string): void {
  process.stderr.write(`umount.fusegate: ${line}\n`);
}

/** x-fusegate.unit= of the utab entry for `target`, if the helper recorded one. */
function recordedUnit(target: string): string | null {
  try {
    for (const line of fs.readFileSync(UTAB, 'utf8').split('\n')) {
      if (!line.split(' ').includes(`TARGET=${target}`)) continue;
      const m = /(?:^|[ ,=])x-fusegate\.unit=([^, ]+)/.exec(line);
      if (m) return m[1]!;
    }
  } catch {
    // no utab: nothing recorded
  }
  return null;
}

function alive(pid: number): boolean {
  return fs.existsSync(`/proc/${pid}`);
}

export async function runUmountHelper(argv: string[]): Promise<number> {
  const positional: string[] = [];
  const flags: string[] = [];
  let verbose = false;
  let lazy = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-h' || a === '--help') {
      process.stdout.write(UMOUNT_HELP + '\n');
      return MountExit.SUCCESS;
    }
    if (a === '-V' || a === '--version') {
      process.stdout.write(`umount.fusegate from fusegate ${VERSION}\n`);
      return MountExit.SUCCESS;
    }
    if (a === '-t') i++;
    else if (a === '-N') {
      say('-N is not supported: run umount(8) with -N');
      return MountExit.USAGE;
    } else if (/^-[flnrv]+$/.test(a)) {
      for (const c of a.slice(1)) {
        if (c === 'v') verbose = true;
        else {
          if (c === 'l') lazy = true;
          flags.push(`-${c}`);
        }
      }
    } else if (a.startsWith('-')) {
      say(`unknown option ${a}; see 'umount.fusegate --help'`);
      return MountExit.USAGE;
    } else positional.push(a);
  }
  if (positional.length !== 1) {
    say('exactly one DIR is required');
    return MountExit.USAGE;
  }
  if (process.getuid!() !== 0) throw new FusegateError('only root may unmount sandboxed mounts for now', { exitCode: MountExit.USAGE });
  const target = positional[0]!;
  if (!readMountinfo().some((m) => m.mountpoint === target)) {
    say(`${target}: not mounted`);
    return MountExit.FAILURE;
  }
  const unit = recordedUnit(target);
  const servers = unit ? instanceProcesses(unit) : [];

  const status = await run(process.env.FUSEGATE_UMOUNT_BIN ?? '/bin/umount', ['umount', '-i', ...flags, target]);
  if (status.code !== 0) return status.signal ? MountExit.SYSTEM : status.code;
  if (lazy || servers.length === 0) return MountExit.SUCCESS;

  const timeoutS = Number(process.env.FUSEGATE_TIMEOUT) > 0 ? Number(process.env.FUSEGATE_TIMEOUT) : 30;
  const until = Date.now() + timeoutS * 1000;
  const t0 = Date.now();
  while (servers.some(alive)) {
    if (Date.now() > until) {
      say(`${target} is unmounted, but ${unit} is still running after ${timeoutS} s; do not remove the device yet (systemctl status ${unit})`);
      return MountExit.FAILURE;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  if (verbose) say(`${target} unmounted; ${unit} finished after ${Date.now() - t0} ms`);
  return MountExit.SUCCESS;
}
