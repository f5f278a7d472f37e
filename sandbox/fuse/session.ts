/**
 * One FUSE connection on a /dev/fuse fd: reads requests without blocking
 * the event loop (Node's async fs.read runs read(2) on the libuv thread
 * pool), negotiates INIT, frames replies (written with writeSync: /dev/fuse
 * writes never block) and hands every other request to a handler.
 *
 * Read errors: ENOENT means the request was interrupted before it was read
 * (retry), EINTR/EAGAIN retry, ENODEV means the filesystem was unmounted
 * (or the connection aborted): the session ends normally.
 */
import * as fs from 'node:fs';
import {
  decodeInHeader, decodeInitIn, encodeInitOut, encodeOutHeader, FUSE_ASYNC_READ, FUSE_ATOMIC_O_TRUNC, FUSE_BIG_WRITES,
  FUSE_DO_READDIRPLUS, FUSE_KERNEL_MINOR_VERSION, FUSE_KERNEL_VERSION, FUSE_MAX_PAGES, FUSE_READDIRPLUS_AUTO,
  IN_HEADER_SIZE, InHeader, Op, OUT_HEADER_SIZE,
} from './protocol';

export const MAX_WRITE = 1024 * 1024;
/** FUSE_MIN_READ_BUFFER is 8192; the kernel wants room for a header, a write_in and max_write bytes */
export const READ_BUFFER = MAX_WRITE + 8192;

export interface Request {
  header: InHeader;
  /** the whole request: header and arguments */
  buf: Buffer;
  /** offset of the arguments */
  arg: number;
}

export interface SessionHandler {
  /** answer with `reply`/`error` (not for FORGET, BATCH_FORGET, INTERRUPT) */
  handle(req: Request, session: FuseSession): void;
  /** the connection ended (unmounted, or DESTROY); `clean` when the kernel said goodbye */
  end(): void;
}

export interface SessionOptions {
  readdirplus?: boolean;
  log?: (message: string) => void;
}

const ERRNO_ENOSYS = 38;
const ERRNO_EPROTO = 71;

export class FuseSession {
  initialized = false;
  protoMinor = 0;
  private stopped = false;
  readonly stats = { requests: 0 };

  constructor(
    readonly fd: number,
    private readonly handler: SessionHandler,
    private readonly options: SessionOptions = {},
  ) {}

  reply(unique: bigint, ...parts: Buffer[]): void {
    const len = OUT_HEADER_SIZE + parts.reduce((n, p) => n + p.length, 0);
    const out = Buffer.allocUnsafe(len);
    encodeOutHeader(out, len, 0, unique);
    let off = OUT_HEADER_SIZE;
    for (const p of parts) {
      p.copy(out, off);
      off += p.length;
    }
    this.write(out);
  }

  error(unique: bigint, errno: number): void {
    const out = Buffer.alloc(OUT_HEADER_SIZE);
    encodeOutHeader(out, OUT_HEADER_SIZE, -errno, unique);
    this.write(out);
  }

  private write(out: Buffer): void {
    try {
      fs.writeSync(this.fd, out);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // ENOENT: the request was interrupted and is gone; ENODEV: unmounted meanwhile
      if (code === 'ENOENT' || code === 'ENODEV') return;
      throw err;
    }
  }

  private readOnce(buf: Buffer): Promise<number> {
    return new Promise((resolve, reject) => {
      fs.read(this.fd, buf, 0, buf.length, null, (err, n) => (err ? reject(err) : resolve(n)));
    });
  }

  stop(): void {
    this.stopped = true;
  }

  /** Serves until unmount; resolves then. */
  async run(): Promise<void> {
    const buf = Buffer.alloc(READ_BUFFER);
    try {
      while (!this.stopped) {
        let n: number;
        try {
          n = await this.readOnce(buf);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT' || code === 'EINTR' || code === 'EAGAIN') continue;
          if (code === 'ENODEV') break;
          throw err;
        }
        if (n < IN_HEADER_SIZE) {
          this.options.log?.(`short FUSE request of ${n} bytes ignored`);
          continue;
        }
        const header = decodeInHeader(buf);
        if (header.len !== n) {
          this.options.log?.(`FUSE request length ${header.len} differs from the ${n} bytes read`);
          continue;
        }
        this.stats.requests++;
        // handlers may keep nothing of `buf`: it is reused by the next read
        const req: Request = { header, buf: buf.subarray(0, n), arg: IN_HEADER_SIZE };
        if (header.opcode === Op.INIT) {
          this.init(req);
          continue;
        }
        if (!this.initialized) {
          this.error(header.unique, ERRNO_EPROTO);
          continue;
        }
        if (header.opcode === Op.DESTROY) {
          this.reply(header.unique);
          break;
        }
        this.handler.handle(req, this);
      }
    } finally {
      this.handler.end();
    }
  }

  private init(req: Request): void {
    const inArg = decodeInitIn(req.buf, req.arg, req.header.len - req.arg);
    const unique = req.header.unique;
    if (inArg.major < 7) {
      this.error(unique, ERRNO_EPROTO);
      return;
    }
    if (inArg.major > 7) {
      // the kernel will retry with our major
      this.reply(unique, encodeInitOut({ major: 7, minor: FUSE_KERNEL_MINOR_VERSION, maxReadahead: 0, flags: 0, maxBackground: 0, congestionThreshold: 0, maxWrite: 0, timeGran: 0, maxPages: 0 }));
      return;
    }
    this.protoMinor = Math.min(inArg.minor, FUSE_KERNEL_MINOR_VERSION);
    let want = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_MAX_PAGES | FUSE_ATOMIC_O_TRUNC;
    if (this.options.readdirplus !== false) want |= FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO;
    const flags = inArg.flags & want;
    const out = encodeInitOut({
      major: FUSE_KERNEL_VERSION,
      minor: this.protoMinor,
      maxReadahead: inArg.maxReadahead,
      flags,
      maxBackground: 16,
      congestionThreshold: 12,
      maxWrite: MAX_WRITE,
      timeGran: 1,
      maxPages: MAX_WRITE / 4096,
    });
    // minors before 23 know the 24-byte reply only
    this.reply(unique, this.protoMinor < 23 ? out.subarray(0, 24) : out);
    this.initialized = true;
  }

  static readonly ENOSYS = ERRNO_ENOSYS;
}
