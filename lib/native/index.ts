/**
 * Typed access to fusegate's native addon (fusegate_native.c): the Linux
 * syscalls Node.js lacks. Every function here is a thin wrapper; failures are
 * thrown as `SyscallError` with the errno name in `code`, so callers can test
 * `err.code === 'ENOENT'` exactly as they would for Node's own fs errors.
 */
import * as path from 'node:path';
import * as fs from 'node:fs';

/** A failed syscall: `code` is the errno name, `syscall` what was called. */
export class SyscallError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly errno: number,
    readonly syscall: string,
  ) {
    super(message);
    this.name = 'SyscallError';
  }
}

/** One message as the kernel delivered it, before any protocol rule is applied. */
export interface ReceivedMessage {
  /** the bytes received (at most the capacity asked for) */
  data: Buffer;
  /** every fd that arrived with it, already O_CLOEXEC; the caller owns them */
  fds: number[];
  /** MSG_TRUNC: the message was longer than the capacity and was cut */
  truncated: boolean;
  /** MSG_CTRUNC: more fds were sent than fit; the extra ones were dropped */
  controlTruncated: boolean;
}

/**
 * The addon's calls the product uses. It has a few more that only tests use
 * (bind, listen, accept, socketpairs, SO_PEERCRED, setfsuid, reading
 * O_CLOEXEC): test/support/native-extras.ts wraps those.
 */
interface NativeAddon {
  socketSeqpacket(): number;
  socketStream(): number;
  connect(fd: number, path: string, timeoutMs: number): Promise<number>;
  sendMsg(fd: number, data: Buffer, passFd: number, timeoutMs: number): Promise<number>;
  recvMsg(fd: number, capacity: number, timeoutMs: number): Promise<ReceivedMessage>;
  sendDatagram(path: string, data: Buffer): number;
  memfdCreate(name: string, flags: number): number;
  openAs(path: string, flags: number, mode: number, fsuid: number, fsgid: number): number;
  cloexec(fd: number, set?: boolean): boolean;
  dup3(oldfd: number, newfd: number, flags: number): number;
  closeFromOnExec(first: number): void;
  dupAbove(fd: number, min: number): number;
  fsopen(fsname: string, flags: number): number;
  fsconfig(fd: number, cmd: number, key: string | null, value: string | null, aux: number): void;
  fsmount(fd: number, flags: number, attrFlags: number): number;
  moveMount(fromFd: number, fromPath: string, toFd: number, toPath: string, flags: number): void;
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void;
  umount2(target: string, flags: number): void;
  execve(file: string, argv: string[], envp: string[]): never;
  exitNow(code: number): never;
  blkidProbe(path: string): BlkidResult;
  loopBacking(fd: number): { device: bigint; inode: bigint; rdevice: bigint; offset: bigint; sizelimit: bigint };
  flock(fd: number, op: number): void;
  spawn(file: string, argv: string[], envp: string[] | null): number;
  waitpid(pid: number): Promise<ExitStatus>;
  libmountMount(source: string, target: string, fstype: string, options: string | null, flags: number): Promise<LibmountResult>;
  refusePassedFds(fd: number): boolean;
  pidfdOpen(pid: number): number;
  pidfdSendSignal(pidfd: number, signal: number): void;
  pollReadable(fd: number, timeoutMs: number): Promise<number>;
  watchdogArm(ms: number, message: string): void;
  watchdogCleanup(abortFiles: string[], detachPath: string | null): void;
  watchdogDisarm(): void;
  restrictDeviceIoctls(allowed: number[]): void;
}

/** What mount(8) would have returned and printed for the same request. */
export interface LibmountResult {
  /** mount(8)'s exit code: 0, 1 usage, 2 system error, 4 internal, 16 utab, 32 mount failure, … */
  code: number;
  /** mount(8)'s message for it (without the "mount: TARGET: " prefix), "" when it has none */
  message: string;
}

export interface ExitStatus {
  /** exit code, or -1 when a signal ended the process */
  code: number;
  /** the signal that ended it, 0 if none */
  signal: number;
}

/** libblkid's low-level probe, as `blkid -p` runs it. */
export interface BlkidResult {
  status: 'found' | 'nothing' | 'ambivalent';
  /** TYPE, UUID, LABEL, USAGE, VERSION, PART_ENTRY_*, PTTYPE, … */
  tags: Record<string, string>;
}

/**
 * The addon is found relative to the package root, which is two folders up
 * from this file when run from source (vitest) and three when compiled into
 * dist/. Loading it lazily keeps processes that never need it (policy check)
 * from paying for the dlopen.
 */
let addon: NativeAddon | undefined;
function native(): NativeAddon {
  if (addon) return addon;
  const candidates = [
    path.join(__dirname, '..', '..', 'build', 'Release', 'fusegate_native.node'),
    path.join(__dirname, '..', '..', '..', 'build', 'Release', 'fusegate_native.node'),
  ];
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) {
    throw new Error(
      `fusegate's native addon is not built (looked for ${candidates.join(', ')}); run 'npm ci' or 'npm rebuild'`,
    );
  }
  addon = require(found) as NativeAddon;
  return addon;
}

function isErrnoError(err: unknown): err is Error & { code: string; errno: number; syscall: string } {
  return err instanceof Error && typeof (err as { errno?: unknown }).errno === 'number';
}

function convert(err: unknown): unknown {
  if (isErrnoError(err)) return new SyscallError(err.message, err.code, err.errno, err.syscall);
  return err;
}

function call<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw convert(err);
  }
}

async function callAsync<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw convert(err);
  }
}

/** No timeout: wait as long as it takes. */
export const FOREVER = -1;

/** A timeout for the addon: FOREVER stays, anything else is whole ms >= 0 (a passed deadline is 0, not "no limit"). */
function bounded(timeoutMs: number): number {
  return timeoutMs === FOREVER ? FOREVER : Math.max(0, Math.min(Math.floor(timeoutMs), 0x7fffffff));
}

// ------------------------------------------------------------------ sockets

/** A new AF_UNIX SOCK_SEQPACKET socket with O_CLOEXEC. */
export function socketSeqpacket(): number {
  return call(() => native().socketSeqpacket());
}

/** A new AF_UNIX SOCK_STREAM socket with O_CLOEXEC (the D-Bus system bus is one). */
export function socketStream(): number {
  return call(() => native().socketStream());
}

/**
 * Connects to a listening unix socket. A connect only waits while the
 * listener's backlog is full (systemd not accepting); after `timeoutMs` it
 * rejects ETIMEDOUT. No default: every caller says how long it may wait.
 */
export async function connect(fd: number, socketPath: string, timeoutMs: number): Promise<void> {
  await callAsync(() => native().connect(fd, socketPath, bounded(timeoutMs)));
}

/**
 * Makes the kernel refuse fds sent to this socket (SO_PASSRIGHTS off, Linux
 * 6.16): a sender's sendmsg with SCM_RIGHTS fails EPERM, so a peer cannot
 * push fds into this process at all. False where the kernel lacks it.
 */
export function refusePassedFds(fd: number): boolean {
  return call(() => native().refusePassedFds(fd));
}

/**
 * Sends one message, with at most one fd. A zero-length SEQPACKET message
 * reads as end-of-file at the other end, so it is refused here.
 */
export function sendMessage(fd: number, data: Buffer, passFd?: number, timeoutMs: number = FOREVER): Promise<number> {
  if (data.length === 0) {
    return Promise.reject(new SyscallError('sendmsg: refusing to send an empty message', 'EINVAL', 22, 'sendmsg'));
  }
  return callAsync(() => native().sendMsg(fd, data, passFd ?? -1, timeoutMs));
}

/**
 * Receives one message into a buffer of `capacity` bytes. Rejects ETIMEDOUT
 * when nothing arrives in time. A 0-byte result means the peer hung up.
 */
export function receiveMessage(fd: number, capacity: number, timeoutMs: number = FOREVER): Promise<ReceivedMessage> {
  return callAsync(() => native().recvMsg(fd, capacity, timeoutMs));
}

/** One non-blocking datagram to a unix socket path ('@name' is abstract). */
export function sendDatagram(socketPath: string, data: Buffer): number {
  return call(() => native().sendDatagram(socketPath, data));
}

// ------------------------------------------------------------- fds and files

export const MFD_CLOEXEC = 0x0001;

export function memfdCreate(name: string, flags: number = MFD_CLOEXEC): number {
  return call(() => native().memfdCreate(name, flags));
}

/**
 * Opens `file` with the filesystem rights of `ids` (fsuid/fsgid), O_CLOEXEC
 * always added, and restores the process's own ids before returning.
 */
export function openAs(file: string, flags: number, mode: number, ids: { uid: number; gid: number }): number {
  return call(() => native().openAs(file, flags, mode, ids.uid, ids.gid));
}

export function setCloexec(fd: number, on: boolean): void {
  call(() => native().cloexec(fd, on));
}

/** dup3(2); without O_CLOEXEC in flags, newfd survives execve. */
export function dup3(oldfd: number, newfd: number, flags = 0): number {
  return call(() => native().dup3(oldfd, newfd, flags));
}

/** A close-on-exec copy of fd numbered at least `min` (F_DUPFD_CLOEXEC). */
export function dupAbove(fd: number, min: number): number {
  return call(() => native().dupAbove(fd, min));
}

/** Marks every fd >= first close-on-exec (close_range with CLOSE_RANGE_CLOEXEC). */
export function closeFromOnExec(first: number): void {
  call(() => native().closeFromOnExec(first));
}

// -------------------------------------------------------------------- mount

export const FSOPEN_CLOEXEC = 0x1;
export const FSMOUNT_CLOEXEC = 0x1;

export const FSCONFIG = {
  SET_FLAG: 0,
  SET_STRING: 1,
  SET_BINARY: 2,
  SET_PATH: 3,
  SET_PATH_EMPTY: 4,
  SET_FD: 5,
  CMD_CREATE: 6,
  CMD_RECONFIGURE: 7,
} as const;

export const MOUNT_ATTR = {
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  RELATIME: 0x0,
  NOATIME: 0x10,
  STRICTATIME: 0x20,
  NODIRATIME: 0x80,
} as const;

export const MOVE_MOUNT = {
  F_SYMLINKS: 0x1,
  F_AUTOMOUNTS: 0x2,
  F_EMPTY_PATH: 0x4,
  T_SYMLINKS: 0x10,
  T_AUTOMOUNTS: 0x20,
  T_EMPTY_PATH: 0x40,
} as const;

/** mount(2) flags, as in <sys/mount.h>. */
export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  SYNCHRONOUS: 16,
  REMOUNT: 32,
  MANDLOCK: 64,
  DIRSYNC: 128,
  NOSYMFOLLOW: 256,
  NOATIME: 1024,
  NODIRATIME: 2048,
  BIND: 4096,
  MOVE: 8192,
  REC: 16384,
  SILENT: 32768,
  RELATIME: 1 << 21,
  STRICTATIME: 1 << 24,
  LAZYTIME: 1 << 25,
} as const;

export const MNT_DETACH = 2;
export const UMOUNT_NOFOLLOW = 8;

export function fsopen(fsname: string, flags: number = FSOPEN_CLOEXEC): number {
  return call(() => native().fsopen(fsname, flags));
}

export function fsconfig(fd: number, cmd: number, key: string | null = null, value: string | null = null, aux = 0): void {
  call(() => native().fsconfig(fd, cmd, key, value, aux));
}

export function fsmount(fd: number, flags: number, attrFlags: number): number {
  return call(() => native().fsmount(fd, flags, attrFlags));
}

export function moveMount(fromFd: number, fromPath: string, toFd: number, toPath: string, flags: number): void {
  call(() => native().moveMount(fromFd, fromPath, toFd, toPath, flags));
}

export function mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void {
  call(() => native().mount(source, target, fstype, flags, data));
}

export function umount2(target: string, flags = 0): void {
  call(() => native().umount2(target, flags));
}

// -------------------------------------------------------------------- blkid

/** Probes what is on a device or image with libblkid, in-process. */
export function blkidProbe(file: string): BlkidResult {
  return call(() => native().blkidProbe(file));
}

// --------------------------------------------------------------------- loop

/** huge_encode_dev() as LOOP_GET_STATUS64 reports devices: minor bits 0-7 and 20-31, major bits 8-19. */
function hugeDecode(d: bigint): string {
  const major = (d >> 8n) & 0xfffn;
  const minor = (d & 0xffn) | ((d >> 12n) & 0xfff00n);
  return `${major}:${minor}`;
}

/**
 * The file behind the loop device open on `fd`, as LOOP_GET_STATUS64 gives
 * it: "major:minor" of the filesystem holding it, and its inode number.
 */
export function loopBacking(fd: number): { device: string; inode: bigint } {
  const r = call(() => native().loopBacking(fd));
  return { device: hugeDecode(r.device), inode: r.inode };
}

/** Everything LOOP_GET_STATUS64 says about where a loop device's bytes come from. */
export interface LoopStatus {
  /** "major:minor" of the filesystem holding the backing file */
  device: string;
  inode: bigint;
  /** "major:minor" of the backing file when it is itself a block device (a stacked loop), else null */
  backingBlock: string | null;
  /** first byte of the backing file the loop device shows */
  offset: bigint;
  /** bytes shown; 0 means up to the end of the backing file */
  sizelimit: bigint;
}

export function loopStatus(fd: number): LoopStatus {
  const r = call(() => native().loopBacking(fd));
  return {
    device: hugeDecode(r.device),
    inode: r.inode,
    backingBlock: r.rdevice === 0n ? null : hugeDecode(r.rdevice),
    offset: r.offset,
    sizelimit: r.sizelimit,
  };
}

// -------------------------------------------------------------------- flock

export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

/** flock(2) on the open file description behind fd; throws EWOULDBLOCK when LOCK_NB and held elsewhere. */
export function flock(fd: number, op: number): void {
  call(() => native().flock(fd, op));
}

// -------------------------------------------------------------------- spawn

/**
 * Starts a program (stdin from /dev/null, stdout and stderr shared) and
 * waits for it on the thread pool. For the mount path, where Node's
 * child_process module costs more to load than mount(8) takes to run.
 */
export async function run(file: string, argv: string[], envp: string[] | null = null): Promise<ExitStatus> {
  const pid = call(() => native().spawn(file, argv, envp));
  return callAsync(() => native().waitpid(pid));
}

// ----------------------------------------------------------------- libmount

/** libmountMount()'s flags, as FG_MNT_* in fusegate_native.c */
const LIBMOUNT_NO_MTAB = 1;
const LIBMOUNT_FAKE = 2;
const LIBMOUNT_NO_CANONICALIZE = 4;

export interface LibmountRequest {
  source: string;
  target: string;
  fsType: string;
  options: string[];
  /** mount(8) -n: do not write utab */
  noMtab?: boolean;
  /** mount(8) -f: do everything but the mount(2) call (records a mount made elsewhere in utab) */
  fake?: boolean;
  /** mount(8) --no-canonicalize: take source and target as given */
  noCanonicalize?: boolean;
}

/**
 * Mounts as `mount -i [-n] [-f] -t TYPE [-o OPTIONS] SOURCE TARGET` would,
 * with util-linux's libmount in-process (on the thread pool): loop devices
 * for image files, option parsing and utab as mount(8) does them, without
 * the exec. Helpers are never called (-i); the result carries mount(8)'s exit
 * code and message.
 */
export function libmountMount(req: LibmountRequest): Promise<LibmountResult> {
  const options = req.options.length > 0 ? req.options.join(',') : null;
  const flags = (req.noMtab ? LIBMOUNT_NO_MTAB : 0) | (req.fake ? LIBMOUNT_FAKE : 0) | (req.noCanonicalize ? LIBMOUNT_NO_CANONICALIZE : 0);
  return callAsync(() => native().libmountMount(req.source, req.target, req.fsType, options, flags));
}

// -------------------------------------------------------------------- pidfds

/** A pidfd for `pid` (pidfd_open): names that process, never a later one with its pid. */
export function pidfdOpen(pid: number): number {
  return call(() => native().pidfdOpen(pid));
}

/** Signals the process a pidfd names (pidfd_send_signal). */
export function pidfdSendSignal(pidfd: number, signal: number): void {
  call(() => native().pidfdSendSignal(pidfd, signal));
}

/** Waits until fd is readable (a pidfd: its process exited); rejects ETIMEDOUT. */
export function pollReadable(fd: number, timeoutMs: number): Promise<number> {
  return callAsync(() => native().pollReadable(fd, bounded(timeoutMs)));
}

// ------------------------------------------------------------------ watchdog

/**
 * The last-resort deadline, kept by a thread of its own: when `ms` pass
 * before watchdogDisarm(), it writes `message` (one line) to stderr, undoes
 * the mount given to watchdogCleanup() if any, and _exit(32)s — even while
 * the main thread is stuck in a synchronous call (a stat() inside a FUSE
 * mount whose server never answers), which no JS timer can interrupt.
 * Arming again moves the deadline.
 */
export function watchdogArm(ms: number, message: string): void {
  call(() => native().watchdogArm(Math.max(0, Math.floor(ms)), message));
}

/**
 * What the watchdog undoes when it fires, replacing what was set before:
 * writes 1 to each of `abortFiles` (at most 8; fusectl's abort files of FUSE
 * connections), then detaches `detachPath` (MNT_DETACH, UMOUNT_NOFOLLOW).
 */
export function watchdogCleanup(abortFiles: readonly string[], detachPath: string | null): void {
  if (addon === undefined) return; // never armed in this process
  call(() => native().watchdogCleanup([...abortFiles], detachPath));
}

export function watchdogDisarm(): void {
  if (addon === undefined) return;
  native().watchdogDisarm();
}

// ------------------------------------------------------------------ seccomp

/**
 * Sets no_new_privs and installs a seccomp filter that fails ioctl(2) with
 * EPERM for all block (0x12xx), loop (0x4Cxx) and SCSI generic (0x22xx)
 * commands except `allowed`; other ioctls and syscalls pass. It filters the
 * calling (main) thread only: call it just before execve, which keeps it
 * for the new program and ends the other threads. It cannot be removed.
 */
export function restrictDeviceIoctls(allowed: readonly number[]): void {
  call(() => native().restrictDeviceIoctls([...allowed]));
}

// ------------------------------------------------------------------- execve

/**
 * Ends the process at once with _exit(2), skipping Node's teardown. Only for
 * a program that has finished: nothing may be left in a stream's buffer
 * (write with fs.writeSync) and no async work may be running. A process
 * that never loaded the addon (--help, a usage error) exits with
 * process.exit() rather than pay the addon's dlopen to save the teardown.
 */
export function exitNow(code: number): never {
  if (addon === undefined) return process.exit(code);
  return addon.exitNow(code);
}

/** Replaces this process. Returns only by throwing. */
export function execve(file: string, argv: string[], envp: string[]): never {
  return call(() => native().execve(file, argv, envp));
}
