/**
 * The helper's side of one service-mount conversation (docs/protocol.md §5),
 * wire-compatible with libfuse's fuservicemount3 but stricter where the
 * policy or safety asks for it.
 *
 * One obvious order of steps, as in libfuse's util/mount_service.c:
 *
 *   hello()        SAFT → LAST
 *   sendFiles()    FILE "argv" + memfd, FILE "fusedev" + /dev/fuse
 *   serve()        OPEN/BDEV* → FILE each; TYPE NAME MNTP [OPTS] [MTAB] DOIT → REPL each; BYEE
 *
 * Each command has one handler with its validation beside it. A handler that
 * refuses a request answers with an errno (the server decides what to do);
 * anything that breaks the protocol itself ends the conversation with a
 * ProtocolError. Either way, if a mount was made and the conversation does
 * not end with BYEE(0), the caller tears the mount down.
 */
import * as fs from 'node:fs';
import * as native from '../lib/native';
import { MS } from '../lib/native';
import {
  Channel,
  FILE_ARGV,
  FILE_FUSEDEV,
  FSOPEN_FLAGS,
  HELLO_FLAGS,
  PROTOCOL_VERSION,
  ProtocolError,
  REQUEST_FLAGS,
  S_IFDIR,
  S_IFREG,
  writeArgvFd,
  type Message,
  type OpenRequest,
} from '../lib/protocol';
import { ERRNO as E } from '../lib/errno';
import { statSource } from '../policy/facts';
import { optionMatches, PatternSet } from '../policy/match';
import type { MountOptions } from '../policy/options';
import { makeFuseMount, type FuseMountSpec, type MadeMount } from './fuse-mount';
import { lockServedFd } from './one-writer';

/** O_ACCMODE is missing from fs.constants. */
const O_ACCMODE = 3;

/**
 * What the session does to the machine, injected so every rule the session
 * enforces can be tested unprivileged (test/unit/helper-enforcement.test.ts)
 * with a fake in place of the kernel.
 */
export interface SessionMechanism {
  /** open(2) of `path` with the caller's filesystem rights (fsuid/fsgid), O_CLOEXEC */
  openAsCaller(path: string, flags: number, caller: { uid: number; gid: number }): number;
  /** a fresh /dev/fuse fd for the connection the mount will be bound to */
  openDevFuse(): number;
  /** makes the mount; throws SyscallError with the kernel's errno */
  mount(spec: FuseMountSpec): MadeMount;
}

export const KERNEL_MECHANISM: SessionMechanism = {
  openAsCaller: (path, flags, caller) => native.openAs(path, flags, 0, caller),
  openDevFuse: () => fs.openSync('/dev/fuse', fs.constants.O_RDWR | 0o2000000),
  mount: makeFuseMount,
};

/** What the policy and the command line allow this conversation to do. */
export interface SessionPlan {
  /** the backend (the subtype of the mount), argv[0] for the server */
  backend: string;
  /** SOURCE exactly as on the helper's command line: the only path OPEN/BDEV may name */
  source: string;
  /** DIR exactly as on the helper's command line: the only path MNTP may name */
  mountpoint: string;
  /** the decision's options: the server's -o, and the MS_* flags forced on the mount */
  options: MountOptions;
  /** O_PATH fd of the source pinned at start-up; files are reopened through it */
  sourceFd: number;
  sourceIsBlock: boolean;
  /**
   * what a fuseblk mount names as its source: the kernel looks the block
   * device up by this path, so it is the pinned fd's own path (a device node
   * under /dev, which only root can change), never the caller's spelling
   */
  blockSourcePath: string;
  /** O_PATH fd of the mountpoint pinned at start-up; the mount goes onto it */
  mountpointFd: number;
  caller: { uid: number; gid: number };
  /** the policy's refuse_options (globs): a server asking for a matching option gets EPERM */
  refusePatterns: string[];
  /** the policy forces read-only: write opens get EROFS */
  readOnly: boolean;
  /** ms until the whole conversation must be over */
  deadline: number;
}

export type SessionEvent =
  | { kind: 'file'; path: string; error: number }
  | { kind: 'refused'; command: string; error: number; why: string }
  | { kind: 'policy-applied'; what: string };

/** Steps after the file requests, in the only order they may come. */
const STEP_ORDER = ['TYPE', 'NAME', 'MNTP', 'OPTS', 'MTAB', 'DOIT'] as const;
type Step = (typeof STEP_ORDER)[number];
/** Steps a conversation may leave out. */
const OPTIONAL_STEPS: ReadonlySet<Step> = new Set(['OPTS', 'MTAB']);

/** open(2) flags a server may ask for when it requests the source. */
const ALLOWED_OPEN_FLAGS =
  O_ACCMODE |
  fs.constants.O_EXCL |
  fs.constants.O_DIRECT |
  fs.constants.O_SYNC |
  fs.constants.O_DSYNC |
  fs.constants.O_NOATIME |
  fs.constants.O_NOFOLLOW |
  0o100000 | // O_LARGEFILE
  0o2000000; // O_CLOEXEC

/** MS_* flags a server may ask for in DOIT; anything else (remount, bind, move…) is refused. */
const ALLOWED_MS_FLAGS =
  MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC | MS.SYNCHRONOUS | MS.DIRSYNC | MS.NOSYMFOLLOW |
  MS.NOATIME | MS.NODIRATIME | MS.RELATIME | MS.STRICTATIME | MS.LAZYTIME | MS.SILENT;

/**
 * Flags every sandboxed mount gets, whatever the policy or the server says
 * (policy/mandatory.ts): a setuid binary or a device node on an untrusted
 * image must never take effect.
 */
const SANDBOX_MS_FLAGS = MS.NOSUID | MS.NODEV;

/** Options of the FUSE superblock a server may set with OPTS. */
const ALLOWED_FUSE_OPTIONS = /^(allow_other|default_permissions|max_read=\d+|blksize=\d+)$/;

/** MTAB: only utab-only options (x-*) and the libfuse "-n" token. */
const ALLOWED_MTAB_OPTION = /^(x-[A-Za-z0-9._-]+(=[^,]*)?|-n)$/;

/** utab options only the helper writes (umount.fusegate trusts x-fusegate.unit=). */
const RESERVED_MTAB_OPTION = /^x-fusegate\./;

export interface SessionResult {
  mount: MadeMount;
  /** the server's x-* options for utab, empty when it sent -n */
  utabOptions: string[];
  /** the server sent -n: its own options stay out of utab (fusegate's record is written anyway) */
  utabDisabled: boolean;
  /** the exit code from BYEE */
  exitCode: number;
}

class Refusal extends Error {
  constructor(
    readonly error: number,
    readonly why: string,
  ) {
    super(why);
  }
}

export class HelperSession {
  private lastStep = -1;
  private fsopenFlags = 0;
  private fuseOptions: string[] = [];
  private utabOptions: string[] = [];
  private utabDisabled = false;
  private mountpointMode = 0;
  private made: MadeMount | undefined;
  private devFuseFd = -1;
  private readonly refuse: PatternSet;

  constructor(
    private readonly channel: Channel,
    private readonly plan: SessionPlan,
    private readonly onEvent: (e: SessionEvent) => void = () => {},
    private readonly mechanism: SessionMechanism = KERNEL_MECHANISM,
  ) {
    this.refuse = new PatternSet(plan.refusePatterns);
  }

  /** The mount made so far, if any: the caller must undo it when run() fails. */
  get mount(): MadeMount | undefined {
    return this.made;
  }

  private remaining(): number {
    const ms = this.plan.deadline - Date.now();
    if (ms <= 0) throw new ProtocolError('timeout', 'the service did not finish the mount in time');
    return ms;
  }

  private send(msg: Message, fd?: number): Promise<void> {
    return this.channel.send(msg, fd, this.remaining());
  }

  async run(): Promise<SessionResult> {
    try {
      await this.hello();
      await this.sendFiles();
      return await this.serve();
    } finally {
      if (this.devFuseFd >= 0) fs.closeSync(this.devFuseFd);
      this.devFuseFd = -1;
    }
  }

  // ------------------------------------------------------------------ hello

  private async hello(): Promise<void> {
    // As libfuse's helper: root may always use allow_other and fuseblk.
    const flags = this.plan.caller.uid === 0 ? HELLO_FLAGS.ALLOW_OTHER | HELLO_FLAGS.FUSEBLK : 0;
    await this.send({ kind: 'SAFT', minVersion: PROTOCOL_VERSION, maxVersion: PROTOCOL_VERSION, flags });
    const { msg } = await this.channel.receive(this.remaining());
    if (msg.kind !== 'LAST') throw new ProtocolError('out-of-order', `expected LAST after SAFT, got ${msg.kind}`);
    if (msg.version !== PROTOCOL_VERSION) {
      throw new ProtocolError('bad-version', `the service answered version ${msg.version}; this helper speaks ${PROTOCOL_VERSION}`);
    }
  }

  // ------------------------------------------------------------------ files

  private async sendFiles(): Promise<void> {
    const memfd = native.memfdCreate('fuse service argv');
    try {
      writeArgvFd(memfd, [this.plan.backend, this.plan.source, this.plan.mountpoint, ...this.argvOptions()]);
      await this.send({ kind: 'FILE', error: 0, path: FILE_ARGV }, memfd);
    } finally {
      fs.closeSync(memfd);
    }
    // Kept open until the mount is made: the kernel needs it for fd=N.
    this.devFuseFd = this.mechanism.openDevFuse();
    await this.send({ kind: 'FILE', error: 0, path: FILE_FUSEDEV }, this.devFuseFd);
  }

  private argvOptions(): string[] {
    return this.plan.options.list.length > 0 ? ['-o', this.plan.options.list.join(',')] : [];
  }

  // ------------------------------------------------------------------ serve

  private async serve(): Promise<SessionResult> {
    for (;;) {
      const { msg } = await this.channel.receive(this.remaining());
      if (msg.kind === 'BYEE') return this.bye(msg.exitCode);
      if (msg.kind === 'OPEN' || msg.kind === 'BDEV') {
        await this.handleOpen(msg);
        continue;
      }
      if (!isStep(msg.kind)) throw new ProtocolError('out-of-order', `unexpected ${msg.kind}`);
      this.checkOrder(msg.kind);
      const error = this.runStep(msg);
      await this.send({ kind: 'REPL', error });
    }
  }

  /** TYPE…DOIT each come once, in order; OPTS and MTAB may be left out. */
  private checkOrder(step: Step): void {
    const at = STEP_ORDER.indexOf(step);
    if (at <= this.lastStep) {
      throw new ProtocolError(at === this.lastStep ? 'duplicate' : 'out-of-order', `${step} after ${STEP_ORDER[this.lastStep]}`);
    }
    const skipped = STEP_ORDER.slice(this.lastStep + 1, at).filter((s) => !OPTIONAL_STEPS.has(s));
    if (skipped.length > 0) throw new ProtocolError('out-of-order', `${step} before ${skipped.join(', ')}`);
    this.lastStep = at;
  }

  /** Runs one step's handler; a refusal becomes the errno in REPL. */
  private runStep(msg: Message): number {
    try {
      switch (msg.kind) {
        case 'TYPE':
          return this.handleType(msg.fsopenFlags);
        case 'NAME':
          return this.handleName(msg.source);
        case 'MNTP':
          return this.handleMountpoint(msg.path, msg.expectedFormat);
        case 'OPTS':
          return this.handleOptions(msg.options);
        case 'MTAB':
          return this.handleMtab(msg.options);
        case 'DOIT':
          return this.handleMount(msg.msFlags);
        default:
          throw new ProtocolError('out-of-order', `unexpected ${msg.kind}`);
      }
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      this.onEvent({ kind: 'refused', command: msg.kind, error: err.error, why: err.why });
      // A refused step cannot be retried; the server must give up (BYEE).
      this.lastStep = STEP_ORDER.length;
      return err.error;
    }
  }

  // ------------------------------------------------------------- OPEN/BDEV

  private async handleOpen(req: OpenRequest): Promise<void> {
    let fd = -1;
    let error = 0;
    try {
      fd = this.openSource(req);
    } catch (err) {
      error = err instanceof Refusal ? err.error : err instanceof native.SyscallError ? err.errno : E.EIO;
      const why = err instanceof Error ? err.message : String(err);
      // QUIET: the server is probing (BDEV first, OPEN if not a block device).
      if (!(req.requestFlags & REQUEST_FLAGS.QUIET)) this.onEvent({ kind: 'refused', command: req.kind, error, why });
    }
    try {
      await this.send({ kind: 'FILE', error, path: req.path }, error === 0 ? fd : undefined);
      this.onEvent({ kind: 'file', path: req.path, error });
    } finally {
      if (fd >= 0) fs.closeSync(fd);
    }
  }

  private openSource(req: OpenRequest): number {
    // As libfuse's later helpers: no files once the mount has begun.
    if (this.lastStep >= 0) throw new Refusal(E.EPERM, `${req.kind} after ${STEP_ORDER[Math.min(this.lastStep, STEP_ORDER.length - 1)]}: the file requests are over`);
    if (req.path !== this.plan.source) {
      throw new Refusal(E.EPERM, `${req.kind} of '${req.path}', which is not the source on the command line`);
    }
    if ((req.openFlags & ~ALLOWED_OPEN_FLAGS) !== 0) {
      throw new Refusal(E.EINVAL, `${req.kind} open flags 0o${req.openFlags.toString(8)} ask for more than reading or writing`);
    }
    const wantsWrite = (req.openFlags & O_ACCMODE) !== fs.constants.O_RDONLY;
    if (wantsWrite && this.plan.readOnly) {
      throw new Refusal(E.EROFS, `${req.kind} asks to write, but the policy mounts this source read-only`);
    }
    if (req.kind === 'BDEV' && !this.plan.sourceIsBlock) throw new Refusal(E.ENOTBLK, `'${req.path}' is not a block device`);
    // Nothing may have the device mounted or claimed while a server gets it.
    if (this.plan.sourceIsBlock) this.assertNotInUse();
    // Reopen through the pinned fd: the same inode the policy looked at, with
    // the caller's rights. O_EXCL only if the server asks: a fuseblk mount
    // takes the exclusive claim itself and would fail (EBUSY) against ours.
    const fd = this.mechanism.openAsCaller(`/proc/self/fd/${this.plan.sourceFd}`, req.openFlags, this.plan.caller);
    if (req.kind === 'BDEV' && !fs.fstatSync(fd).isBlockDevice()) {
      fs.closeSync(fd);
      throw new Refusal(E.ENOTBLK, `'${req.path}' is not a block device`);
    }
    lockServedFd(this.plan, fd); // the server holds the one-writer claim (helper/one-writer.ts)
    return fd;
  }

  /**
   * An exclusive open fails (EBUSY) while anything mounts or claims the
   * device. Checked when the device is handed out and again just before a
   * fuseblk mount, which would otherwise silently share the superblock of a
   * mount of the same device made in between.
   */
  private assertNotInUse(): void {
    let fd: number;
    try {
      fd = this.mechanism.openAsCaller(`/proc/self/fd/${this.plan.sourceFd}`, fs.constants.O_RDONLY | fs.constants.O_EXCL, this.plan.caller);
    } catch (err) {
      if (err instanceof native.SyscallError && err.code === 'EBUSY') {
        throw new Refusal(E.EBUSY, `'${this.plan.source}' is in use (mounted or claimed elsewhere)`);
      }
      throw err;
    }
    fs.closeSync(fd);
  }

  // ------------------------------------------------------------------ steps

  private handleType(fsopenFlags: number): number {
    if (fsopenFlags & FSOPEN_FLAGS.FUSEBLK) {
      if (this.plan.caller.uid !== 0) throw new Refusal(E.EPERM, 'fuseblk is only for root');
      if (!this.plan.sourceIsBlock) throw new Refusal(E.ENOTBLK, 'fuseblk needs a block device source');
    }
    this.fsopenFlags = fsopenFlags;
    return 0;
  }

  private handleName(source: string): number {
    // The mount shows the command line's source, whatever the server calls it:
    // an administrator reading findmnt must see the real device.
    if (source !== this.plan.source) {
      this.onEvent({ kind: 'policy-applied', what: `server named the source '${source}'; shown as '${this.plan.source}'` });
    }
    return 0;
  }

  private handleMountpoint(mountpoint: string, expectedFormat: number): number {
    if (mountpoint !== this.plan.mountpoint) {
      throw new Refusal(E.EINVAL, `mountpoint '${mountpoint}' is not the one on the command line ('${this.plan.mountpoint}')`);
    }
    const st = fs.fstatSync(this.plan.mountpointFd);
    const fmt = st.isDirectory() ? S_IFDIR : st.isFile() ? S_IFREG : 0;
    if (fmt === 0) throw new Refusal(E.EACCES, 'the mountpoint is neither a directory nor a regular file');
    if (expectedFormat === S_IFDIR && fmt !== S_IFDIR) throw new Refusal(E.ENOTDIR, 'the mountpoint is not a directory');
    if (expectedFormat === S_IFREG && fmt !== S_IFREG) throw new Refusal(E.EISDIR, 'the mountpoint is not a regular file');
    this.mountpointMode = fmt;
    return 0;
  }

  private handleOptions(options: string): number {
    const list = options.split(',').filter((o) => o !== '');
    for (const opt of list) {
      const key = opt.split('=')[0]!;
      // The decision's own matcher: refuse_options are globs (policy/match.ts).
      if (optionMatches(this.refuse, opt)) throw new Refusal(E.EPERM, `option '${opt}' is refused by the policy`);
      if (!ALLOWED_FUSE_OPTIONS.test(opt)) throw new Refusal(E.EINVAL, `option '${opt}' is not a FUSE mount option`);
      if (key === 'blksize' && !(this.fsopenFlags & FSOPEN_FLAGS.FUSEBLK)) {
        throw new Refusal(E.EINVAL, 'blksize= is only for fuseblk mounts');
      }
      if (key === 'allow_other' && this.plan.caller.uid !== 0) throw new Refusal(E.EPERM, 'allow_other is only for root');
    }
    // With allow_other, other users' access must be checked by the kernel
    // against the files' modes: a server cannot opt out of that.
    if (list.includes('allow_other') && !list.includes('default_permissions')) {
      list.push('default_permissions');
      this.onEvent({ kind: 'policy-applied', what: 'default_permissions added: every allow_other mount gets it' });
    }
    this.fuseOptions = list;
    return 0;
  }

  private handleMtab(options: string): number {
    const list = options.split(',').filter((o) => o !== '');
    const bad = list.find((o) => !ALLOWED_MTAB_OPTION.test(o));
    if (bad !== undefined) throw new Refusal(E.EINVAL, `utab option '${bad}' is not an x- option`);
    const reserved = list.find((o) => RESERVED_MTAB_OPTION.test(o));
    if (reserved !== undefined) throw new Refusal(E.EPERM, `utab option '${reserved}' is reserved for fusegate's own record`);
    this.utabDisabled = list.includes('-n');
    this.utabOptions = list.filter((o) => o !== '-n');
    return 0;
  }

  private handleMount(msFlags: number): number {
    if ((msFlags & ~ALLOWED_MS_FLAGS) !== 0) {
      throw new Refusal(E.EINVAL, `mount flags 0x${msFlags.toString(16)} include more than plain mount options`);
    }
    if (this.mountpointMode === 0) throw new Refusal(E.EINVAL, 'no mountpoint was accepted');
    const forced = SANDBOX_MS_FLAGS | this.plan.options.msFlags | (this.plan.readOnly ? MS.RDONLY : 0);
    if (this.fsopenFlags & FSOPEN_FLAGS.FUSEBLK) this.assertNotInUse();
    if ((msFlags | forced) !== msFlags) {
      this.onEvent({ kind: 'policy-applied', what: `policy forced mount flags 0x${(forced & ~msFlags).toString(16)}` });
    }
    try {
      const fuseblk = (this.fsopenFlags & FSOPEN_FLAGS.FUSEBLK) !== 0;
      this.made = this.mechanism.mount({
        devFuseFd: this.devFuseFd,
        mountpointFd: this.plan.mountpointFd,
        fsType: fuseblk ? 'fuseblk' : 'fuse',
        subtype: this.plan.backend,
        // fuseblk: the kernel opens the device by this path (pins all the way, issue 12 finding 4)
        source: fuseblk ? this.plan.blockSourcePath : this.plan.source,
        expectDevice: fuseblk ? statSource(`/proc/self/fd/${this.plan.sourceFd}`)?.device : undefined,
        rootMode: this.mountpointMode,
        userId: this.plan.caller.uid,
        groupId: this.plan.caller.gid,
        fuseOptions: this.fuseOptions,
        msFlags: msFlags | forced,
      });
    } catch (err) {
      if (err instanceof native.SyscallError) throw new Refusal(err.errno, `the kernel refused the mount: ${err.message}`);
      throw err;
    }
    // The kernel holds its own reference now; ours must not outlive the helper's need.
    fs.closeSync(this.devFuseFd);
    this.devFuseFd = -1;
    return 0;
  }

  // ------------------------------------------------------------------- bye

  private bye(exitCode: number): SessionResult {
    if (exitCode === 0 && !this.made) {
      throw new ProtocolError('out-of-order', 'the service said goodbye with success but never mounted');
    }
    if (exitCode !== 0 || !this.made) {
      throw new ServiceFailed(exitCode);
    }
    return { mount: this.made, utabOptions: this.utabOptions, utabDisabled: this.utabDisabled, exitCode };
  }
}

function isStep(kind: string): kind is Step {
  return (STEP_ORDER as readonly string[]).includes(kind);
}

/** The service gave up (BYEE with a non-zero code). */
export class ServiceFailed extends Error {
  constructor(readonly exitCode: number) {
    super(`the FUSE service gave up with exit code ${exitCode}`);
  }
}
