/**
 * One end of a service-mount connection: sends and receives whole messages
 * and enforces the transport rules every message shares — size, at most one
 * fd, fds only where the protocol puts them, end-of-file, timeouts. Received
 * fds that break a rule are closed before the error is thrown, so a hostile
 * peer cannot leak descriptors into us.
 */
import * as fs from 'node:fs';
import { receiveMessage, sendMessage, SyscallError } from '../native';
import { MAX_MESSAGE_SIZE } from './constants';
import { ProtocolError } from './errors';
import { decode, encode, type Message, type Sender } from './messages';

export interface Received<M extends Message = Message> {
  msg: M;
  /** the fd that came with a FILE message (O_CLOEXEC); the receiver owns it */
  fd?: number;
}

function closeAll(fds: number[]): void {
  for (const fd of fds) {
    try {
      fs.closeSync(fd);
    } catch {
      // already gone; nothing more to release
    }
  }
}

/** Which messages may carry an fd: only FILE, and only when its error is 0. */
function checkFdRule(msg: Message, fds: number[]): void {
  const fdRequired = msg.kind === 'FILE' && msg.error === 0;
  if (fdRequired && fds.length === 0) throw new ProtocolError('missing-fd', `FILE "${msg.path}" with error 0 carries no fd`);
  if (!fdRequired && fds.length > 0) throw new ProtocolError('unexpected-fd', `${msg.kind} must not carry an fd`);
}

export class Channel {
  /**
   * @param fd a connected SOCK_SEQPACKET socket; the channel owns it
   * @param self which end we are; we accept only messages the other end sends
   */
  constructor(
    readonly fd: number,
    readonly self: Sender,
  ) {}

  private get peer(): Sender {
    return this.self === 'helper' ? 'server' : 'helper';
  }

  async send(msg: Message, passFd?: number, timeoutMs = -1): Promise<void> {
    const buf = encode(msg);
    try {
      await sendMessage(this.fd, buf, passFd, timeoutMs);
    } catch (err) {
      if (err instanceof SyscallError && err.code === 'ETIMEDOUT') {
        throw new ProtocolError('timeout', `peer did not take ${msg.kind} within ${timeoutMs} ms`);
      }
      if (err instanceof SyscallError && (err.code === 'EPIPE' || err.code === 'ECONNRESET')) {
        throw new ProtocolError('peer-closed', `peer hung up before ${msg.kind} could be sent`);
      }
      throw err;
    }
  }

  /** Receives the next message; rejects ProtocolError('timeout') after timeoutMs. */
  async receive(timeoutMs = -1): Promise<Received> {
    let raw;
    try {
      // One byte more than the limit, so an oversize message shows as truncated.
      raw = await receiveMessage(this.fd, MAX_MESSAGE_SIZE + 1, timeoutMs);
    } catch (err) {
      if (err instanceof SyscallError && err.code === 'ETIMEDOUT') {
        throw new ProtocolError('timeout', `no message from the ${this.peer} within ${timeoutMs} ms`);
      }
      if (err instanceof SyscallError && err.code === 'ECONNRESET') {
        throw new ProtocolError('peer-closed', `the ${this.peer} closed the connection`);
      }
      throw err;
    }
    const { data, fds } = raw;
    try {
      if (raw.controlTruncated || fds.length > 1) {
        throw new ProtocolError('too-many-fds', `message carried more than one fd`);
      }
      if (raw.truncated || data.length > MAX_MESSAGE_SIZE) {
        throw new ProtocolError('oversize', `message larger than ${MAX_MESSAGE_SIZE} bytes`);
      }
      if (data.length === 0) throw new ProtocolError('peer-closed', `the ${this.peer} closed the connection`);
      const msg = decode(data, this.peer);
      checkFdRule(msg, fds);
      return fds.length === 1 ? { msg, fd: fds[0] } : { msg };
    } catch (err) {
      closeAll(fds);
      throw err;
    }
  }

  close(): void {
    closeAll([this.fd]);
  }
}
