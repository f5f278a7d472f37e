/**
 * The mechanism of a FUSE mount, separate from the decision to make it.
 *
 * The helper opens /dev/fuse, and once the service has said DOIT, mounts a
 * `fuse.<subtype>` filesystem bound to that /dev/fuse onto the mountpoint fd
 * pinned at start-up: fsopen/fsconfig/fsmount/move_mount, so a mountpoint
 * swapped for a symlink after the policy looked at it cannot redirect the
 * mount. Kernels without the new API get mount(2) on /proc/self/fd/N of the
 * same pinned fd.
 */
import * as fs from 'node:fs';
import * as native from '../lib/native';
import { readMountinfo, type MountinfoEntry } from '../lib/mountinfo';
import { FSCONFIG, MOUNT_ATTR, MOVE_MOUNT, MS } from '../lib/native';

export interface FuseMountSpec {
  /** the helper's own /dev/fuse fd; the kernel binds the mount to its connection */
  devFuseFd: number;
  /** O_PATH fd of the mountpoint, pinned before the policy was consulted */
  mountpointFd: number;
  /** 'fuse' or 'fuseblk' */
  fsType: 'fuse' | 'fuseblk';
  /** e.g. 'fuse2fs': the mount shows as fuse.fuse2fs */
  subtype: string;
  /** shown as the mount's source; for fuseblk, the path the kernel opens the block device by */
  source: string;
  /**
   * fuseblk: "major:minor" of the pinned device. The new superblock must sit
   * on exactly that device; otherwise the mount is aborted and detached at
   * once. (Checked in mountinfo: stat() of the new mount would wait for a
   * server that only starts serving after our reply.)
   */
  expectDevice?: string;
  /** S_IFDIR or S_IFREG of the pinned mountpoint, octal in rootmode= */
  rootMode: number;
  userId: number;
  groupId: number;
  /** filesystem options for the FUSE superblock (default_permissions, allow_other, max_read=…) */
  fuseOptions: string[];
  /** MS_* flags after the policy's forced flags were applied */
  msFlags: number;
}

export interface MadeMount {
  /** how it was made, for the journal */
  api: 'fsmount' | 'mount(2)';
  /** major:minor of the new mount, from mountinfo: the FUSE connection's id */
  device: string | null;
}

/** Superblock flags that fsconfig takes as plain flags, not mount attributes. */
const SB_FLAG_OPTIONS = new Set(['ro', 'rw', 'sync', 'async', 'dirsync', 'lazytime', 'nolazytime']);

function fsconfigOptions(fd: number, spec: FuseMountSpec): void {
  const set = (key: string, value: string) => native.fsconfig(fd, FSCONFIG.SET_STRING, key, value, 0);
  set('source', spec.source);
  set('subtype', spec.subtype);
  set('fd', String(spec.devFuseFd));
  set('rootmode', spec.rootMode.toString(8));
  set('user_id', String(spec.userId));
  set('group_id', String(spec.groupId));
  if (spec.msFlags & MS.RDONLY) native.fsconfig(fd, FSCONFIG.SET_FLAG, 'ro', null, 0);
  if (spec.msFlags & MS.SYNCHRONOUS) native.fsconfig(fd, FSCONFIG.SET_FLAG, 'sync', null, 0);
  if (spec.msFlags & MS.DIRSYNC) native.fsconfig(fd, FSCONFIG.SET_FLAG, 'dirsync', null, 0);
  if (spec.msFlags & MS.LAZYTIME) native.fsconfig(fd, FSCONFIG.SET_FLAG, 'lazytime', null, 0);
  for (const opt of spec.fuseOptions) {
    const eq = opt.indexOf('=');
    if (eq < 0) native.fsconfig(fd, FSCONFIG.SET_FLAG, opt, null, 0);
    else set(opt.slice(0, eq), opt.slice(eq + 1));
  }
}

function mountAttributes(msFlags: number): number {
  let attr = 0;
  if (msFlags & MS.RDONLY) attr |= MOUNT_ATTR.RDONLY;
  if (msFlags & MS.NOSUID) attr |= MOUNT_ATTR.NOSUID;
  if (msFlags & MS.NODEV) attr |= MOUNT_ATTR.NODEV;
  if (msFlags & MS.NOEXEC) attr |= MOUNT_ATTR.NOEXEC;
  if (msFlags & MS.NOATIME) attr |= MOUNT_ATTR.NOATIME;
  else if (msFlags & MS.STRICTATIME) attr |= MOUNT_ATTR.STRICTATIME;
  if (msFlags & MS.NODIRATIME) attr |= MOUNT_ATTR.NODIRATIME;
  return attr;
}

function legacyData(spec: FuseMountSpec): string {
  return [
    `fd=${spec.devFuseFd}`,
    `rootmode=${spec.rootMode.toString(8)}`,
    `user_id=${spec.userId}`,
    `group_id=${spec.groupId}`,
    ...spec.fuseOptions.filter((o) => !SB_FLAG_OPTIONS.has(o)),
  ].join(',');
}

/** Makes the mount. Throws SyscallError with the kernel's errno on refusal. */
export function makeFuseMount(spec: FuseMountSpec): MadeMount {
  let fsfd: number;
  try {
    fsfd = native.fsopen(spec.fsType);
  } catch (err) {
    if (err instanceof native.SyscallError && err.code === 'ENOSYS') return legacyMount(spec);
    throw err;
  }
  try {
    fsconfigOptions(fsfd, spec);
    native.fsconfig(fsfd, FSCONFIG.CMD_CREATE);
    const mfd = native.fsmount(fsfd, native.FSMOUNT_CLOEXEC, mountAttributes(spec.msFlags));
    try {
      native.moveMount(mfd, '', spec.mountpointFd, '', MOVE_MOUNT.F_EMPTY_PATH | MOVE_MOUNT.T_EMPTY_PATH);
    } finally {
      fs.closeSync(mfd);
    }
  } finally {
    fs.closeSync(fsfd);
  }
  return assertOnDevice({ api: 'fsmount', device: findMountDevice(spec.mountpointFd) }, spec);
}

function legacyMount(spec: FuseMountSpec): MadeMount {
  const target = `/proc/self/fd/${spec.mountpointFd}`;
  native.mount(spec.source, target, `${spec.fsType}.${spec.subtype}`, spec.msFlags, legacyData(spec));
  return assertOnDevice({ api: 'mount(2)', device: findMountDevice(spec.mountpointFd) }, spec);
}

/** The made mount, or, when it is not on the pinned device, nothing: it is torn down and ESTALE thrown. */
function assertOnDevice(made: MadeMount, spec: FuseMountSpec): MadeMount {
  if (spec.expectDevice === undefined || made.device === spec.expectDevice) return made;
  abortAndDetach(spec.mountpointFd, made.device);
  throw new native.SyscallError(`${spec.source} is no longer the device that was checked (it changed after it was pinned)`, 'ESTALE', 116, 'mount');
}

/**
 * The topmost mount on the pinned mountpoint's path, found without touching
 * the new filesystem: stat() on it would wait for a server that only starts
 * serving after our reply.
 */
export function topMountAt(mountpointFd: number): MountinfoEntry | undefined {
  const where = fs.readlinkSync(`/proc/self/fd/${mountpointFd}`);
  const entries = readMountinfo().filter((e) => e.mountpoint === where);
  return entries[entries.length - 1];
}

function findMountDevice(mountpointFd: number): string | null {
  return topMountAt(mountpointFd)?.device ?? null;
}

/**
 * Tears down a mount that must not stay: aborts its FUSE connection first, so
 * requests stuck on a hung server fail at once, then detaches it. Goes by the
 * pinned mountpoint fd, not the caller's path (which may have been swapped
 * for a symlink): the mount detached is the top mount on the pinned
 * directory, and only if it is the one made (its device is `device`).
 */
export function abortAndDetach(mountpointFd: number, device: string | null): void {
  if (device !== null) {
    const [major, minor] = device.split(':').map(Number);
    // FUSE connections are named by their device number (major is 0 for FUSE).
    const conn = `/sys/fs/fuse/connections/${((major ?? 0) << 20) | (minor ?? 0)}/abort`;
    try {
      fs.writeFileSync(conn, '1');
    } catch {
      // fusectl not mounted: the detach below still removes the mount
    }
  }
  const where = fs.readlinkSync(`/proc/self/fd/${mountpointFd}`);
  const top = topMountAt(mountpointFd);
  if (top === undefined || (device !== null && top.device !== device)) return;
  try {
    native.umount2(where, native.MNT_DETACH | native.UMOUNT_NOFOLLOW);
  } catch (err) {
    if (!(err instanceof native.SyscallError && err.code === 'EINVAL')) throw err;
  }
}
