/**
 * What storage a mount source really is, whatever it is called: a set of
 * byte ranges on "roots" that nothing else sits under. A root is either a
 * block device that is neither a partition, a loop device nor a stacked
 * device (dm, md: anything with holders' `slaves/`), or a regular file
 * named by (st_dev, st_ino). Two sources share storage exactly when one of
 * their extents overlaps one of the other's on the same root.
 *
 *   /dev/sda1          → block 8:0 [start of sda1, end of sda1)
 *   /dev/mapper/x      → every extent of every slave, whole (dm tables are not read: conservative)
 *   /dev/loop0 of x.img at offset 1 MiB → file (dev,ino) of x.img [1 MiB, 1 MiB + sizelimit or ∞)
 *   /dev/loop1 of /dev/loop0 → loop0's extents, narrowed by loop1's offset/sizelimit
 *   /dev/loop0p1       → loop0's extents, narrowed to the partition
 *   x.img              → file (dev,ino) of x.img [0, ∞)
 *
 * The pure part (ranges, overlap) is separate from the part that reads
 * sysfs and asks loop devices, so it can be unit-tested.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as native from './native';

/** One byte range of one root. `end` null: up to wherever the root ends. */
export interface Extent {
  /** "block:8:0" or "file:8:1:1234" (st_dev major:minor, st_ino) */
  root: string;
  start: bigint;
  end: bigint | null;
}

/** How a source reaches its roots, for explain and the refusal message. */
export interface StorageIdentity {
  extents: Extent[];
  /** one line per step followed, e.g. "loop7: backing file 8:1 inode 1234, offset 0" */
  path: string[];
}

// ------------------------------------------------------------------ pure part

export function blockRoot(dev: string): string {
  return `block:${dev}`;
}

export function fileRoot(dev: string, ino: bigint | number): string {
  return `file:${dev}:${ino}`;
}

/** [a.start, a.end) and [b.start, b.end) share at least one byte. */
export function rangesOverlap(a: Extent, b: Extent): boolean {
  if (a.root !== b.root) return false;
  const aBeforeB = a.end !== null && a.end <= b.start;
  const bBeforeA = b.end !== null && b.end <= a.start;
  return !aBeforeB && !bBeforeA;
}

/** The first pair of extents that overlap, or null. */
export function sharedStorage(a: readonly Extent[], b: readonly Extent[]): [Extent, Extent] | null {
  for (const x of a) for (const y of b) if (rangesOverlap(x, y)) return [x, y];
  return null;
}

/**
 * An extent seen through a window of it: a partition or loop device showing
 * bytes [offset, offset + size) (size null: to the end) of what lies below.
 */
export function narrow(e: Extent, offset: bigint, size: bigint | null): Extent | null {
  const start = e.start + offset;
  let end: bigint | null = size === null ? null : start + size;
  if (e.end !== null) end = end === null ? e.end : end < e.end ? end : e.end;
  if (end !== null && end <= start) return null;
  return { root: e.root, start, end };
}

export function describeExtent(e: Extent): string {
  const range = e.start === 0n && e.end === null ? 'whole' : `bytes ${e.start}-${e.end === null ? 'end' : e.end}`;
  if (e.root.startsWith('block:')) return `block device ${e.root.slice(6)} (${range})`;
  const [, maj, min, ino] = e.root.split(':');
  return `file on ${maj}:${min} inode ${ino} (${range})`;
}

// ------------------------------------------------------------ reading sysfs

export interface ResolveEnv {
  sysfs: string;
  /** where device nodes are opened for LOOP_GET_STATUS64 */
  dev: string;
}

const DEFAULT_ENV: ResolveEnv = { sysfs: '/sys', dev: '/dev' };

function readTrim(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

/** glibc's dev_t split, as stat(2) reports st_dev and st_rdev. */
export function devOf(n: bigint | number): string {
  const d = BigInt(n);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

/** The devtmpfs node of a block device, checked to be that device. */
function openDeviceNode(env: ResolveEnv, dev: string): number | null {
  const uevent = readTrim(path.join(env.sysfs, 'dev', 'block', dev, 'uevent')) ?? '';
  const name = uevent.split('\n').find((l) => l.startsWith('DEVNAME='))?.slice('DEVNAME='.length);
  if (!name) return null;
  let fd: number;
  try {
    fd = fs.openSync(path.join(env.dev, name), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | 0o2000000);
  } catch {
    return null;
  }
  const st = fs.fstatSync(fd, { bigint: true });
  if (!st.isBlockDevice() || devOf(st.rdev) !== dev) {
    fs.closeSync(fd);
    return null;
  }
  return fd;
}

const MAX_DEPTH = 16;

function resolveBlockInto(env: ResolveEnv, dev: string, window: Extent | null, out: StorageIdentity, depth: number): void {
  const sys = path.join(env.sysfs, 'dev', 'block', dev);
  let real: string;
  try {
    real = fs.realpathSync.native(sys);
  } catch {
    out.path.push(`${dev}: not in ${env.sysfs}/dev/block; taken as its own storage`);
    out.extents.push(window ?? { root: blockRoot(dev), start: 0n, end: null });
    return;
  }
  const name = path.basename(real);
  if (depth > MAX_DEPTH) {
    out.path.push(`${name}: stacked more than ${MAX_DEPTH} deep; stopped here`);
    out.extents.push(window ?? { root: blockRoot(dev), start: 0n, end: null });
    return;
  }
  // A window of this device: wrap each extent found below with it.
  const below = (e: Extent): Extent | null =>
    window === null ? e : narrow(e, window.start, window.end === null ? null : window.end - window.start);

  const partStart = readTrim(path.join(real, 'start'));
  if (fs.existsSync(path.join(real, 'partition')) && partStart !== null) {
    const size = readTrim(path.join(real, 'size'));
    const parentDev = readTrim(path.join(path.dirname(real), 'dev'));
    if (parentDev !== null) {
      const start = BigInt(partStart) * 512n;
      const len = size === null ? null : BigInt(size) * 512n;
      out.path.push(`${name}: partition of ${path.basename(path.dirname(real))} at byte ${start}${len === null ? '' : `, ${len} bytes`}`);
      const inner: StorageIdentity = { extents: [], path: out.path };
      resolveBlockInto(env, parentDev, null, inner, depth + 1);
      for (const e of inner.extents) {
        const n = narrow(e, start, len);
        const w = n && below(n);
        if (w) out.extents.push(w);
      }
      return;
    }
  }

  if (fs.existsSync(path.join(real, 'loop'))) {
    const fd = openDeviceNode(env, dev);
    let st: native.LoopStatus | null = null;
    if (fd !== null) {
      try {
        st = native.loopStatus(fd);
      } catch {
        st = null; // ENXIO: detached meanwhile
      } finally {
        fs.closeSync(fd);
      }
    }
    if (st === null) {
      out.path.push(`${name}: a loop device whose backing file could not be asked (LOOP_GET_STATUS64)`);
      out.extents.push(window ?? { root: blockRoot(dev), start: 0n, end: null });
      return;
    }
    const len = st.sizelimit === 0n ? null : st.sizelimit;
    if (st.backingBlock !== null) {
      out.path.push(`${name}: loop over block device ${st.backingBlock}, offset ${st.offset}${len === null ? '' : `, ${len} bytes`}`);
      const inner: StorageIdentity = { extents: [], path: out.path };
      resolveBlockInto(env, st.backingBlock, null, inner, depth + 1);
      for (const e of inner.extents) {
        const n = narrow(e, st.offset, len);
        const w = n && below(n);
        if (w) out.extents.push(w);
      }
    } else {
      out.path.push(`${name}: loop over the file ${st.device} inode ${st.inode}, offset ${st.offset}${len === null ? '' : `, ${len} bytes`}`);
      const n = narrow({ root: fileRoot(st.device, st.inode), start: 0n, end: null }, st.offset, len);
      const w = n && below(n);
      if (w) out.extents.push(w);
    }
    return;
  }

  let slaves: string[] = [];
  try {
    slaves = fs.readdirSync(path.join(real, 'slaves'));
  } catch {
    slaves = [];
  }
  if (slaves.length > 0) {
    // dm and md: any byte of a slave may be behind any byte here, so each slave counts whole.
    out.path.push(`${name}: stacked on ${slaves.join(', ')} (each counted whole)`);
    for (const s of slaves) {
      const sdev = readTrim(path.join(real, 'slaves', s, 'dev'));
      if (sdev === null) continue;
      const inner: StorageIdentity = { extents: [], path: out.path };
      resolveBlockInto(env, sdev, null, inner, depth + 1);
      out.extents.push(...inner.extents);
    }
    return;
  }

  out.extents.push(window ?? { root: blockRoot(dev), start: 0n, end: null });
}

/** The storage behind the block device `dev` ("major:minor"). */
export function blockStorage(dev: string, env: ResolveEnv = DEFAULT_ENV): StorageIdentity {
  const out: StorageIdentity = { extents: [], path: [] };
  resolveBlockInto(env, dev, null, out, 0);
  return out;
}

/** The storage behind an image file. */
export function fileStorage(stDev: bigint | number, ino: bigint | number): StorageIdentity {
  const dev = devOf(stDev);
  return { extents: [{ root: fileRoot(dev, BigInt(ino)), start: 0n, end: null }], path: [`image file on ${dev} inode ${ino}`] };
}

/** The storage behind an open fd or a stat result: a block device or a regular file; null for anything else. */
export function storageOfStat(st: fs.BigIntStats, env: ResolveEnv = DEFAULT_ENV): StorageIdentity | null {
  if (st.isBlockDevice()) return blockStorage(devOf(st.rdev), env);
  if (st.isFile()) return fileStorage(st.dev, st.ino);
  return null;
}

export function storageOfPath(p: string, env: ResolveEnv = DEFAULT_ENV): StorageIdentity | null {
  try {
    return storageOfStat(fs.statSync(p, { bigint: true }), env);
  } catch {
    return null;
  }
}
