/**
 * Who can write an image file: the file a source path names, or the file
 * behind a loop device. An image only root can write holds content root put
 * there, so an fstab line naming it by path may keep the kernel driver; an
 * image a user can write is a filesystem that user made.
 *
 * "Only root can write" means: owned by uid 0, no group or other write bit
 * (with a POSIX ACL the group bits are the ACL mask, so a named user with
 * write access shows up there too), and every directory above it owned by
 * root and not writable by group or others unless sticky (in a sticky
 * directory nobody else can rename or remove root's file). The directories
 * matter because fstab names the image by path: in a directory a user can
 * write, that user decides which file the path names.
 *
 * The file is inspected by path, then proved to be the one in use: for an
 * image source, the inode stat(2) saw when the facts were gathered; for a
 * loop device, the inode the kernel reports for it (LOOP_GET_STATUS64). A
 * file swapped in between fails that check and is not trusted.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loopBacking } from '../lib/native';

export interface FileIdentity {
  /** "major:minor" of the filesystem holding the file */
  device: string;
  inode: bigint;
}

export interface ImageOwnership {
  uid: number | null;
  /** permission bits, e.g. 0o644; null when the file could not be inspected */
  mode: number | null;
  rootOnly: boolean;
  /** where uid and mode came from */
  source: string;
  /** why rootOnly is what it is */
  why: string;
}

/** glibc's dev_t split (gnu_dev_major/minor): 12+20 bits of major, 8+24 of minor. */
export function devString(dev: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

export function modeString(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/**
 * The identity of the file behind loop device `devPath` (whose "major:minor"
 * is `rdev`), from the kernel; null when it cannot be had.
 */
export function loopBackingIdentity(devPath: string, rdev: string): FileIdentity | null {
  let fd = -1;
  try {
    fd = fs.openSync(devPath, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    // The node must still be the device the facts are about.
    if (devString(fs.fstatSync(fd, { bigint: true }).rdev) !== rdev) return null;
    return loopBacking(fd);
  } catch {
    return null;
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
}

/** The first directory above `file` someone other than root could change entries in, or null. */
function unsafeDirectory(file: string): string | null {
  let dir = path.dirname(file);
  for (;;) {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(dir);
    } catch (e) {
      return `${dir} (${(e as NodeJS.ErrnoException).code})`;
    }
    if (!st.isDirectory()) return `${dir} (not a directory)`;
    if (st.uid !== 0) return `${dir} (owned by uid ${st.uid})`;
    if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) return `${dir} (mode ${modeString(st.mode)}: writable by others)`;
    const up = path.dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

/**
 * Owner and mode of image `file`, and whether only root can write it.
 * `expected` is the inode the file must be (null: not verified, for tests
 * that stand in for stat); `how` names where `expected` came from.
 */
export function imageOwnership(file: string, expected: FileIdentity | null, how: string): ImageOwnership {
  let fd = -1;
  let st: fs.BigIntStats;
  try {
    // O_NOFOLLOW: a symlink put where the file was is not the file.
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    st = fs.fstatSync(fd, { bigint: true });
  } catch (e) {
    const why = `cannot open ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
    return { uid: null, mode: null, rootOnly: false, source: why, why };
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
  const uid = Number(st.uid);
  const mode = Number(st.mode & 0o7777n);
  if (!st.isFile()) {
    const why = `${file} is not a regular file`;
    return { uid, mode, rootOnly: false, source: `fstat(2) of ${file}`, why };
  }
  if (expected !== null && (devString(st.dev) !== expected.device || st.ino !== expected.inode)) {
    const why = `${file} is inode ${st.ino} on ${devString(st.dev)}, but ${how} is inode ${expected.inode} on ${expected.device}: the file was replaced`;
    return { uid, mode, rootOnly: false, source: why, why };
  }
  const source = `fstat(2) of ${file}${expected !== null ? ` (the inode ${how} reports)` : ' (by path, not verified)'}`;
  if (uid !== 0) return { uid, mode, rootOnly: false, source, why: `${file} is owned by uid ${uid}` };
  if ((mode & 0o022) !== 0) return { uid, mode, rootOnly: false, source, why: `${file} has mode ${modeString(mode)}: writable by group or others` };
  const dir = unsafeDirectory(file);
  if (dir !== null) return { uid, mode, rootOnly: false, source, why: `a directory above ${file} is not root's alone: ${dir}` };
  return { uid, mode, rootOnly: true, source, why: `${source}: owner root, mode ${modeString(mode)}, every directory above root's alone` };
}
