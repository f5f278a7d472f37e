/**
 * The FUSE kernel protocol (include/uapi/linux/fuse.h, 7.x): opcodes,
 * flags, and the encoders/decoders of the structs this server uses. All
 * integers are little-endian host order (x86-64, arm64). Layouts checked
 * against the uapi header of protocol 7.38 (Debian 12's) and the running
 * 6.x kernel, which accepts any minor up to its own.
 */
export const FUSE_KERNEL_VERSION = 7;
export const FUSE_KERNEL_MINOR_VERSION = 38;
export const FUSE_ROOT_ID = 1;

export const enum Op {
  LOOKUP = 1, FORGET = 2, GETATTR = 3, SETATTR = 4, READLINK = 5, SYMLINK = 6, MKNOD = 8, MKDIR = 9,
  UNLINK = 10, RMDIR = 11, RENAME = 12, LINK = 13, OPEN = 14, READ = 15, WRITE = 16, STATFS = 17,
  RELEASE = 18, FSYNC = 20, SETXATTR = 21, GETXATTR = 22, LISTXATTR = 23, REMOVEXATTR = 24, FLUSH = 25,
  INIT = 26, OPENDIR = 27, READDIR = 28, RELEASEDIR = 29, FSYNCDIR = 30, GETLK = 31, SETLK = 32,
  SETLKW = 33, ACCESS = 34, CREATE = 35, INTERRUPT = 36, BMAP = 37, DESTROY = 38, IOCTL = 39, POLL = 40,
  NOTIFY_REPLY = 41, BATCH_FORGET = 42, FALLOCATE = 43, READDIRPLUS = 44, RENAME2 = 45, LSEEK = 46,
}

// INIT flags
export const FUSE_ASYNC_READ = 1 << 0;
export const FUSE_ATOMIC_O_TRUNC = 1 << 3;
export const FUSE_BIG_WRITES = 1 << 5;
export const FUSE_DO_READDIRPLUS = 1 << 13;
export const FUSE_READDIRPLUS_AUTO = 1 << 14;
export const FUSE_PARALLEL_DIROPS = 1 << 18;
export const FUSE_MAX_PAGES = 1 << 22;
export const FUSE_INIT_EXT = 1 << 30;

// SETATTR valid bits
export const FATTR_MODE = 1 << 0;
export const FATTR_UID = 1 << 1;
export const FATTR_GID = 1 << 2;
export const FATTR_SIZE = 1 << 3;
export const FATTR_ATIME = 1 << 4;
export const FATTR_MTIME = 1 << 5;
export const FATTR_FH = 1 << 6;
export const FATTR_ATIME_NOW = 1 << 7;
export const FATTR_MTIME_NOW = 1 << 8;

export const RENAME_NOREPLACE = 1;

export const IN_HEADER_SIZE = 40;
export const OUT_HEADER_SIZE = 16;
export const ATTR_SIZE = 88;
export const ENTRY_OUT_SIZE = 40 + ATTR_SIZE;
export const ATTR_OUT_SIZE = 16 + ATTR_SIZE;
export const OPEN_OUT_SIZE = 16;
export const INIT_OUT_SIZE = 64;
export const STATFS_OUT_SIZE = 80;
export const DIRENT_BASE = 24;

export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: number;
  uid: number;
  gid: number;
  pid: number;
}

export function decodeInHeader(b: Buffer): InHeader {
  return {
    len: b.readUInt32LE(0),
    opcode: b.readUInt32LE(4),
    unique: b.readBigUInt64LE(8),
    nodeid: Number(b.readBigUInt64LE(16)),
    uid: b.readUInt32LE(24),
    gid: b.readUInt32LE(28),
    pid: b.readUInt32LE(32),
  };
}

export function encodeOutHeader(b: Buffer, len: number, error: number, unique: bigint): void {
  b.writeUInt32LE(len, 0);
  b.writeInt32LE(error, 4);
  b.writeBigUInt64LE(unique, 8);
}

export interface Attr {
  ino: number;
  size: number;
  blocks: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  blksize: number;
}

function putTime(b: Buffer, secOff: number, nsecOff: number, ms: number): void {
  const sec = Math.floor(ms / 1000);
  b.writeBigInt64LE(BigInt(sec), secOff);
  b.writeUInt32LE(Math.round((ms - sec * 1000) * 1e6), nsecOff);
}

/** struct fuse_attr at `off` */
export function encodeAttr(b: Buffer, off: number, a: Attr): void {
  b.writeBigUInt64LE(BigInt(a.ino), off);
  b.writeBigUInt64LE(BigInt(a.size), off + 8);
  b.writeBigUInt64LE(BigInt(a.blocks), off + 16);
  putTime(b, off + 24, off + 48, a.atimeMs);
  putTime(b, off + 32, off + 52, a.mtimeMs);
  putTime(b, off + 40, off + 56, a.ctimeMs);
  b.writeUInt32LE(a.mode, off + 60);
  b.writeUInt32LE(a.nlink, off + 64);
  b.writeUInt32LE(a.uid, off + 68);
  b.writeUInt32LE(a.gid, off + 72);
  b.writeUInt32LE(0, off + 76); // rdev
  b.writeUInt32LE(a.blksize, off + 80);
  b.writeUInt32LE(0, off + 84); // flags
}

/** struct fuse_entry_out at `off` */
export function encodeEntryOut(b: Buffer, off: number, nodeid: number, generation: number, validSec: number, a: Attr | null): void {
  b.writeBigUInt64LE(BigInt(nodeid), off);
  b.writeBigUInt64LE(BigInt(generation), off + 8);
  b.writeBigUInt64LE(BigInt(validSec), off + 16);
  b.writeBigUInt64LE(BigInt(validSec), off + 24);
  b.writeUInt32LE(0, off + 32);
  b.writeUInt32LE(0, off + 36);
  if (a) encodeAttr(b, off + 40, a);
  else b.fill(0, off + 40, off + 40 + ATTR_SIZE);
}

export function encodeAttrOut(a: Attr, validSec: number): Buffer {
  const b = Buffer.alloc(ATTR_OUT_SIZE);
  b.writeBigUInt64LE(BigInt(validSec), 0);
  encodeAttr(b, 16, a);
  return b;
}

export function encodeOpenOut(fh: number, openFlags: number): Buffer {
  const b = Buffer.alloc(OPEN_OUT_SIZE);
  b.writeBigUInt64LE(BigInt(fh), 0);
  b.writeUInt32LE(openFlags, 8);
  return b;
}

export interface InitIn {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: number;
  flags2: number;
}

export function decodeInitIn(b: Buffer, off: number, len: number): InitIn {
  const r: InitIn = {
    major: b.readUInt32LE(off),
    minor: b.readUInt32LE(off + 4),
    maxReadahead: len >= 12 ? b.readUInt32LE(off + 8) : 0,
    flags: len >= 16 ? b.readUInt32LE(off + 12) : 0,
    flags2: 0,
  };
  if (len >= 20 && r.flags & FUSE_INIT_EXT) r.flags2 = b.readUInt32LE(off + 16);
  return r;
}

export interface InitOut {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: number;
  maxBackground: number;
  congestionThreshold: number;
  maxWrite: number;
  timeGran: number;
  maxPages: number;
}

export function encodeInitOut(o: InitOut): Buffer {
  const b = Buffer.alloc(INIT_OUT_SIZE);
  b.writeUInt32LE(o.major, 0);
  b.writeUInt32LE(o.minor, 4);
  b.writeUInt32LE(o.maxReadahead, 8);
  b.writeUInt32LE(o.flags >>> 0, 12);
  b.writeUInt16LE(o.maxBackground, 16);
  b.writeUInt16LE(o.congestionThreshold, 18);
  b.writeUInt32LE(o.maxWrite, 20);
  b.writeUInt32LE(o.timeGran, 24);
  b.writeUInt16LE(o.maxPages, 28);
  return b;
}

export interface StatfsOut {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  namelen: number;
  frsize: number;
}

export function encodeStatfsOut(s: StatfsOut): Buffer {
  const b = Buffer.alloc(STATFS_OUT_SIZE);
  b.writeBigUInt64LE(BigInt(s.blocks), 0);
  b.writeBigUInt64LE(BigInt(s.bfree), 8);
  b.writeBigUInt64LE(BigInt(s.bavail), 16);
  b.writeBigUInt64LE(BigInt(s.files), 24);
  b.writeBigUInt64LE(BigInt(s.ffree), 32);
  b.writeUInt32LE(s.bsize, 40);
  b.writeUInt32LE(s.namelen, 44);
  b.writeUInt32LE(s.frsize, 48);
  return b;
}

export const DT_DIR = 4;
export const DT_REG = 8;

/** Size of one fuse_dirent with `nameLen` bytes of name, padded to 8. */
export function direntSize(nameLen: number): number {
  return (DIRENT_BASE + nameLen + 7) & ~7;
}

export function encodeDirent(b: Buffer, off: number, ino: number, next: number, type: number, name: Buffer): number {
  b.writeBigUInt64LE(BigInt(ino), off);
  b.writeBigUInt64LE(BigInt(next), off + 8);
  b.writeUInt32LE(name.length, off + 16);
  b.writeUInt32LE(type, off + 20);
  name.copy(b, off + 24);
  const size = direntSize(name.length);
  b.fill(0, off + 24 + name.length, off + size);
  return size;
}

/** NUL-terminated strings from `off`; null when a terminator is missing. */
export function cstrings(b: Buffer, off: number, end: number, count: number): Buffer[] | null {
  const out: Buffer[] = [];
  let p = off;
  for (let i = 0; i < count; i++) {
    const z = b.indexOf(0, p);
    if (z < 0 || z >= end) return null;
    out.push(b.subarray(p, z));
    p = z + 1;
  }
  return out;
}
