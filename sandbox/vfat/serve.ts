/**
 * serveFat: the FAT engine behind a FUSE connection.
 *
 *   await serveFat({ fuseFd, deviceFd, readOnly, options, log })
 *
 * fuseFd is /dev/fuse already mounted (by the helper: mount(2) with fd=N);
 * the first request read from it is INIT. deviceFd is the block device or
 * image (O_RDONLY for readOnly, else O_RDWR). The promise resolves when the
 * filesystem is unmounted, after the clean-unmount work (FAT and FSInfo
 * written, dirty bits cleared, fsync); it rejects with MountRefused before
 * serving anything when the device is not a FAT volume we accept.
 *
 * Node ids are the engine's node ids (never reused, so generation 0 is
 * enough); the kernel's lookup counts are engine references, dropped by
 * FORGET/BATCH_FORGET; open handles hold a reference too.
 */
import { FuseSession, Request, SessionHandler } from '../fuse/session';
import {
  ATTR_OUT_SIZE, cstrings, direntSize, DT_DIR, DT_REG, encodeAttrOut, encodeDirent, encodeEntryOut, encodeOpenOut,
  encodeStatfsOut, ENTRY_OUT_SIZE, FATTR_ATIME, FATTR_ATIME_NOW, FATTR_GID, FATTR_MODE, FATTR_MTIME, FATTR_MTIME_NOW,
  FATTR_SIZE, FATTR_UID, Op, RENAME_NOREPLACE,
} from '../fuse/protocol';
import { ERRNO, FatError, FatLogger } from './errors';
import { FatOptions } from './options';
import { FatNode, Volume } from './volume';

export interface ServeFatOptions {
  fuseFd: number;
  deviceFd: number;
  readOnly: boolean;
  /** vfat mount options (uid=,gid=,umask=,dmask=,fmask=,shortname=,utf8,showexec,flush,ro,rw) */
  options?: string | FatOptions;
  log?: FatLogger;
  /** device size, when fstat/sysfs cannot tell */
  deviceSize?: number;
  /** advertise READDIRPLUS (default true) */
  readdirplus?: boolean;
  /** called once the volume is open, before serving (tests, statistics) */
  onReady?: (volume: Volume) => void;
}

const VALID_SEC = 1;
const O_ACCMODE = 3;
const O_TRUNC = 0o1000;
const O_EXCL = 0o200;
const ENOSYS = 38;
const EINVAL = 22;

const utf8 = new TextDecoder('utf-8', { fatal: true });

export async function serveFat(o: ServeFatOptions): Promise<void> {
  const volume = openFat(o);
  o.onReady?.(volume);
  await serveVolume(volume, o.fuseFd, o);
}

/**
 * The open phase alone: validates the boot sector, geometry, FAT, root
 * directory and options, and (read-write) marks the volume dirty. Throws
 * MountRefused with a reason. The adapter calls it before it asks the helper
 * to mount, so a bad volume is refused and nothing is mounted.
 */
export function openFat(o: Omit<ServeFatOptions, 'fuseFd'>): Volume {
  return Volume.open({ fd: o.deviceFd, readOnly: o.readOnly, options: o.options, log: o.log ?? (() => {}), size: o.deviceSize });
}

/** Serves an open volume on a mounted /dev/fuse fd until unmount; the volume is closed cleanly then. */
export async function serveVolume(volume: Volume, fuseFd: number, o: Pick<ServeFatOptions, 'log' | 'readdirplus'> = {}): Promise<void> {
  const log = o.log ?? (() => {});
  const handler = new FatFuseHandler(volume, log);
  const session = new FuseSession(fuseFd, handler, { readdirplus: o.readdirplus, log });
  await session.run();
}

class FatFuseHandler implements SessionHandler {
  private readonly nodes = new Map<number, FatNode>();
  private readonly handles = new Map<number, FatNode>();
  /** handles opened for writing: `flush` makes their release durable */
  private readonly writeHandles = new Set<number>();
  private nextFh = 1;
  private ended = false;

  constructor(
    private readonly v: Volume,
    private readonly log: FatLogger,
  ) {
    this.nodes.set(1, v.root);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    try {
      this.v.unmount();
    } catch (err) {
      this.log(`clean unmount failed: ${(err as Error).message}`);
    }
  }

  private node(id: number): FatNode {
    const n = this.nodes.get(id);
    if (!n) throw new FatError('EIO', `unknown node id ${id}`);
    return n;
  }

  private remember(n: FatNode): FatNode {
    this.nodes.set(n.id, n);
    return n;
  }

  private forget(id: number, count: number): void {
    const n = this.nodes.get(id);
    if (!n || n.isRoot) return;
    this.v.release(n, count);
    if (n.refs === 0) this.nodes.delete(id);
  }

  private entryOut(n: FatNode): Buffer {
    const b = Buffer.alloc(ENTRY_OUT_SIZE);
    encodeEntryOut(b, 0, n.id, 0, VALID_SEC, this.v.getattr(n));
    return b;
  }

  private name(b: Buffer): string {
    try {
      return utf8.decode(b);
    } catch {
      throw new FatError('EINVAL', 'name is not valid UTF-8');
    }
  }

  handle(req: Request, s: FuseSession): void {
    const h = req.header;
    try {
      this.dispatch(req, s);
    } catch (err) {
      if (err instanceof FatError) {
        s.error(h.unique, ERRNO[err.code] ?? 5);
      } else {
        this.log(`internal error in opcode ${h.opcode}: ${(err as Error).stack ?? err}`);
        s.error(h.unique, 5);
      }
    }
  }

  private dispatch(req: Request, s: FuseSession): void {
    const { header: h, buf, arg } = req;
    const end = h.len;
    const u = h.unique;
    switch (h.opcode) {
      case Op.LOOKUP: {
        const [name] = cstrings(buf, arg, end, 1) ?? [Buffer.alloc(0)];
        let str: string;
        try {
          str = this.name(name);
        } catch {
          throw new FatError('ENOENT', 'not UTF-8');
        }
        const n = this.remember(this.v.lookup(this.node(h.nodeid), str));
        s.reply(u, this.entryOut(n));
        return;
      }
      case Op.FORGET:
        this.forget(h.nodeid, Number(buf.readBigUInt64LE(arg)));
        return;
      case Op.BATCH_FORGET: {
        const count = buf.readUInt32LE(arg);
        for (let i = 0; i < count && arg + 8 + (i + 1) * 16 <= end; i++) {
          const off = arg + 8 + i * 16;
          this.forget(Number(buf.readBigUInt64LE(off)), Number(buf.readBigUInt64LE(off + 8)));
        }
        return;
      }
      case Op.INTERRUPT:
        return; // requests are answered synchronously: nothing is ever pending
      case Op.GETATTR:
        s.reply(u, encodeAttrOut(this.v.getattr(this.node(h.nodeid)), VALID_SEC));
        return;
      case Op.SETATTR: {
        const n = this.node(h.nodeid);
        const valid = buf.readUInt32LE(arg);
        const size = Number(buf.readBigUInt64LE(arg + 16));
        const atime = Number(buf.readBigInt64LE(arg + 32)) * 1000 + buf.readUInt32LE(arg + 56) / 1e6;
        const mtime = Number(buf.readBigInt64LE(arg + 40)) * 1000 + buf.readUInt32LE(arg + 60) / 1e6;
        const mode = buf.readUInt32LE(arg + 68);
        const uid = buf.readUInt32LE(arg + 76);
        const gid = buf.readUInt32LE(arg + 80);
        if ((valid & FATTR_UID && uid !== this.v.opts.uid) || (valid & FATTR_GID && gid !== this.v.opts.gid)) {
          throw new FatError('EPERM', 'FAT has no owners');
        }
        if (valid & FATTR_MODE) this.v.chmod(n, mode);
        if (valid & FATTR_SIZE) this.v.truncate(n, size);
        const now = Date.now();
        const at = valid & FATTR_ATIME_NOW ? now : valid & FATTR_ATIME ? atime : undefined;
        const mt = valid & FATTR_MTIME_NOW ? now : valid & FATTR_MTIME ? mtime : undefined;
        if (at !== undefined || mt !== undefined) this.v.setTimes(n, at, mt);
        s.reply(u, encodeAttrOut(this.v.getattr(n), VALID_SEC));
        return;
      }
      case Op.OPEN:
      case Op.OPENDIR: {
        const n = this.node(h.nodeid);
        const flags = buf.readUInt32LE(arg);
        if (h.opcode === Op.OPEN) {
          if (n.isDir) throw new FatError('EISDIR', 'is a directory');
          if ((flags & O_ACCMODE) !== 0 && this.v.readOnly) throw new FatError('EROFS', 'read-only');
          if (flags & O_TRUNC && (flags & O_ACCMODE) !== 0) this.v.truncate(n, 0);
        } else if (!n.isDir) throw new FatError('ENOTDIR', 'not a directory');
        s.reply(u, encodeOpenOut(this.open(n, h.opcode === Op.OPEN && (flags & O_ACCMODE) !== 0), 0));
        return;
      }
      case Op.RELEASE:
      case Op.RELEASEDIR: {
        const fh = Number(buf.readBigUInt64LE(arg));
        const n = this.handles.get(fh);
        // flush: as Linux's vfat, a file written through this handle reaches the device when it is closed
        if (this.writeHandles.delete(fh) && this.v.opts.flush) this.v.sync();
        if (n) {
          this.handles.delete(fh);
          this.v.release(n);
          if (n.refs === 0 && !n.isRoot) this.nodes.delete(n.id);
        }
        s.reply(u);
        return;
      }
      case Op.READ: {
        const n = this.fhNode(buf, arg, h.nodeid);
        const offset = Number(buf.readBigUInt64LE(arg + 8));
        const size = buf.readUInt32LE(arg + 16);
        s.reply(u, this.v.read(n, offset, size));
        return;
      }
      case Op.WRITE: {
        const n = this.fhNode(buf, arg, h.nodeid);
        const offset = Number(buf.readBigUInt64LE(arg + 8));
        const size = buf.readUInt32LE(arg + 16);
        const data = buf.subarray(arg + 40, arg + 40 + size);
        if (data.length !== size) throw new FatError('EINVAL', 'short write request');
        const written = this.v.write(n, offset, data);
        const out = Buffer.alloc(8);
        out.writeUInt32LE(written, 0);
        s.reply(u, out);
        return;
      }
      case Op.FLUSH:
        s.reply(u);
        return;
      case Op.FSYNC:
      case Op.FSYNCDIR:
        this.v.sync();
        s.reply(u);
        return;
      case Op.STATFS: {
        const st = this.v.statfs();
        s.reply(u, encodeStatfsOut({ ...st, files: 0, ffree: 0, frsize: st.bsize }));
        return;
      }
      case Op.CREATE: {
        const flags = buf.readUInt32LE(arg);
        const names = cstrings(buf, arg + 16, end, 1);
        if (!names) throw new FatError('EINVAL', 'bad name');
        const dir = this.node(h.nodeid);
        const name = this.name(names[0]);
        let n: FatNode;
        try {
          n = this.v.create(dir, name);
        } catch (err) {
          if (!(err instanceof FatError) || err.code !== 'EEXIST' || flags & O_EXCL) throw err;
          n = this.v.lookup(dir, name);
          if (n.isDir) {
            this.v.release(n);
            throw new FatError('EISDIR', 'is a directory');
          }
          if (flags & O_TRUNC) this.v.truncate(n, 0);
        }
        this.remember(n);
        s.reply(u, this.entryOut(n), encodeOpenOut(this.open(n, (flags & O_ACCMODE) !== 0), 0));
        return;
      }
      case Op.MKDIR: {
        const names = cstrings(buf, arg + 8, end, 1);
        if (!names) throw new FatError('EINVAL', 'bad name');
        const n = this.remember(this.v.mkdir(this.node(h.nodeid), this.name(names[0])));
        s.reply(u, this.entryOut(n));
        return;
      }
      case Op.UNLINK:
      case Op.RMDIR: {
        const names = cstrings(buf, arg, end, 1);
        if (!names) throw new FatError('EINVAL', 'bad name');
        const dir = this.node(h.nodeid);
        const name = this.name(names[0]);
        if (h.opcode === Op.UNLINK) this.v.unlink(dir, name);
        else this.v.rmdir(dir, name);
        s.reply(u);
        return;
      }
      case Op.RENAME:
      case Op.RENAME2: {
        const newdir = Number(buf.readBigUInt64LE(arg));
        let flags = 0;
        let off = arg + 8;
        if (h.opcode === Op.RENAME2) {
          flags = buf.readUInt32LE(arg + 8);
          off = arg + 16;
        }
        if (flags & ~RENAME_NOREPLACE) {
          s.error(u, EINVAL); // RENAME_EXCHANGE and RENAME_WHITEOUT cannot be done on FAT
          return;
        }
        const names = cstrings(buf, off, end, 2);
        if (!names) throw new FatError('EINVAL', 'bad names');
        this.v.rename(this.node(h.nodeid), this.name(names[0]), this.node(newdir), this.name(names[1]), {
          noReplace: (flags & RENAME_NOREPLACE) !== 0,
        });
        s.reply(u);
        return;
      }
      case Op.READDIR:
      case Op.READDIRPLUS:
        this.readdir(req, s, h.opcode === Op.READDIRPLUS);
        return;
      default:
        s.error(u, ENOSYS); // ACCESS included: default_permissions does the checks
    }
  }

  private open(n: FatNode, forWriting = false): number {
    this.v.ref(n);
    const fh = this.nextFh++;
    this.handles.set(fh, n);
    if (forWriting) this.writeHandles.add(fh);
    return fh;
  }

  private fhNode(buf: Buffer, arg: number, nodeid: number): FatNode {
    const fh = Number(buf.readBigUInt64LE(arg));
    return this.handles.get(fh) ?? this.node(nodeid);
  }

  private readdir(req: Request, s: FuseSession, plus: boolean): void {
    const { header: h, buf, arg } = req;
    const fh = Number(buf.readBigUInt64LE(arg));
    const dir = this.handles.get(fh) ?? this.node(h.nodeid);
    const offset = Number(buf.readBigUInt64LE(arg + 8));
    const size = buf.readUInt32LE(arg + 16);
    const out = Buffer.alloc(size);
    let used = 0;
    const list: { name: string; cookie: number; isDir: boolean; e?: ReturnType<Volume['readdir']>[number] }[] = [
      { name: '.', cookie: 1, isDir: true },
      { name: '..', cookie: 2, isDir: true },
      ...this.v.readdir(dir).map((e) => ({ name: e.name, cookie: e.cookie, isDir: e.isDir, e })),
    ];
    for (const item of list) {
      if (item.cookie <= offset) continue;
      const nameBuf = Buffer.from(item.name, 'utf8');
      const need = (plus ? ENTRY_OUT_SIZE : 0) + direntSize(nameBuf.length);
      if (used + need > size) break;
      const type = item.isDir ? DT_DIR : DT_REG;
      if (plus) {
        let ino = 0;
        if (item.e) {
          let n: FatNode;
          try {
            n = this.remember(this.v.entryNode(dir, item.e.entry));
          } catch (err) {
            if (!(err instanceof FatError)) throw err;
            // unreadable entry: list it without attributes (a later lookup reports EIO)
            encodeEntryOut(out, used, 0, 0, 0, null);
            used += ENTRY_OUT_SIZE;
            used += encodeDirent(out, used, 0xffffffff, item.cookie, type, nameBuf);
            continue;
          }
          ino = n.id;
          encodeEntryOut(out, used, n.id, 0, VALID_SEC, this.v.getattr(n));
        } else {
          encodeEntryOut(out, used, 0, 0, 0, null);
          ino = item.name === '.' ? dir.id : (dir.parent ?? dir).id;
        }
        used += ENTRY_OUT_SIZE;
        used += encodeDirent(out, used, ino, item.cookie, type, nameBuf);
      } else {
        used += encodeDirent(out, used, item.e ? 0xffffffff : dir.id, item.cookie, type, nameBuf);
      }
    }
    s.reply(h.unique, out.subarray(0, used));
  }
}

export { ATTR_OUT_SIZE };
