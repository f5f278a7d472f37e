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
import { readMountinfo } from '../lib/mountinfo';
import * as native from '../lib/native';
import { run } from '../lib/native';
import { abortConnection } from './fusectl';
import { instanceProcesses } from './service-instance';
import * as fs from 'node:fs';
import { constants } from 'node:os';

const SIGKILL = constants.signals.SIGKILL;

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
  FUSEGATE_TIMEOUT   seconds to wait for the unmount and the server's exit
                     (default 30); an unmount still stuck then (a server
                     that never answers the kernel's DESTROY) is ended by
                     aborting the FUSE connection and killing the server

Exit status: 0 unmounted and the server exited; umount(8)'s status if the
unmount failed; 32 if the server was still running when the time ran out,
or the unmount had to be forced.`;

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

/** Seconds umount.fusegate may take (FUSEGATE_TIMEOUT, default 30). */
export function umountTimeoutS(): number {
  const s = Number(process.env.FUSEGATE_TIMEOUT);
  return Number.isFinite(s) && s > 0 ? s : 30;
}

/** After aborting a stuck unmount: how long the kernel and the killed server get to finish. */
export const ABORT_GRACE_MS = 3000;

/**
 * A pidfd per server process, opened before the unmount: from then on each
 * names that process and no later one that reuses its pid. A process that
 * exited already has nothing to wait for.
 */
function openPidfds(pids: number[]): number[] {
  const fds: number[] = [];
  for (const pid of pids) {
    try {
      fds.push(native.pidfdOpen(pid));
    } catch (err) {
      if (!(err instanceof native.SyscallError && err.code === 'ESRCH')) throw err;
    }
  }
  return fds;
}

/** Resolves true once every pidfd's process has exited, false if `ms` pass first. */
async function allExited(pidfds: number[], ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  for (const fd of pidfds) {
    try {
      await native.pollReadable(fd, until - Date.now());
    } catch (err) {
      if (err instanceof native.SyscallError && err.code === 'ETIMEDOUT') return false;
      throw err;
    }
  }
  return true;
}

/** The promise's value, or 'timeout' when `ms` pass first. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), Math.max(ms, 0));
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
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
  const top = readMountinfo().filter((m) => m.mountpoint === target).at(-1);
  if (top === undefined) {
    say(`${target}: not mounted`);
    return MountExit.FAILURE;
  }
  // The mount's device names its FUSE connection, should the unmount hang.
  const device = top.device;
  const unit = recordedUnit(target);
  const pidfds = openPidfds(unit ? instanceProcesses(unit) : []);
  try {
    const timeoutS = umountTimeoutS();
    const deadline = Date.now() + timeoutS * 1000;
    const t0 = Date.now();

    // Every block device mount is fuseblk: umount(2) sends DESTROY and waits,
    // uninterruptibly, for the server's reply. A server that never replies
    // would hold umount(8) (and us) forever. At the deadline the connection is
    // aborted (which fails the DESTROY, so the unmount completes) and the
    // server killed: it ignored the kernel, so what it had not written is lost
    // either way.
    //
    // Linux 6.14+ can instead time out FUSE requests by itself
    // (/proc/sys/fs/fuse/default_request_timeout), but only globally, for
    // every FUSE filesystem on the machine (sshfs on a slow link included),
    // and an unmodified server cannot ask for it per mount. So fusegate does
    // not set it; the deadline here covers the one wait that matters at
    // unmount, and the helper's own deadlines cover the mount.
    const umount = run(process.env.FUSEGATE_UMOUNT_BIN ?? '/bin/umount', ['umount', '-i', ...flags, target]);
    let status = await within(umount, deadline - Date.now());
    if (status === 'timeout') {
      const how = device === null ? 'gone' : abortConnection(device);
      for (const fd of pidfds) {
        try {
          native.pidfdSendSignal(fd, SIGKILL);
        } catch {
          // exited meanwhile
        }
      }
      status = await within(umount, ABORT_GRACE_MS);
      const what = how === 'aborted' ? 'aborted its FUSE connection' : how === 'no-fusectl' ? 'could not abort its FUSE connection (fusectl cannot be mounted)' : 'its FUSE connection was gone';
      const killed = pidfds.length > 0 ? ` and killed ${unit}` : '';
      if (status === 'timeout') {
        say(`${target}: the unmount did not finish within ${timeoutS} s; ${what}${killed}, and it is still stuck; do not remove the device`);
        return MountExit.FAILURE;
      }
      await allExited(pidfds, ABORT_GRACE_MS);
      say(`${target}: the FUSE server did not finish the unmount within ${timeoutS} s; ${what}${killed}; data it had not written is lost`);
      return status.code === 0 ? MountExit.FAILURE : status.signal ? MountExit.SYSTEM : status.code;
    }
    if (status.code !== 0) return status.signal ? MountExit.SYSTEM : status.code;
    if (lazy || pidfds.length === 0) return MountExit.SUCCESS;

    // A plain fuse mount's server may still be writing after umount(2): wait
    // for it, but do not kill it at the deadline, since that is the data the
    // wait protects; say the device is not safe to remove instead.
    if (!(await allExited(pidfds, deadline - Date.now()))) {
      say(`${target} is unmounted, but ${unit} is still running after ${timeoutS} s; do not remove the device yet (systemctl status ${unit})`);
      return MountExit.FAILURE;
    }
    if (verbose) say(`${target} unmounted; ${unit} finished after ${Date.now() - t0} ms`);
    return MountExit.SUCCESS;
  } finally {
    for (const fd of pidfds) fs.closeSync(fd);
  }
}
