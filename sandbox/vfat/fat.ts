/**
 * The file allocation table: held in memory (one copy, as raw bytes: at most
 * 256 MiB, checked by the BPB parser; a 32 GiB stick with 32 KiB clusters has
 * a 4 MiB FAT), written back sector by sector to every FAT copy by `flush()`.
 *
 * Alongside the table it keeps, per cluster, how many FAT entries point at it
 * (saturating at 255). A well-formed chain has a head nobody points at and
 * members exactly one entry points at; anything else is a loop or a
 * cross-link. `chain()` checks that on every walk, so no caller ever reads or
 * writes along a corrupt chain, and a walk is bounded by the cluster count.
 *
 * Dirty state while mounted read-write: FAT[1]'s clean-shutdown bit
 * (FAT16 0x8000, FAT32 0x08000000) is cleared, and the boot sector's state
 * byte gets bit 0 (what Linux's driver and fsck.fat use); both are restored
 * on a clean unmount, unless the volume was already dirty at mount.
 */
import { BlockDevice } from './blockdev';
import { Geometry, parseFsInfo } from './bpb';
import { FatError, FatLogger } from './errors';

export const FREE = 0;

export class FatTable {
  private readonly raw: Buffer;
  private readonly dirtySectors = new Set<number>();
  private readonly indeg: Uint8Array;
  /** exact count of free clusters, from the scan at mount */
  freeCount = 0;
  nextFree = 2;
  readonly eoc: number;
  readonly bad: number;
  private wasDirty = false;
  private markedDirty = false;
  private fsInfoDirty = false;

  constructor(
    private readonly dev: BlockDevice,
    readonly geo: Geometry,
    private readonly log: FatLogger,
  ) {
    const start = geo.fatOffset + (geo.mirrorDisabled ? geo.activeFat * geo.fatSectors * geo.bytesPerSector : 0);
    this.raw = dev.read(start, geo.fatSectors * geo.bytesPerSector);
    this.eoc = geo.fatType === 12 ? 0xff8 : geo.fatType === 16 ? 0xfff8 : 0x0ffffff8;
    this.bad = this.eoc - 1;
    this.indeg = new Uint8Array(geo.maxCluster + 1);
    let free = 0;
    for (let c = 2; c <= geo.maxCluster; c++) {
      const v = this.get(c);
      if (v === FREE) free++;
      else if (v >= 2 && v <= geo.maxCluster && this.indeg[v] < 255) this.indeg[v]++;
    }
    this.freeCount = free;
    if (geo.fatType === 32 && geo.fsInfoSector) {
      const info = parseFsInfo(dev.read(geo.fsInfoSector * geo.bytesPerSector, geo.bytesPerSector), geo);
      if (info.nextFree !== 0xffffffff) this.nextFree = info.nextFree;
      if (info.freeCount !== 0xffffffff && info.freeCount !== free) {
        log(`FSInfo free count ${info.freeCount} differs from the FAT's ${free}; using the FAT's`);
        this.fsInfoDirty = true;
      }
    }
  }

  get(n: number): number {
    const raw = this.raw;
    switch (this.geo.fatType) {
      case 12: {
        const off = n + (n >> 1);
        const v = raw[off] | (raw[off + 1] << 8);
        return n & 1 ? v >> 4 : v & 0xfff;
      }
      case 16:
        return raw.readUInt16LE(n * 2);
      default:
        return raw.readUInt32LE(n * 4) & 0x0fffffff;
    }
  }

  private put(n: number, v: number): void {
    const raw = this.raw;
    const bps = this.geo.bytesPerSector;
    switch (this.geo.fatType) {
      case 12: {
        const off = n + (n >> 1);
        if (n & 1) {
          raw[off] = (raw[off] & 0x0f) | ((v & 0x0f) << 4);
          raw[off + 1] = (v >> 4) & 0xff;
        } else {
          raw[off] = v & 0xff;
          raw[off + 1] = (raw[off + 1] & 0xf0) | ((v >> 8) & 0x0f);
        }
        this.dirtySectors.add(Math.floor(off / bps));
        this.dirtySectors.add(Math.floor((off + 1) / bps));
        break;
      }
      case 16:
        raw.writeUInt16LE(v, n * 2);
        this.dirtySectors.add(Math.floor((n * 2) / bps));
        break;
      default: {
        const keep = raw.readUInt32LE(n * 4) & 0xf0000000;
        raw.writeUInt32LE((keep | (v & 0x0fffffff)) >>> 0, n * 4);
        this.dirtySectors.add(Math.floor((n * 4) / bps));
      }
    }
  }

  isEoc(v: number): boolean {
    return v >= this.eoc;
  }

  inRange(c: number): boolean {
    return c >= 2 && c <= this.geo.maxCluster;
  }

  /** Sets an entry, keeping the in-degree counts right. */
  set(n: number, v: number): void {
    if (!this.inRange(n)) throw new FatError('EIO', `internal: FAT write to cluster ${n} out of range`);
    const old = this.get(n);
    if (this.inRange(old) && this.indeg[old] > 0 && this.indeg[old] < 255) this.indeg[old]--;
    if (this.inRange(v) && this.indeg[v] < 255) this.indeg[v]++;
    if (old === FREE && v !== FREE) this.freeCount--;
    if (old !== FREE && v === FREE) this.freeCount++;
    this.put(n, v);
    this.fsInfoDirty = true;
  }

  /**
   * The validated chain starting at `start`. `what` names the object for
   * the error. `maxLength` bounds the walk (defaults to the cluster count).
   * Throws EIO on: start out of range, a head other entries point at, a
   * member reached twice or pointed at by more than one entry (loop or
   * cross-link), a free or bad cluster inside the chain, a chain longer than
   * `maxLength`.
   */
  chain(start: number, what: string, maxLength = this.geo.clusterCount): number[] {
    const fail = (why: string): never => {
      const msg = `${what}: cluster chain from ${start} ${why}`;
      this.log(msg);
      throw new FatError('EIO', msg);
    };
    if (!this.inRange(start)) fail('starts outside the data area');
    if (this.indeg[start] !== 0) fail(`is cross-linked or looped (cluster ${start} is also the successor of another cluster)`);
    const out: number[] = [];
    let c = start;
    for (;;) {
      out.push(c);
      if (out.length > maxLength) fail(`is longer than ${maxLength} clusters`);
      const next = this.get(c);
      if (this.isEoc(next)) return out;
      if (next === FREE) fail(`runs into free cluster at ${c}`);
      if (next === this.bad) fail(`runs into a bad cluster after ${c}`);
      if (!this.inRange(next)) fail(`points outside the data area (${next}) at ${c}`);
      if (this.indeg[next] !== 1) fail(`is cross-linked at cluster ${next}`);
      if (next === start) fail('loops');
      c = next;
    }
  }

  /** Finds `count` free clusters (without taking them). ENOSPC when there are not enough. */
  findFree(count: number): number[] {
    if (count > this.freeCount) throw new FatError('ENOSPC', `need ${count} clusters, ${this.freeCount} free`);
    const out: number[] = [];
    const max = this.geo.maxCluster;
    let c = this.nextFree >= 2 && this.nextFree <= max ? this.nextFree : 2;
    for (let scanned = 0; scanned < this.geo.clusterCount && out.length < count; scanned++) {
      if (this.get(c) === FREE) out.push(c);
      c = c >= max ? 2 : c + 1;
    }
    if (out.length < count) throw new FatError('ENOSPC', 'no free clusters');
    return out;
  }

  /** Marks `clusters` as one chain ending in EOC (members first, then each link). */
  linkNew(clusters: number[]): void {
    for (let i = clusters.length - 1; i >= 0; i--) {
      this.set(clusters[i], i === clusters.length - 1 ? this.endOfChain() : clusters[i + 1]);
    }
    if (clusters.length) this.nextFree = clusters[clusters.length - 1] + 1 > this.geo.maxCluster ? 2 : clusters[clusters.length - 1] + 1;
  }

  endOfChain(): number {
    return this.geo.fatType === 32 ? 0x0fffffff : this.geo.fatType === 16 ? 0xffff : 0xfff;
  }

  /** Frees a validated chain, tail first. */
  freeChain(clusters: number[]): void {
    for (let i = clusters.length - 1; i >= 0; i--) this.set(clusters[i], FREE);
  }

  /** Writes dirty FAT sectors to every FAT copy, then FSInfo. */
  flush(): void {
    if (this.dev.readOnly) return;
    const g = this.geo;
    const bps = g.bytesPerSector;
    const sectors = [...this.dirtySectors].sort((a, b) => a - b);
    this.dirtySectors.clear();
    const copies = g.mirrorDisabled ? [g.activeFat] : Array.from({ length: g.numFats }, (_, i) => i);
    // coalesce runs of sectors
    let i = 0;
    while (i < sectors.length) {
      let j = i;
      while (j + 1 < sectors.length && sectors[j + 1] === sectors[j] + 1) j++;
      const from = sectors[i] * bps;
      const to = (sectors[j] + 1) * bps;
      const bytes = this.raw.subarray(from, to);
      for (const copy of copies) this.dev.write(g.fatOffset + copy * g.fatSectors * bps + from, bytes);
      i = j + 1;
    }
    if (this.fsInfoDirty && g.fatType === 32 && g.fsInfoSector) {
      const b = Buffer.alloc(8);
      b.writeUInt32LE(this.freeCount, 0);
      b.writeUInt32LE(this.nextFree, 4);
      this.dev.write(g.fsInfoSector * bps + 488, b);
      this.fsInfoDirty = false;
    }
  }

  /** Mount read-write: note whether the volume was cleanly unmounted, then mark it in use. */
  markDirty(): void {
    const g = this.geo;
    const state = this.dev.read(g.stateOffset, 1)[0];
    let clean = (state & 1) === 0;
    if (g.fatType !== 12) {
      const f1 = this.get(1);
      const bit = g.fatType === 16 ? 0x8000 : 0x08000000;
      if ((f1 & bit) === 0) clean = false;
      this.put(1, f1 & ~bit);
    }
    this.wasDirty = !clean;
    if (this.wasDirty) this.log('volume was not cleanly unmounted; it stays marked dirty for fsck');
    this.dev.write(g.stateOffset, Buffer.from([state | 1]));
    this.flush();
    this.markedDirty = true;
  }

  /** Clean unmount: restore the clean bits (unless the volume came in dirty). */
  markClean(): void {
    if (!this.markedDirty) return;
    this.flush();
    this.dev.flush();
    if (!this.wasDirty) {
      const g = this.geo;
      if (g.fatType !== 12) {
        const bit = g.fatType === 16 ? 0x8000 : 0x08000000;
        this.put(1, this.get(1) | bit);
        this.flush();
      }
      const state = this.dev.read(g.stateOffset, 1)[0];
      this.dev.write(g.stateOffset, Buffer.from([state & ~1]));
    }
    this.dev.flush();
    this.markedDirty = false;
  }

  /** For checkVolume: how many entries point at `c`. */
  inDegree(c: number): number {
    return this.indeg[c];
  }
}
