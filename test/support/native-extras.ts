/**
 * Calls of fusegate's native addon that only tests use: the listening side
 * of a socket (product code only ever connects, or is handed a connection by
 * systemd), socketpairs, SO_PEERCRED, reading back fsuid and O_CLOEXEC. They
 * stay in the addon (doctor's smoke test calls socketpairSeqpacket) but not
 * among lib/native's exports, which list what the product runs.
 */
import * as path from 'node:path';
import { SyscallError } from '../../lib/native';

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

interface TestAddon {
  socketpairSeqpacket(): [number, number];
  bind(fd: number, path: string): void;
  listen(fd: number, backlog: number): void;
  accept(fd: number, timeoutMs: number): Promise<number>;
  peerCred(fd: number): PeerCredentials;
  setfsuid(uid: number): number;
  cloexec(fd: number, set?: boolean): boolean;
}

const addon = require(path.resolve(__dirname, '../../build/Release/fusegate_native.node')) as TestAddon;

/** The addon's errno errors as lib/native throws them, so tests can check `code`. */
function convert(err: unknown): unknown {
  const e = err as { message?: string; code?: string; errno?: number; syscall?: string };
  return err instanceof Error && typeof e.errno === 'number' ? new SyscallError(err.message, e.code!, e.errno, e.syscall!) : err;
}

function call<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw convert(err);
  }
}

/** A connected pair of SOCK_SEQPACKET sockets, both O_CLOEXEC. */
export function socketpairSeqpacket(): [number, number] {
  return call(() => addon.socketpairSeqpacket());
}

export function bind(fd: number, socketPath: string): void {
  call(() => addon.bind(fd, socketPath));
}

export function listen(fd: number, backlog: number): void {
  call(() => addon.listen(fd, backlog));
}

/** Accepts one connection (O_CLOEXEC); rejects ETIMEDOUT after timeoutMs. */
export async function accept(fd: number, timeoutMs: number): Promise<number> {
  try {
    return await addon.accept(fd, timeoutMs);
  } catch (err) {
    throw convert(err);
  }
}

/** Who is at the other end of a connected unix socket (SO_PEERCRED). */
export function peerCredentials(fd: number): PeerCredentials {
  return call(() => addon.peerCred(fd));
}

/** Sets this thread's filesystem uid; returns the previous one. */
export function setfsuid(uid: number): number {
  return addon.setfsuid(uid);
}

export function isCloexec(fd: number): boolean {
  return call(() => addon.cloexec(fd));
}
