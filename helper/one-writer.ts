/**
 * One writer per storage, the claiming half: policy/one-writer.ts
 * finds the mounts of the same storage and judges; this file makes the
 * verdict hold against racing helpers and for the mount's lifetime.
 *
 * Two fusegate helpers racing on the same storage are serialised: each
 * takes a lock per storage root (/run/fusegate/claims, flock) before it
 * scans mountinfo and keeps it until its mount is visible there, so the
 * second scan sees the first mount. The serving side then holds the claim
 * for the mount's lifetime: a sandboxed server gets its source on an open
 * file description the helper flocked (LOCK_EX for read-write, LOCK_SH for
 * read-only; flock locks belong to the open file description, which
 * survives SCM_RIGHTS), and a kernel mount claims its block device (the
 * loop device, for an image) exclusively itself (checked: an O_EXCL open of
 * a kernel-mounted loop device fails EBUSY).
 *
 * What the locks do not cover, and the scan does at mount time only:
 * - a kernel mount of an image holds its loop device, not the image file:
 *   a second loop device on the same file is caught by the mountinfo scan
 *   of the next fusegate mount, not by a lock;
 * - mounts made without fusegate (mount -i, a FUSE server started by hand)
 *   take none of these locks: a fusegate mount racing one of those between
 *   the scan and mount(2) is not stopped (the kernel's own O_EXCL claim
 *   still stops two claims of one block device);
 * - dm and md slaves count whole (tables are not read), so two dm devices
 *   on disjoint parts of one disk are reported as sharing it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readMountinfo } from '../lib/mountinfo';
import * as native from '../lib/native';
import { storageOfStat, type StorageIdentity } from '../lib/storage-identity';
import { conflictsWith, judge, mountedStorage, type Request, type Verdict } from '../policy/one-writer';

// ------------------------------------------------------------- the helper's claim

export function claimDir(): string {
  return process.env.FUSEGATE_CLAIM_DIR ?? '/run/fusegate/claims';
}

/**
 * The helper's lock on every root of the storage, taken before the scan and
 * released once the mount is visible in mountinfo (or refused). Waits for a
 * racing helper to finish, up to the deadline.
 */
export async function lockRoots(storage: StorageIdentity, deadline: number): Promise<number[]> {
  const dir = claimDir();
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Sorted, so two helpers never wait on each other's second lock.
  const roots = [...new Set(storage.extents.map((e) => e.root))].sort();
  const fds: number[] = [];
  try {
    for (const root of roots) {
      // Roots are block:M:m or file:M:m:ino (lib/storage-identity.ts): a file name once ':' goes.
      const fd = fs.openSync(path.join(dir, root.replaceAll(':', '-')), fs.constants.O_RDWR | fs.constants.O_CREAT | 0o2000000, 0o600);
      fds.push(fd);
      for (;;) {
        try {
          native.flock(fd, native.LOCK_EX | native.LOCK_NB);
          break;
        } catch (err) {
          if (!(err instanceof native.SyscallError && err.code === 'EWOULDBLOCK') && !(err instanceof native.SyscallError && err.code === 'EAGAIN')) throw err;
          if (Date.now() > deadline) throw new Error(`another fusegate helper has held the claim on ${root} for too long`);
          await new Promise((r) => setTimeout(r, 10));
        }
      }
    }
  } catch (err) {
    for (const fd of fds) fs.closeSync(fd);
    throw err;
  }
  return fds;
}

export interface Claim {
  verdict: Verdict;
  storage: StorageIdentity | null;
  release(): void;
}

/** Everything above, for the helper: lock, scan, judge. The caller releases. */
export async function claimStorage(sourceFd: number, req: Request, deadline: number): Promise<Claim> {
  const storage = storageOfStat(fs.fstatSync(sourceFd, { bigint: true }));
  if (storage === null) return { verdict: { allow: true, conflicts: [], note: null }, storage, release: () => {} };
  const fds = await lockRoots(storage, deadline);
  const release = () => {
    for (const fd of fds.splice(0)) fs.closeSync(fd);
  };
  try {
    const verdict = judge(req, conflictsWith(storage, mountedStorage(readMountinfo())));
    if (!verdict.allow) release();
    return { verdict, storage, release };
  } catch (err) {
    release();
    throw err;
  }
}

/** Sessions whose server already holds a locked fd of its source. */
const servedLocked = new WeakSet<object>();

/**
 * The serving side's claim on the fd it is given: the lock lives on this
 * open file description, which the server keeps for the mount's lifetime.
 * The first open of a session must get it; a later one in the same session
 * may find it held by its own server's first fd, and goes without.
 */
export function lockServedFd(plan: { source: string; readOnly: boolean }, fd: number): void {
  try {
    native.flock(fd, (plan.readOnly ? native.LOCK_SH : native.LOCK_EX) | native.LOCK_NB);
    servedLocked.add(plan);
  } catch (err) {
    if (servedLocked.has(plan)) return;
    if (err instanceof native.SyscallError && (err.code === 'EWOULDBLOCK' || err.code === 'EAGAIN')) {
      fs.closeSync(fd);
      throw new native.SyscallError(
        `${plan.source} is ${plan.readOnly ? 'being written' : 'in use'} by another fusegate mount's server (its lock is held)`, 'EBUSY', 16, 'flock');
    }
    fs.closeSync(fd);
    throw err;
  }
}
