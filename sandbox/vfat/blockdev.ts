/**
 * Positioned I/O on the device fd (a block device or an image file), with a
 * small write-through cache of recently read blocks.
 *
 * Size: fstat gives the size of a regular file. For a block device st_size
 * is 0, and BLKGETSIZE64 is an ioctl Node cannot make; the size is read from
 * /sys/dev/block/MAJ:MIN/size (512-byte units), found from fstat's st_rdev.
 * That needs no privilege and no path to the device, only the fd; it works in
 * the sandbox as long as /sys is visible (ProtectKernelTunables keeps it
 * read-only, which is enough). Callers may also pass the size explicitly.
 */
import * as fs from 'node:fs';
import { FatError } from './errors';

export function deviceSize(fd: number): number {
  const st = fs.fstatSync(fd);
  if (st.isFile()) return st.size;
  if (st.isBlockDevice()) {
    const major = Math.floor(st.rdev / 256) & 0xfff; // glibc's gnu_dev_major for small numbers
    const minor = (st.rdev & 0xff) | ((Math.floor(st.rdev / 4096) & 0xfff00));
    const text = fs.readFileSync(`/sys/dev/block/${major}:${minor}/size`, 'utf8');
    const sectors = Number(text.trim());
    if (!Number.isSafeInteger(sectors)) throw new FatError('EIO', `cannot read the size of block device ${major}:${minor}`);
    return sectors * 512;
  }
  throw new FatError('EINVAL', 'the device fd is neither a regular file nor a block device');
}

const BLOCK = 4096;
const CACHE_BLOCKS = 256; // 1 MiB

export class BlockDevice {
  private readonly cache = new Map<number, Buffer>();
  /** bytes read and written, for statistics and tests */
  readonly stats = { reads: 0, writes: 0 };

  constructor(
    readonly fd: number,
    readonly size: number,
    readonly readOnly: boolean,
  ) {}

  static open(fd: number, readOnly: boolean, size?: number): BlockDevice {
    return new BlockDevice(fd, size ?? deviceSize(fd), readOnly);
  }

  private checkRange(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new FatError('EIO', `access beyond the end of the device (offset ${offset}, length ${length}, size ${this.size})`);
    }
  }

  private block(index: number): Buffer {
    let b = this.cache.get(index);
    if (b) {
      this.cache.delete(index);
      this.cache.set(index, b);
      return b;
    }
    b = Buffer.alloc(BLOCK);
    const start = index * BLOCK;
    const len = Math.min(BLOCK, this.size - start);
    this.rawRead(b, 0, len, start);
    this.cache.set(index, b);
    if (this.cache.size > CACHE_BLOCKS) this.cache.delete(this.cache.keys().next().value as number);
    return b;
  }

  private rawRead(buf: Buffer, off: number, len: number, pos: number): void {
    let done = 0;
    while (done < len) {
      const n = fs.readSync(this.fd, buf, off + done, len - done, pos + done);
      if (n === 0) throw new FatError('EIO', `short read from the device at ${pos + done}`);
      done += n;
    }
    this.stats.reads += len;
  }

  /** Reads `length` bytes at `offset`. Small reads go through the cache; large ones straight to the device. */
  read(offset: number, length: number): Buffer {
    this.checkRange(offset, length);
    const out = Buffer.alloc(length);
    this.readInto(out, 0, offset, length);
    return out;
  }

  readInto(out: Buffer, outOffset: number, offset: number, length: number): void {
    this.checkRange(offset, length);
    if (length >= 4 * BLOCK) {
      // big data reads bypass the cache, but must see cached (= written) bytes: the cache is write-through, so the device has them
      try {
        this.rawRead(out, outOffset, length, offset);
      } catch (err) {
        throw err instanceof FatError ? err : new FatError('EIO', `device read failed: ${(err as Error).message}`);
      }
      return;
    }
    let done = 0;
    while (done < length) {
      const pos = offset + done;
      const bi = Math.floor(pos / BLOCK);
      const inBlock = pos - bi * BLOCK;
      const n = Math.min(BLOCK - inBlock, length - done);
      let b: Buffer;
      try {
        b = this.block(bi);
      } catch (err) {
        throw err instanceof FatError ? err : new FatError('EIO', `device read failed: ${(err as Error).message}`);
      }
      b.copy(out, outOffset + done, inBlock, inBlock + n);
      done += n;
    }
  }

  write(offset: number, data: Buffer): void {
    if (this.readOnly) throw new FatError('EROFS', 'the volume is mounted read-only');
    this.checkRange(offset, data.length);
    let done = 0;
    try {
      while (done < data.length) {
        done += fs.writeSync(this.fd, data, done, data.length - done, offset + done);
      }
    } catch (err) {
      throw new FatError('EIO', `device write failed: ${(err as Error).message}`);
    }
    this.stats.writes += data.length;
    // keep cached blocks coherent
    const first = Math.floor(offset / BLOCK);
    const last = Math.floor((offset + data.length - 1) / BLOCK);
    for (let bi = first; bi <= last && data.length > 0; bi++) {
      const b = this.cache.get(bi);
      if (!b) continue;
      const bStart = bi * BLOCK;
      const from = Math.max(offset, bStart);
      const to = Math.min(offset + data.length, bStart + BLOCK);
      data.copy(b, from - bStart, from - offset, to - offset);
    }
  }

  flush(): void {
    if (this.readOnly) return;
    try {
      fs.fsyncSync(this.fd);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EINVAL' && code !== 'EROFS') throw new FatError('EIO', `fsync failed: ${(err as Error).message}`);
    }
  }
}
