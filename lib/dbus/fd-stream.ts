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
 * Which fds belong to which message: the bus daemon sends a message that
 * carries fds in one sendmsg, and the kernel never merges such a segment with
 * bytes before it in one recvmsg, so fds arrive with the first byte of their
 * message. dbus-next reads each message as a 16-byte header, then the rest;
 * fds that arrived at stream offset N go to the first read that starts after
 * N, which is that message's rest.
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

interface PendingFds {
  offset: number;
  fds: number[];
}

export class FdStream extends Duplex {
  /** dbus-next's handshake asks for NEGOTIATE_UNIX_FD when this is true. */
  supportsUnixFd = true;
  private readonly fd: number;
  private received = 0;
  private consumed = 0;
  private pending: PendingFds[] = [];
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
    const start = this.consumed;
    const buf = super.read(size) as Buffer | null;
    if (buf === null) return null;
    this.consumed += buf.length;
    const mine = this.pending.filter((p) => p.offset < start);
    if (mine.length > 0) {
      this.pending = this.pending.filter((p) => p.offset >= start);
      (buf as Buffer & { fds?: number[] }).fds = mine.flatMap((p) => p.fds);
    }
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
        if (m.fds.length > 0) this.pending.push({ offset: this.received, fds: m.fds });
        this.received += m.data.length;
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
    if (typeof chunk === 'string') data = Buffer.from(chunk, 'latin1');
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
    for (const p of this.pending) for (const fd of p.fds) fs.closeSync(fd);
    this.pending = [];
    if (!this.reading) this.closeSocket();
  }

  private socketClosed = false;

  private closeSocket(): void {
    if (this.socketClosed) return;
    this.socketClosed = true;
    fs.closeSync(this.fd);
  }
}
