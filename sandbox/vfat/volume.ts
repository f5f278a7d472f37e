/**
 * A mounted FAT volume: nodes, lookups, reads and every change.
 *
 * WRITE ORDER (what a pulled stick leaves behind; fsck.fat repairs each of
 * these states by freeing lost clusters or truncating a chain to its size,
 * and never finds two owners for one cluster):
 * - Allocation: new clusters are marked in the FAT (as a chain ending in
 *   EOC) and the FAT is written to every copy BEFORE anything points at them
 *   (the directory entry's first cluster or the previous tail of the chain).
 *   Directory clusters are zeroed before they are linked into a directory.
 * - File growth: FAT (allocate, then link to the old tail), then data, then
 *   the directory entry (first cluster, size, time). A crash leaves a chain
 *   longer than the size (truncated by fsck) or an unreferenced chain.
 * - Shrink: the directory entry (smaller size, first cluster 0 when empty)
 *   is written first, then the cut clusters are freed in the FAT.
 * - Delete (unlink, rmdir, replaced rename target): the entry's slots are
 *   marked deleted (0xE5) first, then its clusters are freed. An object still
 *   open keeps its clusters until its last reference goes (POSIX).
 * - Create/mkdir: the new directory's cluster is allocated, zeroed and gets
 *   "." and ".." before the entry naming it is written; long-name slots and
 *   the short entry go in one write, short entry last.
 * - Rename: room for the new entry is made first (directory growth), then
 *   the replaced target's slots and the source's slots are marked deleted,
 *   then the new entry is written, then a moved directory's ".." is updated,
 *   then a replaced target's clusters are freed. A crash in between can lose
 *   the renamed object's name (its clusters become lost clusters that fsck
 *   saves as a FSCKnnnn.REC file), never create a cross-link.
 * Nothing is written along a chain that `FatTable.chain` did not validate.
 */
import { BlockDevice } from './blockdev';
import { Geometry, parseBootSector } from './bpb';
import {
  ATTR_ARCHIVE, ATTR_DIR, ATTR_RO, DirEntry, entryTimes, newShortEntry, ParsedDir, parseDir, setAtime,
  setEntryCluster, setMtime,
} from './dirent';
import { FatError, FatLogger } from './errors';
import { FatTable } from './fat';
import { buildLfnSlots, checkName, chooseShortName, lfnChecksum, lookupForm, upcase } from './names';
import { FatOptions, parseOptions } from './options';

/** At most 65536 entries per directory, as the FAT specification and Linux allow. */
export const MAX_DIR_BYTES = 65536 * 32;
const MAX_FILE_SIZE = 0xffffffff;

export class FatNode {
  refs = 0;
  unlinked = false;
  /** validated cluster chain, cached */
  chain: number[] | null = null;
  constructor(
    readonly id: number,
    readonly isDir: boolean,
    /** the directory holding the entry (null for the root) */
    public parent: FatNode | null,
    /** byte offset of the short entry in the parent, and of its first slot */
    public offset: number,
    public firstSlot: number,
    /** the 32-byte short entry as last written */
    public raw: Buffer,
    public name: string,
  ) {}

  get isRoot(): boolean {
    return this.parent === null;
  }
}

export interface NodeAttr {
  ino: number;
  size: number;
  blocks: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
  blksize: number;
}

export interface DirListEntry {
  name: string;
  isDir: boolean;
  /** position cookie, stable across changes to other entries: > 2 */
  cookie: number;
  entry: DirEntry;
}

export interface StatFs {
  blocks: number;
  bfree: number;
  bavail: number;
  bsize: number;
  namelen: number;
}

export interface OpenVolumeOptions {
  /** the device: block device or image file */
  fd: number;
  readOnly?: boolean;
  /** mount options string or parsed options */
  options?: string | FatOptions;
  log?: FatLogger;
  /** device size in bytes, when the caller knows it better than fstat/sysfs */
  size?: number;
  /** clock, for tests */
  now?: () => number;
}

interface Dir {
  key: number;
  chain: number[] | null;
  buf: Buffer;
  _parsed: ParsedDir;
  /** bytes changed since parsing */
  stale: boolean;
  readonly parsed: ParsedDir;
}

export class Volume {
  readonly root: FatNode;
  private readonly nodes = new Map<string, FatNode>();
  private readonly dirs = new Map<number, Dir>();
  private dirCacheBytes = 0;
  private nextId = 2;
  private readonly orphans = new Set<FatNode>();
  private closed = false;
  readonly maxDirClusters: number;
  label: string | null = null;

  private constructor(
    readonly dev: BlockDevice,
    readonly geo: Geometry,
    readonly fat: FatTable,
    readonly opts: FatOptions,
    readonly log: FatLogger,
    private readonly now: () => number,
  ) {
    const rootRaw = Buffer.alloc(32);
    rootRaw[11] = ATTR_DIR;
    setEntryCluster(rootRaw, geo.fatType === 32 ? geo.rootCluster : 0, geo.fatType);
    this.root = new FatNode(1, true, null, -1, -1, rootRaw, '');
    this.root.refs = 1;
    this.maxDirClusters = Math.max(1, Math.floor(MAX_DIR_BYTES / geo.clusterSize));
  }

  /** Opens a volume; throws MountRefused (EINVAL, with a reason) when the device is not a FAT volume we can serve. */
  static open(o: OpenVolumeOptions): Volume {
    const opts = typeof o.options === 'object' ? { ...o.options } : parseOptions(o.options);
    if (o.readOnly) opts.readOnly = true;
    const log = o.log ?? (() => {});
    const dev = BlockDevice.open(o.fd, opts.readOnly, o.size);
    if (dev.size < 512) throw new FatError('EINVAL', 'device smaller than one sector');
    const geo = parseBootSector(dev.read(0, 512), dev.size);
    const fat = new FatTable(dev, geo, log);
    const v = new Volume(dev, geo, fat, opts, log, o.now ?? Date.now);
    try {
      const rootDir = v.loadDir(v.root);
      v.label = rootDir.parsed.label;
    } catch (err) {
      if (err instanceof FatError) throw new FatError('EINVAL', `root directory unreadable: ${err.reason}`);
      throw err;
    }
    if (!opts.readOnly) fat.markDirty();
    return v;
  }

  get readOnly(): boolean {
    return this.opts.readOnly;
  }

  // ------------------------------------------------------------ directories

  private dirKey(node: FatNode): number {
    if (!node.isDir) throw new FatError('ENOTDIR', `${node.name} is not a directory`);
    const c = this.clusterOf(node);
    if (node.isRoot) return c;
    if (!this.fat.inRange(c)) {
      const msg = `directory ${JSON.stringify(node.name)} has an invalid first cluster ${c}`;
      this.log(msg);
      throw new FatError('EIO', msg);
    }
    return c;
  }

  private clusterOf(node: FatNode): number {
    const lo = node.raw.readUInt16LE(26);
    return this.geo.fatType === 32 ? ((node.raw.readUInt16LE(20) << 16) | lo) >>> 0 : lo;
  }

  private loadDir(node: FatNode): Dir {
    const key = this.dirKey(node);
    const cached = this.dirs.get(key);
    if (cached) {
      this.dirs.delete(key);
      this.dirs.set(key, cached);
      return cached;
    }
    const what = node.isRoot ? 'root directory' : `directory ${JSON.stringify(node.name)}`;
    let chain: number[] | null = null;
    let buf: Buffer;
    if (key === 0) {
      buf = this.dev.read(this.geo.rootDirOffset, this.geo.rootDirBytes);
    } else {
      chain = this.fat.chain(key, what, this.maxDirClusters);
      buf = this.readClusters(chain, 0, chain.length * this.geo.clusterSize);
    }
    const fatType = this.geo.fatType;
    const mode = this.opts.shortname;
    const dir: Dir = {
      key,
      chain,
      buf,
      _parsed: parseDir(buf, fatType, mode, what, this.log),
      stale: false,
      get parsed(): ParsedDir {
        if (this.stale) {
          this._parsed = parseDir(this.buf, fatType, mode, what, () => {});
          this.stale = false;
        }
        return this._parsed;
      },
    };
    this.dirs.set(key, dir);
    this.dirCacheBytes += buf.length;
    while (this.dirCacheBytes > 16 * 1024 * 1024 && this.dirs.size > 1) {
      const oldest = this.dirs.keys().next().value as number;
      this.dirCacheBytes -= this.dirs.get(oldest)!.buf.length;
      this.dirs.delete(oldest);
    }
    return dir;
  }

  private forgetDir(key: number): void {
    const d = this.dirs.get(key);
    if (d) {
      this.dirCacheBytes -= d.buf.length;
      this.dirs.delete(key);
    }
  }

  private dirDeviceOffset(dir: Dir, off: number): number {
    if (dir.chain === null) return this.geo.rootDirOffset + off;
    const cs = this.geo.clusterSize;
    return this.clusterOffset(dir.chain[Math.floor(off / cs)]) + (off % cs);
  }

  /** Writes bytes into a directory at `off` (within its current size), keeping the cache coherent. */
  private writeDir(dir: Dir, off: number, data: Buffer): void {
    const cs = dir.chain === null ? dir.buf.length : this.geo.clusterSize;
    let done = 0;
    while (done < data.length) {
      const pos = off + done;
      const n = Math.min(data.length - done, cs - (pos % cs));
      this.dev.write(this.dirDeviceOffset(dir, pos), data.subarray(done, done + n));
      done += n;
    }
    data.copy(dir.buf, off);
    dir.stale = true;
  }

  private findEntry(dir: Dir, name: string): DirEntry | undefined {
    const form = lookupForm(name);
    if (form === null) return undefined;
    const key = upcase(form);
    return dir.parsed.entries.find((e) => e.key === key) ?? dir.parsed.entries.find((e) => e.shortKey === key);
  }

  private nodeKey(parent: FatNode, offset: number): string {
    return `${this.dirKey(parent)}:${offset}`;
  }

  private nodeFor(parent: FatNode, e: DirEntry): FatNode {
    const k = this.nodeKey(parent, e.offset);
    let n = this.nodes.get(k);
    if (n) {
      n.parent = parent;
      return n;
    }
    if (e.isDir) {
      // a directory that is its own ancestor would make an endless tree
      for (let p: FatNode | null = parent, depth = 0; p; p = p.parent, depth++) {
        if ((!p.isRoot || this.geo.fatType === 32) && this.clusterOf(p) === e.cluster) {
          const msg = `directory ${JSON.stringify(e.name)} loops back to an ancestor (cluster ${e.cluster})`;
          this.log(msg);
          throw new FatError('EIO', msg);
        }
        if (depth > 4096) throw new FatError('EIO', 'directory tree too deep');
      }
    }
    n = new FatNode(this.nextId++, e.isDir, parent, e.offset, e.firstSlot, Buffer.from(e.raw), e.name);
    this.nodes.set(k, n);
    return n;
  }

  /** Takes one more reference on a node (an open handle, a kernel lookup). */
  ref(node: FatNode, n = 1): FatNode {
    node.refs += n;
    return node;
  }

  /** Drops references; an unlinked node's clusters are freed with its last one. */
  release(node: FatNode, n = 1): void {
    if (node.isRoot) return;
    node.refs = Math.max(0, node.refs - n);
    if (node.refs > 0) return;
    if (node.unlinked) {
      this.orphans.delete(node);
      if (!this.readOnly) this.freeNodeClusters(node);
    } else {
      const k = `${this.clusterOf(node.parent!)}:${node.offset}`;
      if (this.nodes.get(k) === node) this.nodes.delete(k);
    }
  }

  lookup(dir: FatNode, name: string): FatNode {
    const d = this.loadDir(dir);
    if (name === '.') return this.ref(dir);
    if (name === '..') return this.ref(dir.parent ?? dir);
    const e = this.findEntry(d, name);
    if (!e) throw new FatError('ENOENT', `no ${JSON.stringify(name)}`);
    return this.ref(this.nodeFor(dir, e));
  }

  /** Entries of a directory (without "." and ".."), with stable position cookies. */
  readdir(dir: FatNode): DirListEntry[] {
    const d = this.loadDir(dir);
    return d.parsed.entries.map((e) => ({ name: e.name, isDir: e.isDir, cookie: e.offset / 32 + 3, entry: e }));
  }

  /** The node for a readdir entry, with one reference taken (READDIRPLUS). */
  entryNode(dir: FatNode, e: DirEntry): FatNode {
    return this.ref(this.nodeFor(dir, e));
  }

  // ------------------------------------------------------------ attributes

  private fileMode(node: FatNode): number {
    if (node.isDir) return 0o040000 | (0o777 & ~this.opts.dmask);
    let perm = 0o777 & ~this.opts.fmask;
    if (this.opts.showexec && !/\.(exe|com|bat)$/i.test(node.name)) perm &= ~0o111;
    if (node.raw[11] & ATTR_RO) perm &= ~0o222;
    return 0o100000 | perm;
  }

  getattr(node: FatNode): NodeAttr {
    const t = node.isRoot ? { mtime: 0, atime: 0, crtime: 0 } : entryTimes(node.raw);
    let size = node.isDir ? 0 : node.raw.readUInt32LE(28);
    let nlink = 1;
    if (node.isDir) {
      try {
        const d = this.loadDir(node);
        size = d.buf.length;
        nlink = 2 + d.parsed.entries.filter((e) => e.isDir).length;
      } catch (err) {
        if (!(err instanceof FatError)) throw err;
        nlink = 2;
      }
    }
    const cs = this.geo.clusterSize;
    return {
      ino: node.id,
      size,
      blocks: (Math.ceil(size / cs) * cs) / 512,
      mode: this.fileMode(node),
      nlink,
      uid: this.opts.uid,
      gid: this.opts.gid,
      atimeMs: t.atime,
      mtimeMs: t.mtime,
      ctimeMs: t.mtime,
      blksize: cs,
    };
  }

  statfs(): StatFs {
    return {
      blocks: this.geo.clusterCount,
      bfree: this.fat.freeCount,
      bavail: this.fat.freeCount,
      bsize: this.geo.clusterSize,
      namelen: 255,
    };
  }

  private writable(): void {
    if (this.readOnly) throw new FatError('EROFS', 'mounted read-only');
    if (this.closed) throw new FatError('EIO', 'volume unmounted');
  }

  /** Writes the node's short entry back to its directory. */
  private writeEntry(node: FatNode): void {
    if (node.isRoot || node.unlinked) return;
    const d = this.loadDir(node.parent!);
    this.writeDir(d, node.offset, node.raw);
  }

  setTimes(node: FatNode, atimeMs?: number, mtimeMs?: number): void {
    this.writable();
    if (node.isRoot) return;
    if (mtimeMs !== undefined) setMtime(node.raw, mtimeMs);
    if (atimeMs !== undefined) setAtime(node.raw, atimeMs);
    this.writeEntry(node);
    this.afterChange();
  }

  /** chmod as vfat allows it: only the write bits, which set or clear the read-only attribute. */
  chmod(node: FatNode, mode: number): void {
    this.writable();
    const base = node.isDir ? 0o777 & ~this.opts.dmask : this.fileMode(node) | (0o222 & ~this.opts.fmask);
    if ((mode & 0o777 & ~base) !== 0) throw new FatError('EPERM', 'FAT cannot store these permission bits');
    if (node.isDir || node.isRoot) return;
    const ro = (mode & 0o222) === 0;
    node.raw[11] = ro ? node.raw[11] | ATTR_RO : node.raw[11] & ~ATTR_RO;
    this.writeEntry(node);
    this.afterChange();
  }

  // ------------------------------------------------------------ data

  private clusterOffset(c: number): number {
    return this.geo.dataOffset + (c - 2) * this.geo.clusterSize;
  }

  private nodeChain(node: FatNode): number[] {
    if (node.chain) return node.chain;
    const c = this.clusterOf(node);
    const size = node.raw.readUInt32LE(28);
    const what = `file ${JSON.stringify(node.name)}`;
    if (c === 0) {
      if (size !== 0) {
        const msg = `${what} has size ${size} but no clusters`;
        this.log(msg);
        throw new FatError('EIO', msg);
      }
      node.chain = [];
      return node.chain;
    }
    const need = Math.ceil(size / this.geo.clusterSize);
    const chain = this.fat.chain(c, what, need);
    if (chain.length !== need) {
      const msg = `${what}: ${chain.length} clusters for size ${size} (expected ${need})`;
      this.log(msg);
      throw new FatError('EIO', msg);
    }
    node.chain = chain;
    return chain;
  }

  /** Visits the device ranges of [pos, pos+len) along a chain, merging adjacent clusters. */
  private forRuns(chain: number[], pos: number, len: number, fn: (devOff: number, bufOff: number, n: number) => void): void {
    const cs = this.geo.clusterSize;
    let done = 0;
    while (done < len) {
      const p = pos + done;
      let ci = Math.floor(p / cs);
      const start = this.clusterOffset(chain[ci]) + (p % cs);
      let n = Math.min(cs - (p % cs), len - done);
      while (done + n < len && ci + 1 < chain.length && chain[ci + 1] === chain[ci] + 1) {
        ci++;
        n += Math.min(cs, len - done - n);
      }
      fn(start, done, n);
      done += n;
    }
  }

  private readClusters(chain: number[], pos: number, len: number): Buffer {
    const out = Buffer.alloc(len);
    this.forRuns(chain, pos, len, (devOff, bufOff, n) => this.dev.readInto(out, bufOff, devOff, n));
    return out;
  }

  read(node: FatNode, offset: number, length: number): Buffer {
    if (node.isDir) throw new FatError('EISDIR', 'is a directory');
    const size = node.raw.readUInt32LE(28);
    if (offset >= size || length <= 0) return Buffer.alloc(0);
    const chain = this.nodeChain(node);
    return this.readClusters(chain, offset, Math.min(length, size - offset));
  }

  /** Grows the node's chain to hold `newSize` bytes; FAT written before anything links to it. */
  private growChain(node: FatNode, newSize: number): number[] {
    const chain = this.nodeChain(node);
    const need = Math.ceil(newSize / this.geo.clusterSize) - chain.length;
    if (need <= 0) return chain;
    const fresh = this.fat.findFree(need);
    this.fat.linkNew(fresh);
    this.fat.flush();
    if (chain.length > 0) {
      this.fat.set(chain[chain.length - 1], fresh[0]);
      this.fat.flush();
    } else {
      setEntryCluster(node.raw, fresh[0], this.geo.fatType);
    }
    // in place: a copy per write made sequential writes of a large file quadratic in its cluster count
    for (const c of fresh) chain.push(c);
    node.chain = chain;
    return chain;
  }

  private writeZeros(chain: number[], from: number, to: number): void {
    const step = 1024 * 1024;
    for (let p = from; p < to; p += step) {
      const n = Math.min(step, to - p);
      const zeros = Buffer.alloc(n);
      this.forRuns(chain, p, n, (devOff, bufOff, len) => this.dev.write(devOff, zeros.subarray(bufOff, bufOff + len)));
    }
  }

  write(node: FatNode, offset: number, data: Buffer): number {
    this.writable();
    if (node.isDir) throw new FatError('EISDIR', 'is a directory');
    if (data.length === 0) return 0;
    const end = offset + data.length;
    if (end > MAX_FILE_SIZE) throw new FatError('EFBIG', 'FAT files are at most 4 GiB - 1');
    const size = node.raw.readUInt32LE(28);
    const chain = this.growChain(node, Math.max(size, end));
    if (offset > size) this.writeZeros(chain, size, offset);
    this.forRuns(chain, offset, data.length, (devOff, bufOff, n) => this.dev.write(devOff, data.subarray(bufOff, bufOff + n)));
    if (end > size) node.raw.writeUInt32LE(end, 28);
    setMtime(node.raw, this.now());
    node.raw[11] |= ATTR_ARCHIVE;
    this.writeEntry(node);
    this.afterChange();
    return data.length;
  }

  truncate(node: FatNode, newSize: number): void {
    this.writable();
    if (node.isDir) throw new FatError('EISDIR', 'is a directory');
    if (newSize > MAX_FILE_SIZE || newSize < 0) throw new FatError('EFBIG', 'FAT files are at most 4 GiB - 1');
    const size = node.raw.readUInt32LE(28);
    const chain = this.nodeChain(node);
    if (newSize > size) {
      const grown = this.growChain(node, newSize);
      this.writeZeros(grown, size, newSize);
      node.raw.writeUInt32LE(newSize, 28);
    } else if (newSize < size) {
      // zero the tail of the last kept cluster? Not needed: reads stop at size, growth zero-fills.
      const keep = Math.ceil(newSize / this.geo.clusterSize);
      node.raw.writeUInt32LE(newSize, 28);
      if (keep === 0) setEntryCluster(node.raw, 0, this.geo.fatType);
      setMtime(node.raw, this.now());
      this.writeEntry(node);
      if (keep < chain.length) {
        if (keep > 0) this.fat.set(chain[keep - 1], this.fat.endOfChain());
        this.fat.freeChain(chain.slice(keep));
        this.fat.flush();
      }
      node.chain = chain.slice(0, keep);
      this.afterChange();
      return;
    }
    setMtime(node.raw, this.now());
    node.raw[11] |= ATTR_ARCHIVE;
    this.writeEntry(node);
    this.afterChange();
  }

  /** fsync: everything is written through; make the device durable. */
  sync(): void {
    if (this.readOnly) return;
    this.fat.flush();
    this.dev.flush();
  }

  /** Every change is written through (FAT included); `flush` adds an fsync when a written file is closed (serve.ts). */
  private afterChange(): void {
    this.fat.flush();
  }

  // ------------------------------------------------------------ entries

  /** Where `count` slots fit: an offset, and how many clusters the directory must grow by. */
  private findSlots(dir: Dir, count: number): { offset: number; grow: number } {
    const buf = dir.buf;
    const end = dir.parsed.end;
    let run = 0;
    let runStart = 0;
    for (let off = 0; off + 32 <= buf.length; off += 32) {
      const free = off >= end || buf[off] === 0xe5;
      if (free) {
        if (run === 0) runStart = off;
        run++;
        if (run === count) return { offset: runStart, grow: 0 };
      } else run = 0;
    }
    if (dir.chain === null) throw new FatError('ENOSPC', 'the root directory is full');
    const missing = count - run;
    const startAt = run > 0 ? runStart : buf.length;
    const grow = Math.ceil((missing * 32) / this.geo.clusterSize);
    if (buf.length + grow * this.geo.clusterSize > MAX_DIR_BYTES) throw new FatError('ENOSPC', 'directory has the maximum number of entries');
    return { offset: startAt, grow };
  }

  /** Adds zeroed clusters to a directory (allocated, zeroed, then linked). */
  private growDir(dir: Dir, clusters: number[]): void {
    if (clusters.length === 0) return;
    this.fat.linkNew(clusters);
    this.fat.flush();
    const zeros = Buffer.alloc(this.geo.clusterSize);
    for (const c of clusters) this.dev.write(this.clusterOffset(c), zeros);
    this.fat.set(dir.chain![dir.chain!.length - 1], clusters[0]);
    this.fat.flush();
    dir.chain = dir.chain!.concat(clusters);
    const grown = Buffer.alloc(dir.buf.length + clusters.length * this.geo.clusterSize);
    dir.buf.copy(grown);
    this.dirCacheBytes += grown.length - dir.buf.length;
    dir.buf = grown;
    dir.stale = true;
  }

  /** Writes slots at `offset`, then keeps the end marker after them. */
  private placeSlots(dir: Dir, offset: number, slots: Buffer[]): void {
    const oldEnd = dir.parsed.end;
    const bytes = Buffer.concat(slots);
    this.writeDir(dir, offset, bytes);
    const after = offset + bytes.length;
    if (after > oldEnd && after < dir.buf.length && dir.buf[after] !== 0) this.writeDir(dir, after, Buffer.alloc(32));
  }

  private markDeleted(dir: Dir, firstSlot: number, offset: number): void {
    for (let off = firstSlot; off <= offset; off += 32) this.writeDir(dir, off, Buffer.from([0xe5]));
  }

  private prepareName(dir: Dir, name: string, ignore?: DirEntry): { slots: Buffer[]; short: Buffer; ntCase: number } {
    const n = checkName(name);
    const choice = chooseShortName(n, this.opts.shortname, (raw) => {
      const s = raw.toString('latin1');
      if (ignore && ignore.raw.subarray(0, 11).toString('latin1') === s) return true;
      return dir.parsed.shortNames.has(s);
    });
    const slots = choice.needLfn ? buildLfnSlots(n, lfnChecksum(choice.raw)) : [];
    return { slots, short: choice.raw, ntCase: choice.ntCase };
  }

  private createEntry(parent: FatNode, name: string, isDir: boolean): FatNode {
    this.writable();
    const d = this.loadDir(parent);
    if (this.findEntry(d, checkName(name))) throw new FatError('EEXIST', `${JSON.stringify(name)} exists`);
    const prep = this.prepareName(d, name);
    const place = this.findSlots(d, prep.slots.length + 1);
    const fresh = this.fat.findFree(place.grow + (isDir ? 1 : 0));
    const growBy = fresh.slice(0, place.grow);
    const now = this.now();
    let cluster = 0;
    if (isDir) {
      cluster = fresh[fresh.length - 1];
      this.fat.linkNew([cluster]);
      this.fat.flush();
      const block = Buffer.alloc(this.geo.clusterSize);
      const parentCluster = parent.isRoot ? 0 : this.clusterOf(parent);
      newShortEntry(Buffer.from('.          ', 'latin1'), ATTR_DIR, 0, cluster, this.geo.fatType, now).copy(block, 0);
      newShortEntry(Buffer.from('..         ', 'latin1'), ATTR_DIR, 0, parentCluster, this.geo.fatType, now).copy(block, 32);
      this.dev.write(this.clusterOffset(cluster), block);
    }
    this.growDir(d, growBy);
    const raw = newShortEntry(prep.short, isDir ? ATTR_DIR : ATTR_ARCHIVE, prep.ntCase, cluster, this.geo.fatType, now);
    this.placeSlots(d, place.offset, [...prep.slots, raw]);
    this.afterChange();
    const e = this.findEntry(d, name);
    if (!e) throw new FatError('EIO', 'internal: created entry not found');
    return this.ref(this.nodeFor(parent, e));
  }

  /** Creates an empty file; returns its node with one reference. */
  create(parent: FatNode, name: string): FatNode {
    return this.createEntry(parent, name, false);
  }

  mkdir(parent: FatNode, name: string): FatNode {
    return this.createEntry(parent, name, true);
  }

  private freeNodeClusters(node: FatNode): void {
    const c = this.clusterOf(node);
    if (c === 0) return;
    let chain: number[];
    try {
      chain = node.isDir ? this.fat.chain(c, `directory ${JSON.stringify(node.name)}`, this.maxDirClusters) : this.nodeChain(node);
    } catch (err) {
      if (!(err instanceof FatError)) throw err;
      this.log(`not freeing the clusters of ${JSON.stringify(node.name)}: ${err.reason}`);
      return;
    }
    if (node.isDir) this.forgetDir(c);
    this.fat.freeChain(chain);
    node.chain = [];
    this.fat.flush();
  }

  /** Detaches a deleted entry's node: freed now, or with its last reference. */
  private dropEntry(parent: FatNode, e: DirEntry): void {
    const k = this.nodeKey(parent, e.offset);
    const live = this.nodes.get(k);
    if (live) {
      this.nodes.delete(k);
      live.unlinked = true;
      if (live.refs > 0) {
        this.orphans.add(live);
        return;
      }
      this.freeNodeClusters(live);
      return;
    }
    const tmp = new FatNode(0, e.isDir, parent, e.offset, e.firstSlot, Buffer.from(e.raw), e.name);
    this.freeNodeClusters(tmp);
  }

  unlink(parent: FatNode, name: string): void {
    this.writable();
    const d = this.loadDir(parent);
    const e = this.findEntry(d, name);
    if (!e) throw new FatError('ENOENT', `no ${JSON.stringify(name)}`);
    if (e.isDir) throw new FatError('EISDIR', `${JSON.stringify(name)} is a directory`);
    this.markDeleted(d, e.firstSlot, e.offset);
    this.fat.flush();
    this.dropEntry(parent, e);
    this.afterChange();
  }

  private isEmptyDir(parent: FatNode, e: DirEntry): boolean {
    const node = this.nodeFor(parent, e);
    const d = this.loadDir(node);
    return d.parsed.entries.length === 0;
  }

  rmdir(parent: FatNode, name: string): void {
    this.writable();
    const d = this.loadDir(parent);
    const e = this.findEntry(d, name);
    if (!e) throw new FatError('ENOENT', `no ${JSON.stringify(name)}`);
    if (!e.isDir) throw new FatError('ENOTDIR', `${JSON.stringify(name)} is not a directory`);
    if (!this.isEmptyDir(parent, e)) throw new FatError('ENOTEMPTY', `${JSON.stringify(name)} is not empty`);
    this.markDeleted(d, e.firstSlot, e.offset);
    this.dropEntry(parent, e);
    this.afterChange();
  }

  /**
   * POSIX rename. flags: noReplace (RENAME_NOREPLACE). A case-only change
   * of a name (same entry) renames it in place.
   */
  rename(srcParent: FatNode, srcName: string, dstParent: FatNode, dstName: string, flags: { noReplace?: boolean } = {}): void {
    this.writable();
    const sd = this.loadDir(srcParent);
    const se = this.findEntry(sd, srcName);
    if (!se) throw new FatError('ENOENT', `no ${JSON.stringify(srcName)}`);
    const srcNode = this.nodeFor(srcParent, se);
    if (se.isDir && this.isWithin(this.dirKey(dstParent), se.cluster)) throw new FatError('EINVAL', 'cannot move a directory into itself');
    const newName = checkName(dstName);
    const dd = this.loadDir(dstParent);
    let target = this.findEntry(dd, newName);
    const sameDir = sd === dd;
    if (target && sameDir && target.offset === se.offset) {
      if (target.name === newName) return; // the same name: nothing to do
      target = undefined; // a case change of the same entry
    }
    if (target) {
      if (flags.noReplace) throw new FatError('EEXIST', `${JSON.stringify(dstName)} exists`);
      if (se.isDir && !target.isDir) throw new FatError('ENOTDIR', `${JSON.stringify(dstName)} is not a directory`);
      if (!se.isDir && target.isDir) throw new FatError('EISDIR', `${JSON.stringify(dstName)} is a directory`);
      if (target.isDir && !this.isEmptyDir(dstParent, target)) throw new FatError('ENOTEMPTY', `${JSON.stringify(dstName)} is not empty`);
    }
    const prep = this.prepareName(dd, newName, sameDir ? undefined : undefined);
    const place = this.findSlots(dd, prep.slots.length + 1);
    const grow = this.fat.findFree(place.grow);
    this.growDir(dd, grow);
    // the new short entry: the source's, with the new short name and case bits
    const raw = Buffer.from(srcNode.raw);
    prep.short.copy(raw, 0, 0, 11);
    raw[12] = prep.ntCase;
    if (target) this.markDeleted(dd, target.firstSlot, target.offset);
    const sd2 = this.loadDir(srcParent);
    this.markDeleted(sd2, se.firstSlot, se.offset);
    this.placeSlots(dd, place.offset, [...prep.slots, raw]);
    // move the node
    const oldKey = this.nodeKey(srcParent, se.offset);
    if (this.nodes.get(oldKey) === srcNode) this.nodes.delete(oldKey);
    srcNode.parent = dstParent;
    srcNode.offset = place.offset + prep.slots.length * 32;
    srcNode.firstSlot = place.offset;
    srcNode.raw = raw;
    srcNode.name = newName;
    if (se.isDir && srcParent !== dstParent) {
      const moved = this.loadDir(srcNode);
      const dotdot = moved.parsed.entries.length >= 0 ? moved.buf.subarray(32, 64) : null;
      if (dotdot && dotdot[0] === 0x2e && dotdot[1] === 0x2e) {
        const upd = Buffer.from(dotdot);
        setEntryCluster(upd, dstParent.isRoot ? 0 : this.clusterOf(dstParent), this.geo.fatType);
        this.writeDir(moved, 32, upd);
      } else {
        this.log(`directory ${JSON.stringify(newName)} has no ".." entry to update`);
      }
    }
    if (target) this.dropEntry(dstParent, target);
    const newKey = this.nodeKey(dstParent, srcNode.offset);
    const occupant = this.nodes.get(newKey);
    if (occupant && occupant !== srcNode) occupant.unlinked = true;
    if (srcNode.refs > 0) this.nodes.set(newKey, srcNode);
    this.afterChange();
  }

  /** Whether directory `cluster` is `ancestor` or below it, following the ".." entries on disk (bounded). */
  private isWithin(cluster: number, ancestor: number): boolean {
    const rootKey = this.geo.fatType === 32 ? this.geo.rootCluster : 0;
    let c = cluster;
    for (let depth = 0; depth < 4096; depth++) {
      if (c === ancestor) return true;
      if (c === rootKey || c === 0 || !this.fat.inRange(c)) return false;
      const dotdot = this.dev.read(this.clusterOffset(c) + 32, 32);
      if (dotdot[0] !== 0x2e || dotdot[1] !== 0x2e) {
        this.log(`directory at cluster ${c} has no ".." entry`);
        return false;
      }
      const lo = dotdot.readUInt16LE(26);
      c = this.geo.fatType === 32 ? ((dotdot.readUInt16LE(20) << 16) | lo) >>> 0 : lo;
    }
    throw new FatError('EIO', 'directory tree too deep or looped');
  }

  /** Clean unmount: frees what unlinked-but-open objects held, restores the clean bits. */
  unmount(): void {
    if (this.closed) return;
    if (!this.readOnly) {
      for (const n of this.orphans) this.freeNodeClusters(n);
      this.orphans.clear();
      this.fat.markClean();
    }
    this.closed = true;
  }
}
