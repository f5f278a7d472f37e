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
import { MountExit } from '../lib/errors';
import { instanceOfMount, instanceProcesses } from '../lib/instance';
import { mountAt, readMountinfo } from '../lib/mountinfo';
import { run } from '../lib/native';
import { writeOut } from '../lib/output';
import { requireRoot } from '../lib/root';
import { timeoutMs, TIMEOUTS } from '../lib/timeouts';
import * as fs from 'node:fs';
import { helperWords, UsageError, type HelperWord } from './args';

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

Environment:
  FUSEGATE_TIMEOUT   seconds to wait for the server to exit (default ${TIMEOUTS.umountWait.defaultMs / 1000})

Exit status: 0 unmounted and the server exited; umount(8)'s status if the
unmount failed; 32 if the server was still running when the time ran out.`;

function say(line: string): void {
  writeOut(2, `umount.fusegate: ${line}\n`);
}

function alive(pid: number): boolean {
  return fs.existsSync(`/proc/${pid}`);
}

export async function runUmountHelper(argv: string[]): Promise<number> {
  const positional: string[] = [];
  const flags: string[] = [];
  let verbose = false;
  let lazy = false;
  let words: HelperWord[];
  try {
    words = helperWords(argv, 'flnrv', 'tN', false);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    say(`${e.message}; see 'umount.fusegate --help'`);
    return MountExit.USAGE;
  }
  for (const w of words) {
    if (w.kind === 'help') {
      writeOut(1, UMOUNT_HELP + '\n');
      return MountExit.SUCCESS;
    }
    if (w.kind === 'positional') positional.push(w.value);
    else if (w.kind === 'value') {
      // -t is ignored: umount(8) found us by the type already.
      if (w.letter === 'N') {
        say('-N is not supported: run umount(8) with -N');
        return MountExit.USAGE;
      }
    } else if (w.kind === 'flag') {
      if (w.letter === 'v') verbose = true;
      else {
        if (w.letter === 'l') lazy = true;
        flags.push(`-${w.letter}`);
      }
    }
  }
  if (positional.length !== 1) {
    say('exactly one DIR is required');
    return MountExit.USAGE;
  }
  requireRoot('only root may unmount sandboxed mounts for now', undefined);
  // Read before unmounting: a bad value is a usage error, not a surprise afterwards.
  const timeoutS = timeoutMs('umountWait') / 1000;
  const target = positional[0]!;
  const mount = mountAt(readMountinfo(), target);
  if (mount === null) {
    say(`${target}: not mounted`);
    return MountExit.FAILURE;
  }
  const unit = instanceOfMount(mount)?.unit ?? null;
  const servers = unit ? instanceProcesses(unit) : [];

  const status = await run(process.env.FUSEGATE_UMOUNT_BIN ?? '/bin/umount', ['umount', '-i', ...flags, target]);
  if (status.code !== 0) return status.signal ? MountExit.SYSTEM : status.code;
  if (lazy || servers.length === 0) return MountExit.SUCCESS;

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
