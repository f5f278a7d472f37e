/**
 * The server side of one service-mount conversation, as libfuse's
 * fuse_service_* library speaks it (docs/protocol.md §6), for servers that do not
 * speak it themselves. One obvious order:
 *
 *   hello()          SAFT → LAST
 *   receiveFiles()   FILE "argv" + memfd, FILE "fusedev" + /dev/fuse
 *   requestSource()  BDEV (or OPEN for an image file) → FILE + fd
 *   mount()          TYPE, NAME, MNTP, OPTS, DOIT, each answered by REPL
 *   bye()            BYEE(0), just before the server starts serving
 *
 * Every received fd is owned by the returned MountHandoff; nothing else is
 * accepted once the file requests are over.
 */
import * as fs from 'node:fs';
import { msFlagsOf } from '../lib/mount-flags';
import { TIMEOUTS } from '../lib/timeouts';
import { ERRNO } from '../lib/errno';
import { Channel, FILE_ARGV, FILE_FUSEDEV, FSOPEN_FLAGS, HELLO_FLAGS, PROTOCOL_VERSION, ProtocolError, REQUEST_FLAGS, S_IFDIR, readArgvFd, type Message } from '../lib/protocol';

/** How long one message may take before the adapter gives up (lib/timeouts.ts). */
const STEP_TIMEOUT_MS = TIMEOUTS.adapterStep.defaultMs;

/** The mount request as the helper's argv memfd states it. */
export interface MountArgs {
  subtype: string;
  source: string;
  mountpoint: string;
  /** -o options, split */
  options: string[];
}

/**
 * Called with the source before the adapter asks the helper to mount: a
 * server that runs in the adapter's process validates its volume here, so a
 * bad one is refused (BYEE non-zero) before anything is mounted.
 */
export type BeforeMount = (h: { args: MountArgs; fuseFd: number; sourceFd: number; readOnly: boolean }) => void;

/** What the adapter hands to the FUSE server. */
export interface MountHandoff {
  args: MountArgs;
  /** /dev/fuse, already mounted by the helper */
  fuseFd: number;
  /** the source, opened by the helper with the caller's rights */
  sourceFd: number;
  sourceIsBlock: boolean;
  readOnly: boolean;
  allowOther: boolean;
}

export class HelperRefused extends Error {
  constructor(
    readonly command: string,
    readonly error: number,
  ) {
    super(`the mount helper refused ${command} with errno ${error}`);
  }
}

/** Parses `[subtype, SOURCE, DIR, -o OPTS…]`, libfuse's argv shape minus -t. */
export function parseMountArgs(argv: string[]): MountArgs {
  const [subtype, ...rest] = argv;
  const positional: string[] = [];
  const options: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === '-o') options.push(...(rest[++i] ?? '').split(',').filter(Boolean));
    else if (a.startsWith('-o')) options.push(...a.slice(2).split(',').filter(Boolean));
    else if (a.startsWith('-')) continue; // flags such as -n or -v mean nothing to the server
    else positional.push(a);
  }
  if (!subtype || positional.length !== 2) {
    throw new ProtocolError('bad-argv', `argv must be [subtype, SOURCE, DIR, -o OPTIONS], got ${JSON.stringify(argv)}`);
  }
  return { subtype, source: positional[0]!, mountpoint: positional[1]!, options };
}

export class AdapterSession {
  private readonly owned: number[] = [];

  constructor(private readonly channel: Channel) {}

  private async receive(): Promise<{ msg: Message; fd?: number }> {
    const r = await this.channel.receive(STEP_TIMEOUT_MS);
    if (r.fd !== undefined) this.owned.push(r.fd);
    return r;
  }

  private async receiveFile(path: string): Promise<number> {
    const { msg, fd } = await this.receive();
    if (msg.kind !== 'FILE' || msg.path !== path) {
      throw new ProtocolError('out-of-order', `expected FILE "${path}", got ${msg.kind}${msg.kind === 'FILE' ? ` "${msg.path}"` : ''}`);
    }
    if (msg.error !== 0) throw new HelperRefused(`FILE ${path}`, msg.error);
    return fd!;
  }

  /** Sends one step and waits for its REPL; a non-zero REPL ends the mount. */
  private async step(msg: Message): Promise<void> {
    await this.channel.send(msg, undefined, STEP_TIMEOUT_MS);
    const { msg: reply } = await this.receive();
    if (reply.kind !== 'REPL') throw new ProtocolError('out-of-order', `expected REPL after ${msg.kind}, got ${reply.kind}`);
    if (reply.error !== 0) throw new HelperRefused(msg.kind, reply.error);
  }

  async run(beforeMount?: BeforeMount): Promise<MountHandoff> {
    try {
      const helloFlags = await this.hello();
      const allowOther = (helloFlags & HELLO_FLAGS.ALLOW_OTHER) !== 0;
      const memfd = await this.receiveFile(FILE_ARGV);
      const args = parseMountArgs(readArgvFd(memfd));
      this.close(memfd);
      const fuseFd = await this.receiveFile(FILE_FUSEDEV);
      const readOnly = args.options.includes('ro');
      const { fd: sourceFd, isBlock } = await this.requestSource(args.source, readOnly);
      beforeMount?.({ args, fuseFd, sourceFd, readOnly });
      await this.mount(args, allowOther, isBlock && (helloFlags & HELLO_FLAGS.FUSEBLK) !== 0);
      return { args, fuseFd, sourceFd, sourceIsBlock: isBlock, readOnly, allowOther };
    } catch (err) {
      for (const fd of this.owned.splice(0)) this.close(fd);
      throw err;
    }
  }

  private async hello(): Promise<number> {
    const { msg } = await this.receive();
    if (msg.kind !== 'SAFT') throw new ProtocolError('out-of-order', `expected SAFT, got ${msg.kind}`);
    if (msg.minVersion > PROTOCOL_VERSION || msg.maxVersion < PROTOCOL_VERSION) {
      throw new ProtocolError('bad-version', `the helper speaks versions ${msg.minVersion}..${msg.maxVersion}, not ${PROTOCOL_VERSION}`);
    }
    await this.channel.send({ kind: 'LAST', version: PROTOCOL_VERSION }, undefined, STEP_TIMEOUT_MS);
    return msg.flags;
  }

  /**
   * Asks for the source: as a block device first, and as a regular file when
   * the helper says it is not one. The sandbox cannot look for itself: it has
   * no device nodes.
   */
  private async requestSource(source: string, readOnly: boolean): Promise<{ fd: number; isBlock: boolean }> {
    const openFlags = readOnly ? fs.constants.O_RDONLY : fs.constants.O_RDWR;
    const ask = async (kind: 'BDEV' | 'OPEN', requestFlags: number) => {
      await this.channel.send({ kind, openFlags, createMode: 0, requestFlags, blockSize: 0, path: source }, undefined, STEP_TIMEOUT_MS);
      const { msg, fd } = await this.receive();
      if (msg.kind !== 'FILE' || msg.path !== source) throw new ProtocolError('out-of-order', `expected FILE "${source}" after ${kind}`);
      return { error: msg.error, fd };
    };
    const bdev = await ask('BDEV', REQUEST_FLAGS.QUIET);
    if (bdev.error === 0) return { fd: bdev.fd!, isBlock: true };
    if (bdev.error !== ERRNO.ENOTBLK) throw new HelperRefused('BDEV', bdev.error);
    const file = await ask('OPEN', 0);
    if (file.error !== 0) throw new HelperRefused('OPEN', file.error);
    return { fd: file.fd!, isBlock: false };
  }

  private async mount(args: MountArgs, allowOther: boolean, fuseblk: boolean): Promise<void> {
    await this.step({ kind: 'TYPE', fsopenFlags: fuseblk ? FSOPEN_FLAGS.FUSEBLK : 0 });
    await this.step({ kind: 'NAME', source: args.source });
    await this.step({ kind: 'MNTP', expectedFormat: S_IFDIR, path: args.mountpoint });
    // The kernel checks permissions (the server may run as anyone), and the
    // mount is usable by others than root when the helper allows it.
    await this.step({ kind: 'OPTS', options: ['default_permissions', ...(allowOther ? ['allow_other'] : [])].join(',') });
    await this.step({ kind: 'DOIT', msFlags: msFlagsOf(args.options) });
  }

  /** BYEE(0): the mount is made; the server is about to serve it. */
  async bye(exitCode = 0): Promise<void> {
    await this.channel.send({ kind: 'BYEE', exitCode }, undefined, STEP_TIMEOUT_MS);
  }

  private close(fd: number): void {
    try {
      fs.closeSync(fd);
    } catch {
      // already closed
    }
    const i = this.owned.indexOf(fd);
    if (i >= 0) this.owned.splice(i, 1);
  }
}
