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
import { VERSION } from '../lib/version';
import { instanceOfMount, instanceProcesses } from '../lib/instance';
import { mountAt, readMountinfo } from '../lib/mountinfo';
import * as native from '../lib/native';
import { run } from '../lib/native';
import { writeOut } from '../lib/output';
import { requireRoot } from '../lib/root';
import { timeoutMs, timeoutMsOrDefault, TIMEOUTS } from '../lib/timeouts';
import * as fs from 'node:fs';
import { constants } from 'node:os';
import { helperWords, UsageError, type HelperWord } from './args';
import { abortConnection } from './fusectl';
import { forwardUserUnmount } from './fstab-user';

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
  -h, --help     show this text
  -V, --version  print the version

Environment:
  FUSEGATE_TIMEOUT   seconds to wait for the unmount and the server's exit
                     (default ${TIMEOUTS.umountWait.defaultMs / 1000}); an unmount still stuck then (a server
                     that never answers the kernel's DESTROY) is ended by
                     aborting the FUSE connection and killing the server

Exit status: 0 unmounted and the server exited; umount(8)'s status if the
unmount failed; 32 if the server was still running when the time ran out,
or the unmount had to be forced.`;

function say(line: string): void {
  writeOut(2, `umount.fusegate: ${line}\n`);
}

/** Seconds umount.fusegate may take (FUSEGATE_TIMEOUT; the default for a bad value, which runUmountHelper reports). */
export function umountTimeoutS(): number {
  return timeoutMsOrDefault('umountWait') / 1000;
}

/** After aborting a stuck unmount: how long the kernel and the killed server get to finish. */
export const ABORT_GRACE_MS = TIMEOUTS.umountAbortGrace.defaultMs;

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
  let words: HelperWord[];
  try {
    words = helperWords(argv, 'flnrv', 'tN');
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
    if (w.kind === 'version') {
      writeOut(1, `umount.fusegate from fusegate ${VERSION}\n`);
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
  if (process.getuid!() !== 0 || process.geteuid!() !== 0) {
    // a user's fstab `user` mount, made by the broker: the broker unmounts it (helper/fstab-user.ts)
    const forwarded = await forwardUserUnmount(positional[0]!, say);
    if (forwarded !== null) return forwarded;
  }
  requireRoot('only root may unmount sandboxed mounts', "an ordinary user unmounts what the broker mounted with 'fusegate unmount DIR'");
  // Read before unmounting: a bad value is a usage error, not a surprise afterwards.
  const timeoutS = timeoutMs('umountWait') / 1000;
  const target = positional[0]!;
  const mount = mountAt(readMountinfo(), target);
  if (mount === null) {
    say(`${target}: not mounted`);
    return MountExit.FAILURE;
  }
  // The mount's device names its FUSE connection, should the unmount hang.
  const device = mount.device;
  const unit = instanceOfMount(mount)?.unit ?? null;
  const pidfds = openPidfds(unit ? instanceProcesses(unit) : []);
  try {
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
