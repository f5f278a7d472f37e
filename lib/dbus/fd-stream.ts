/**
 * A D-Bus connection stream that carries unix fds, over fusegate's own addon.
 *
 * dbus-next passes fds (the `h` type) only through the optional `usocket`
 * npm package: a second native addon (nan + bindings + node-gyp at install
 * time, one maintainer, its 0.3 line that dbus-next asks for unchanged since
 * 2020). lib/native already does sendmsg/recvmsg with SCM_RIGHTS, so this
 * file is the few lines of glue instead (docs/architecture.md, "The broker").
 *
 * It behaves as dbus-next expects of a usocket: a duplex stream with
 * `supportsUnixFd`, whose writes may be `{ data, fds }` and whose reads return
 * a Buffer carrying the fds that came with the message (`buf.fds`).
 *
 * Which fds belong to which message: the kernel delivers the fds a sender
 * attached with the bytes of that sendmsg, in order, but a recvmsg may carry
 * bytes of earlier messages before them, so an fd's arrival offset does not
 * say whose it is. The message's own header does: its UNIX_FDS field counts
 * its fds, and they are the next ones in arrival order (the bus daemon checks
 * that the count matches what the sender attached). All of a message's fds
 * have arrived once all its bytes have. So received fds go into one queue,
 * and each message body dbus-next reads takes exactly its count from it.
 * lib/dbus/bus.ts hands them to the Message as `unixFds`: its receiver
 * closes them all, whatever the signature claims (an fd at an index the
 * signature does not name would otherwise stay open for good).
 */
import { Duplex } from 'node:stream';
import * as fs from 'node:fs';
import * as native from '../native';

/** A recvmsg's buffer: the bus's messages are small; a larger one is read in several. */
const READ_CHUNK = 64 * 1024;
/**
 * Each wait for data is bounded, then renewed: a wait in the addon's thread
 * cannot be interrupted, and the socket is closed only once none is pending
 * (closing it under a waiting recvmsg could let that recvmsg read from
 * whatever file next gets the same fd number).
 */
const READ_WAIT_MS = 200;

/** D-Bus header field codes (the spec's table) read here. */
const FIELD_SIGNATURE = 8;
const FIELD_UNIX_FDS = 9;

/** Alignment and fixed size of the basic types a header field's variant may hold. */
const FIXED: Record<string, number> = { y: 1, b: 4, n: 2, q: 2, i: 4, u: 4, x: 8, t: 8, d: 8, h: 4 };

/**
 * UNIX_FDS and SIGNATURE from a message's header field array (the bytes after
 * the 16-byte fixed header, `fieldsLength` long). Alignment is counted from
 * the message start, 16 bytes before `buf`.
 */
export function headerFdFields(buf: Buffer, fieldsLength: number, littleEndian: boolean): { unixFds: number; signature: string } {
  const u32 = (at: number): number => (littleEndian ? buf.readUInt32LE(at) : buf.readUInt32BE(at));
  const align = (at: number, n: number): number => at + ((n - ((at + 16) % n)) % n);
  let unixFds = 0;
  let signature = '';
  let pos = 0;
  while (pos < fieldsLength) {
    pos = align(pos, 8);
    if (pos >= fieldsLength) break;
    const code = buf[pos]!;
    const sigLen = buf[pos + 1]!;
    const sig = buf.toString('latin1', pos + 2, pos + 2 + sigLen);
    pos += 2 + sigLen + 1;
    if (sig === 's' || sig === 'o') {
      pos = align(pos, 4);
      const len = u32(pos);
      if (code === FIELD_SIGNATURE) signature = buf.toString('latin1', pos + 4, pos + 4 + len);
      pos += 4 + len + 1;
    } else if (sig === 'g') {
      const len = buf[pos]!;
      if (code === FIELD_SIGNATURE) signature = buf.toString('latin1', pos + 1, pos + 1 + len);
      pos += 1 + len + 1;
    } else if (FIXED[sig] !== undefined) {
      pos = align(pos, FIXED[sig]!);
      if (code === FIELD_UNIX_FDS && sig === 'u') unixFds = u32(pos);
      pos += FIXED[sig]!;
    } else {
      throw new Error(`D-Bus header field ${code} has a type this connection does not read (${sig})`);
    }
  }
  return { unixFds, signature };
}

export class FdStream extends Duplex {
  /** dbus-next's handshake asks for NEGOTIATE_UNIX_FD when this is true. */
  supportsUnixFd = true;
  private readonly fd: number;
  /** received fds not yet given to a message, in arrival order */
  private queue: number[] = [];
  /** set once the handshake's BEGIN is written: from then on reads alternate header, body */
  private begun = false;
  /** after a header read: what the body read needs to find the message's fds */
  private header: { fieldsLength: number; littleEndian: boolean } | null = null;
  /** the fds of the message body read last: dbus-next turns it into a Message before it reads on */
  private lastFds: number[] = [];

  /** The fds that came with the message just parsed (each exactly once): its receiver closes them. */
  takeMessageFds(): number[] {
    const fds = this.lastFds;
    this.lastFds = [];
    return fds;
  }
  private reading = false;
  private shut = false;

  constructor(socketPath: string, connectTimeoutMs: number) {
    super({ writableObjectMode: true, allowHalfOpen: false });
    this.fd = native.socketStream();
    native.connect(this.fd, socketPath, connectTimeoutMs).then(
      () => {
        this.emit('connect');
        this.pump();
      },
      (err: Error) => this.destroy(err),
    );
  }

  /** dbus-next calls it on net sockets; meaningless for a unix socket. */
  setNoDelay(): void {}

  override read(size?: number): any {
    const buf = super.read(size) as (Buffer & { fds?: number[] }) | null;
    if (buf === null || !this.begun || typeof buf === 'string') return buf;
    if (this.header === null) {
      // dbus-next reads the 16-byte fixed header, then the fields and body.
      if (buf.length === 16) this.header = { fieldsLength: buf[0] === 0x6c ? buf.readUInt32LE(12) : buf.readUInt32BE(12), littleEndian: buf[0] === 0x6c };
      return buf;
    }
    const { fieldsLength, littleEndian } = this.header;
    this.header = null;
    let fields: { unixFds: number; signature: string };
    try {
      fields = headerFdFields(buf, fieldsLength, littleEndian);
    } catch (err) {
      this.destroy(err as Error);
      return null;
    }
    if (fields.unixFds > this.queue.length) {
      this.destroy(new Error(`a D-Bus message says it carries ${fields.unixFds} fds, but ${this.queue.length} arrived`));
      return null;
    }
    const fds = this.queue.splice(0, fields.unixFds);
    // Any fds of the previous message nobody took: close them, or they leak.
    for (const fd of this.takeMessageFds()) closeQuietly(fd);
    if (fds.length > 0) buf.fds = fds;
    this.lastFds = fds;
    return buf;
  }

  override _read(): void {
    this.pump();
  }

  /** One recvmsg at a time, for as long as the stream wants data. */
  private pump(): void {
    if (this.reading || this.shut) return;
    this.reading = true;
    native.receiveMessage(this.fd, READ_CHUNK, READ_WAIT_MS).then(
      (m) => {
        this.reading = false;
        if (this.shut) {
          for (const fd of m.fds) fs.closeSync(fd);
          this.closeSocket();
          return;
        }
        if (m.data.length === 0) {
          for (const fd of m.fds) fs.closeSync(fd);
          this.push(null);
          return;
        }
        this.queue.push(...m.fds);
        if (m.controlTruncated) {
          this.destroy(new Error('more fds arrived than one read can take; the connection cannot tell whose they are'));
          return;
        }
        if (this.push(m.data)) this.pump();
      },
      (err: Error) => {
        this.reading = false;
        if (this.shut) this.closeSocket();
        else if ((err as native.SyscallError).code === 'ETIMEDOUT') this.pump();
        else this.destroy(err);
      },
    );
  }

  override _write(chunk: unknown, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    let data: Buffer;
    let fds: number[] = [];
    if (typeof chunk === 'string') {
      data = Buffer.from(chunk, 'latin1');
      if (chunk.startsWith('BEGIN')) this.begun = true;
    }
    else if (Buffer.isBuffer(chunk)) data = chunk;
    else {
      const c = chunk as { data: Buffer; fds?: number[] };
      data = c.data;
      fds = c.fds ?? [];
    }
    if (fds.length > 1) {
      cb(new Error('this D-Bus connection passes at most one fd per message'));
      return;
    }
    void this.sendAll(data, fds[0]).then(() => cb(), (err: Error) => cb(err));
  }

  /** A stream socket may take part of a buffer; the fd goes with the first part. */
  private async sendAll(data: Buffer, fd: number | undefined): Promise<void> {
    let off = 0;
    let passFd = fd;
    while (off < data.length) {
      off += await native.sendMessage(this.fd, data.subarray(off), passFd);
      passFd = undefined;
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    cb();
    this.close();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.close();
    cb(err);
  }

  /** Closes the socket and every received fd nobody took. */
  private close(): void {
    if (this.shut) return;
    this.shut = true;
    for (const fd of [...this.queue.splice(0), ...this.takeMessageFds()]) closeQuietly(fd);
    if (!this.reading) this.closeSocket();
  }

  private socketClosed = false;

  private closeSocket(): void {
    if (this.socketClosed) return;
    this.socketClosed = true;
    fs.closeSync(this.fd);
  }
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // closed already
  }
}
