/**
 * fusegate-broker: org.fusegate.Mount1 on the system bus, for ordinary users
 * (docs/architecture.md, "The broker"). Bus-activated by systemd, it exits
 * after IDLE_MS without a request; it keeps no state of its own: who owns a
 * mount is the x-fusegate.owner= option in utab.
 *
 *   Mount(h source, s mountpoint, a{sv} options) → (s mountpoint)
 *   Unmount(s mountpoint)
 *   List() → a(sssu): source, mountpoint, type, owner uid
 *
 * For each request: who is asking (the bus daemon says), the arguments
 * checked (request.ts), the mountpoint pinned with the caller's rights, the
 * policy's decision (made once, in the mount's worker process), polkit asked
 * about that decision, and then the worker carries it out. One journal entry
 * per request: caller uid, polkit action, result.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Message as DBusMessage, MessageBus } from 'dbus-next';
import { connectSystemBus, messageFds } from '../lib/dbus/bus';
import { createLogger, Priority, type Logger } from '../lib/log';
import { readMountinfo } from '../lib/mountinfo';
import * as native from '../lib/native';
import { timeoutMsOrDefault } from '../lib/timeouts';
import { optionValue, readUtab } from '../lib/utab';
import { mountAction, refusalWords, unmountAction } from './actions';
import { callerCredentials, type BusCall, type BusCaller } from './caller';
import { BUS_NAME, ERROR, INTERFACE, MEDIA_DIR, OBJECT_PATH, OWNER_OPTION, type ActionId } from './names';
import { checkAuthorization } from './polkit';
import { checkPath, fdAccess, mountDirName, parseMountRequest, USER_OPTIONS, type MountRequest } from './request';
import { entryOptions, specPath, userEntryFor } from './fstab';
import { MOUNTPOINT_FD, SOURCE_FD, type WorkerDecision, type WorkerRequest, type WorkerResult } from './worker';

/** Each method's argument signature, checked before the arguments are read. */
const SIGNATURES: Record<string, string> = { Mount: 'hsa{sv}', MountFstab: 's', Unmount: 's', List: '' };

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // closed already
  }
}

/** Exit after this long without a request: the bus starts the broker again for the next one. */
export const IDLE_MS = 30_000;
/**
 * Mount workers at once (each is a Node process of ~40 MB): more requests
 * wait their turn, up to MAX_QUEUED; beyond that the broker says it is busy.
 * The unit's MemoryMax and TasksMax hold MAX_WORKERS with room to spare.
 */
export const MAX_WORKERS = 6;
export const MAX_QUEUED = 64;
/** How long polkit may take to answer, an authentication dialog included. */
const POLKIT_TIMEOUT_MS = 120_000;
const O_PATH = 0o10000000;
const O_DIRECTORY = 0o200000;
const O_CLOEXEC = 0o2000000;
const DBUS_NAME_FLAG_DO_NOT_QUEUE = 4;

/** A refusal or failure that goes back to the caller as a D-Bus error. */
class BrokerError extends Error {
  constructor(
    readonly errorName: string,
    message: string,
    readonly hint: string | null = null,
  ) {
    super(message);
  }
  text(): string {
    return this.hint ? `${this.message}\n${this.hint}` : this.message;
  }
}

interface RequestLog {
  caller: BusCaller | null;
  action: ActionId | null;
  polkit: 'yes' | 'no' | 'not asked';
}

export class Broker {
  private inFlight = 0;
  private workers = 0;
  private readonly waitingForWorker: Array<() => void> = [];
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly call: BusCall;

  constructor(
    private readonly bus: MessageBus,
    private readonly dbus: typeof import('dbus-next'),
    private readonly log: Logger,
    private readonly onIdle: () => void,
    private readonly workerPath: string,
  ) {
    this.call = {
      call: async (destination, p, iface, member, signature, body) => {
        const reply = await bus.call(new dbus.Message({ destination, path: p, interface: iface, member, signature, body }));
        return reply?.body ?? [];
      },
    };
  }

  start(): void {
    this.bus.addMethodHandler((msg: DBusMessage) => this.dispatch(msg));
    this.armIdle();
  }

  private armIdle(): void {
    clearTimeout(this.idleTimer);
    if (this.inFlight === 0) this.idleTimer = setTimeout(() => this.onIdle(), IDLE_MS);
  }

  private dispatch(msg: DBusMessage): boolean {
    if (msg.path !== OBJECT_PATH) return false;
    if (msg.interface === 'org.freedesktop.DBus.Introspectable' && msg.member === 'Introspect') {
      this.bus.send(this.dbus.Message.newMethodReturn(msg, 's', [INTROSPECTION]));
      return true;
    }
    if (msg.interface !== INTERFACE) return false;
    const handlers: Record<string, (m: DBusMessage, l: RequestLog) => Promise<{ signature: string; body: unknown[] }>> = {
      Mount: (m, l) => this.mount(m, l),
      MountFstab: (m, l) => this.mountFstab(m, l),
      Unmount: (m, l) => this.unmount(m, l),
      List: () => this.list(),
    };
    const handler = handlers[msg.member ?? ''];
    if (!handler) return false;
    // The arguments' types, before anything reads them (an fd where a string should be, …).
    const want = SIGNATURES[msg.member!]!;
    if ((msg.signature ?? '') !== want) {
      this.bus.send(this.dbus.Message.newError(msg as never, ERROR.invalidArgs, `${msg.member} takes (${want}), not (${msg.signature ?? ''})`));
      for (const fd of messageFds(msg)) closeQuietly(fd);
      return true;
    }
    this.inFlight++;
    clearTimeout(this.idleTimer);
    const l: RequestLog = { caller: null, action: null, polkit: 'not asked' };
    handler(msg, l).then(
      ({ signature, body }) => {
        this.bus.send(this.dbus.Message.newMethodReturn(msg, signature, body));
        if (msg.member !== 'List') this.journal(msg.member!, l, 'done', null);
      },
      (err: unknown) => {
        const e = err instanceof BrokerError ? err : new BrokerError(ERROR.failed, `internal error: ${(err as Error)?.message ?? String(err)}`);
        this.bus.send(this.dbus.Message.newError(msg as never, e.errorName, e.text()));
        this.journal(msg.member!, l, e.errorName.replace(/^.*\./, '').toLowerCase(), e.message);
      },
    ).finally(() => {
      // every fd that came with the message (the worker has its own copies)
      for (const fd of messageFds(msg)) closeQuietly(fd);
      this.inFlight--;
      this.armIdle();
    });
    return true;
  }

  private journal(method: string, l: RequestLog, result: string, error: string | null): void {
    this.log.log(error === null ? Priority.INFO : Priority.WARNING, `${method} for uid ${l.caller?.uid ?? '?'}: ${result}${error ? `: ${error}` : ''}`, {
      FUSEGATE_BROKER_METHOD: method,
      FUSEGATE_CALLER_UID: l.caller?.uid ?? null,
      FUSEGATE_CALLER_SESSION: l.caller?.session ?? null,
      FUSEGATE_POLKIT_ACTION: l.action,
      FUSEGATE_POLKIT_RESULT: l.polkit,
      FUSEGATE_OUTCOME: result,
      FUSEGATE_ERROR: error,
    });
  }

  /** polkit's answer for this caller; root is not asked (it may mount with mount(8) anyway). */
  private async authorize(l: RequestLog, action: ActionId, what: string): Promise<void> {
    l.action = action;
    if (l.caller!.uid === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const answer = await Promise.race([
      checkAuthorization(this.call, this.dbus, l.caller!.sender, action, {}),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new BrokerError(ERROR.notAuthorized, `polkit did not answer within ${POLKIT_TIMEOUT_MS / 1000} s`)), POLKIT_TIMEOUT_MS);
      }),
    ]).catch((e: unknown) => {
      if (e instanceof BrokerError) throw e;
      throw new BrokerError(ERROR.notAuthorized, `cannot ask polkit about ${action}: ${(e as Error).message}`, 'is polkitd installed and running?');
    }).finally(() => clearTimeout(timer));
    l.polkit = answer.authorized ? 'yes' : 'no';
    if (!answer.authorized) {
      const w = refusalWords(action, what);
      throw new BrokerError(ERROR.notAuthorized, w.message, answer.challenge ? `${w.hint} (or authenticate: run it from a session with a polkit agent, e.g. pkttyagent)` : w.hint);
    }
  }

  private async mount(msg: DBusMessage, l: RequestLog): Promise<{ signature: string; body: unknown[] }> {
    const [sourceFd, mountpointArg, options] = msg.body as [number, unknown, unknown];
    l.caller = await callerCredentials(this.call, msg.sender!);
    const req: MountRequest = argumentsOrRefuse(() => parseMountRequest(mountpointArg, options));
    // The fd proves what the caller may do with the source: read it (and write, if opened so).
    const access = fdAccess(fs.readFileSync(`/proc/self/fdinfo/${sourceFd}`, 'utf8'));
    if (access.opath || access.mode === 'write') throw new BrokerError(ERROR.invalidArgs, 'the source must be passed as an fd opened for reading (O_RDONLY or O_RDWR)');
    const st = fs.fstatSync(sourceFd);
    if (!st.isFile() && !st.isBlockDevice()) throw new BrokerError(ERROR.invalidArgs, 'the source is neither an image file nor a block device');
    if (access.mode === 'read') req.readOnly = true;

    const full = Object.assign(req, { openedBy: 'caller' as const });
    return await this.mountPinned(full, l, sourceFd, () => this.pinMountpoint(full, l.caller!, sourceFd));
  }

  /**
   * MountFstab(s mountpoint): an /etc/fstab entry with `user` or `users`,
   * forwarded by the helper that mount(8) ran as the user. The entry is the
   * administrator's grant: the broker reads it itself, opens its source and
   * mountpoint as root, and mounts with the entry's options (user mounts get
   * noexec unless it says exec, and nosuid,nodev always); the policy and
   * polkit still decide as for any user mount.
   */
  private async mountFstab(msg: DBusMessage, l: RequestLog): Promise<{ signature: string; body: unknown[] }> {
    l.caller = await callerCredentials(this.call, msg.sender!);
    const dir = argumentsOrRefuse(() => checkPath((msg.body as unknown[])[0], 'mountpoint'));
    const entry = dir === null ? null : userEntryFor(dir);
    if (entry === null) throw new BrokerError(ERROR.invalidArgs, `${dir ?? '(none)'} has no /etc/fstab entry with 'user' or 'users'`, "ask your administrator, or mount an image you own with 'fusegate mount'");
    const options = entryOptions(entry);
    const req: MountRequest & { openedBy: 'fstab' } = { openedBy: 'fstab', mountpoint: entry.target, readOnly: options.includes('ro'), fsType: /^(auto|fusegate)$/.test(entry.type) ? undefined : entry.type.replace(/^fusegate\./, ''), options: options.filter((o) => USER_OPTIONS.has(o)) };
    const source = specPath(entry.spec);
    let sourceFd: number;
    try {
      try {
        sourceFd = fs.openSync(source, (req.readOnly ? fs.constants.O_RDONLY : fs.constants.O_RDWR) | O_CLOEXEC);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EROFS' && (e as NodeJS.ErrnoException).code !== 'EACCES') throw e;
        sourceFd = fs.openSync(source, fs.constants.O_RDONLY | O_CLOEXEC);
        req.readOnly = true;
      }
    } catch (e) {
      throw new BrokerError(ERROR.failed, `cannot open ${source} (fstab line ${entry.line}): ${(e as Error).message}`);
    }
    try {
      if (!fs.fstatSync(sourceFd).isFile() && !fs.fstatSync(sourceFd).isBlockDevice()) throw new BrokerError(ERROR.failed, `${source} is neither an image file nor a block device`);
      return await this.mountPinned(req, l, sourceFd, () => {
        try {
          const fd = native.openAs(entry.target, O_PATH | O_DIRECTORY, 0, { uid: 0, gid: 0 });
          req.mountpoint = fs.readlinkSync(`/proc/self/fd/${fd}`);
          return fd;
        } catch (e) {
          throw new BrokerError(ERROR.failed, `cannot open mountpoint ${entry.target}: ${(e as Error).message}`);
        }
      });
    } finally {
      fs.closeSync(sourceFd);
    }
  }

  /** The part every mount shares: a worker slot, the pinned mountpoint, the worker and polkit. */
  private async mountPinned(req: MountRequest & { openedBy: 'caller' | 'fstab' }, l: RequestLog, sourceFd: number, pin: () => number): Promise<{ signature: string; body: unknown[] }> {
    await this.workerSlot();
    try {
      const mountpointFd = pin();
      try {
        return { signature: 's', body: [await this.runWorker(req, l, sourceFd, mountpointFd)] };
      } finally {
        fs.closeSync(mountpointFd);
      }
    } finally {
      // Hand the slot to the next waiting request, or free it.
      const next = this.waitingForWorker.shift();
      if (next) next();
      else this.workers--;
    }
  }

  /** Waits for a free worker slot (MAX_WORKERS), or refuses when too many wait already. */
  private async workerSlot(): Promise<void> {
    if (this.workers < MAX_WORKERS) {
      this.workers++;
      return;
    }
    if (this.waitingForWorker.length >= MAX_QUEUED) throw new BrokerError(ERROR.failed, `the broker is busy: ${MAX_QUEUED} mounts are waiting already`, 'try again in a moment');
    // The slot is handed over by the finishing request (workers stays counted).
    await new Promise<void>((resolve) => this.waitingForWorker.push(resolve));
  }

  /**
   * The mountpoint, pinned by an O_PATH fd opened with the caller's rights:
   * a directory the caller owns, or the broker's own /run/media/$USER/<label>.
   */
  private pinMountpoint(req: MountRequest, caller: BusCaller, sourceFd: number): number {
    let dir = req.mountpoint;
    if (dir === null) dir = this.mediaDir(caller, sourceFd);
    let fd: number;
    try {
      fd = native.openAs(dir, O_PATH | O_DIRECTORY, 0, caller);
    } catch (e) {
      throw new BrokerError(ERROR.invalidArgs, `cannot open mountpoint ${dir}: ${(e as Error).message}`, 'give a directory you own');
    }
    const st = fs.fstatSync(fd);
    if (caller.uid !== 0 && st.uid !== caller.uid) {
      fs.closeSync(fd);
      throw new BrokerError(ERROR.invalidArgs, `mountpoint ${dir} is not yours (owner uid ${st.uid})`, 'mount on a directory you own, or leave DIR out for /run/media/$USER/<label>');
    }
    req.mountpoint = fs.readlinkSync(`/proc/self/fd/${fd}`);
    return fd;
  }

  /** /run/media/$USER/<label>: root-owned down to the user's directory, the last one the user's. */
  private mediaDir(caller: BusCaller, sourceFd: number): string {
    const user = userName(caller.uid);
    const parent = path.join(MEDIA_DIR, user);
    fs.mkdirSync(MEDIA_DIR, { mode: 0o755, recursive: true });
    fs.mkdirSync(parent, { mode: 0o755, recursive: true });
    const pst = fs.lstatSync(parent);
    if (!pst.isDirectory() || pst.uid !== 0) throw new BrokerError(ERROR.failed, `${parent} is not a directory owned by root`);
    let label: string | null = null;
    let uuid: string | null = null;
    try {
      const tags = native.blkidProbe(`/proc/self/fd/${sourceFd}`).tags;
      label = tags.LABEL ?? null;
      uuid = tags.UUID ?? null;
    } catch {
      // no label: the fallback name
    }
    const base = mountDirName(label, uuid, 'disk');
    const mounted = new Set(readMountinfo().map((m) => m.mountpoint));
    for (let i = 0; i < 100; i++) {
      const dir = path.join(parent, i === 0 ? base : `${base}${i}`);
      if (mounted.has(dir)) continue;
      try {
        fs.mkdirSync(dir, { mode: 0o700 });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const st = fs.lstatSync(dir);
        if (!st.isDirectory() || st.uid !== caller.uid || fs.readdirSync(dir).length > 0) continue;
      }
      fs.chownSync(dir, caller.uid, caller.gid);
      return dir;
    }
    throw new BrokerError(ERROR.failed, `no free mountpoint under ${parent}`);
  }

  private async runWorker(req: MountRequest & { openedBy: 'caller' | 'fstab' }, l: RequestLog, sourceFd: number, mountpointFd: number): Promise<string> {
    const wreq: WorkerRequest = {
      caller: { uid: l.caller!.uid, gid: l.caller!.gid, groups: l.caller!.groups, session: l.caller!.session },
      userName: userName(l.caller!.uid),
      sourceOpenedBy: req.openedBy,
      mountpoint: req.mountpoint!,
      readOnly: req.readOnly,
      fsType: req.fsType,
      options: req.options,
    };
    const stdio: Array<'pipe' | 'ignore' | number> = ['pipe', 'pipe', 'inherit' as never, 'ignore', 'ignore'];
    stdio[SOURCE_FD] = sourceFd;
    stdio[MOUNTPOINT_FD] = mountpointFd;
    const child = spawn(process.execPath, [this.workerPath, JSON.stringify(wreq)], { stdio: stdio as never });
    const lines = lineReader(child.stdout!);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const limit = 2 * timeoutMsOrDefault('mount') + POLKIT_TIMEOUT_MS;
    const killer = setTimeout(() => child.kill('SIGTERM'), limit);
    try {
      const first = (await lines.next()) as { decided: WorkerDecision | null; result?: WorkerResult } | null;
      if (first === null) throw new BrokerError(ERROR.failed, 'the mount worker ended without an answer');
      if (first.decided === null) throw failure(first.result!);
      const d = first.decided;
      const what = `${d.source} (${d.fsType ?? 'unknown type'})`;
      const action = mountAction(d);
      if (action === null) {
        throw new BrokerError(ERROR.failed, `${what}: refused by ${d.rule === 'default' ? 'the policy default' : `the policy's rule '${d.rule}'`}: ${d.reason}`, `to see why: fusegate policy explain --uid ${l.caller!.uid} ${d.source}`);
      }
      try {
        await this.authorize(l, action, what);
      } catch (e) {
        child.stdin!.end();
        throw e;
      }
      child.stdin!.end('go\n');
      const second = (await lines.next()) as { result: WorkerResult } | null;
      if (second === null) throw new BrokerError(ERROR.failed, 'the mount worker ended without a result');
      if (second.result.outcome !== 'mounted') throw failure(second.result);
      return second.result.mountpoint;
    } finally {
      clearTimeout(killer);
      await exited;
    }
  }

  private async unmount(msg: DBusMessage, l: RequestLog): Promise<{ signature: string; body: unknown[] }> {
    l.caller = await callerCredentials(this.call, msg.sender!);
    const dir = argumentsOrRefuse(() => checkPath((msg.body as unknown[])[0], 'mountpoint'));
    if (dir === null) throw new BrokerError(ERROR.invalidArgs, 'no mountpoint given');
    // The path as the caller resolves it, then the kernel's name for it.
    let where: string;
    try {
      const fd = native.openAs(dir, O_PATH, 0, l.caller);
      where = fs.readlinkSync(`/proc/self/fd/${fd}`);
      fs.closeSync(fd);
    } catch (e) {
      throw new BrokerError(ERROR.notMounted, `cannot open ${dir}: ${(e as Error).message}`);
    }
    const mounts = readMountinfo().filter((m) => m.mountpoint === where);
    if (mounts.length === 0) throw new BrokerError(ERROR.notMounted, `${dir} is not a mountpoint`);
    const entry = readUtab().filter((e) => e.target === where).pop();
    const owner = entry ? optionValue(entry.options, OWNER_OPTION) : null;
    const ownerUid = owner !== null && /^\d+$/.test(owner) ? Number(owner) : null;
    const action = unmountAction(l.caller.uid, ownerUid);
    if (action !== null) await this.authorize(l, action, `${where}`);
    // umount(8) runs umount.fusegate for a sandboxed mount (utab's helper=fusegate): it
    // waits for the server to finish writing. -c: the path is the kernel's own, resolved above.
    const r = await native.run('/usr/bin/umount', ['umount', '-c', where], ['PATH=/usr/sbin:/usr/bin:/sbin:/bin']);
    if (r.code !== 0) throw new BrokerError(ERROR.failed, `umount ${where} failed (exit status ${r.code ?? r.signal})`, 'is a file on it still open? see the journal: journalctl -t fusegate-broker');
    removeMediaDir(where);
    return { signature: '', body: [] };
  }

  private async list(): Promise<{ signature: string; body: unknown[] }> {
    const mounted = new Map(readMountinfo().map((m) => [m.mountpoint, m]));
    const rows: Array<[string, string, string, number]> = [];
    for (const e of readUtab()) {
      const owner = optionValue(e.options, OWNER_OPTION);
      const m = mounted.get(e.target);
      if (owner === null || !/^\d+$/.test(owner) || !m) continue;
      rows.push([e.source, e.target, m.fsType, Number(owner)]);
    }
    return { signature: 'a(sssu)', body: [rows] };
  }
}

/** A request's arguments, checked by `check`; a check that throws refuses the call as invalid arguments, with its words. */
function argumentsOrRefuse<T>(check: () => T): T {
  try {
    return check();
  } catch (e) {
    throw new BrokerError(ERROR.invalidArgs, (e as Error).message);
  }
}

function failure(r: WorkerResult): BrokerError {
  if (r.outcome === 'mounted') return new BrokerError(ERROR.failed, 'internal: not a failure');
  return new BrokerError(ERROR.failed, r.message, r.hint);
}

/** The broker's own /run/media/$USER/<label> directory goes once unmounted, as udisks2's do. */
function removeMediaDir(where: string): void {
  if (!where.startsWith(`${MEDIA_DIR}/`) || where.split('/').length !== 5) return;
  if (readMountinfo().some((m) => m.mountpoint === where)) return;
  try {
    fs.rmdirSync(where);
  } catch {
    // not empty, or gone: leave it
  }
}

function userName(uid: number): string {
  try {
    for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length >= 3 && Number(f[2]) === uid && /^[A-Za-z0-9._-]+$/.test(f[0]!)) return f[0]!;
    }
  } catch {
    // no passwd
  }
  return String(uid);
}

/** JSON lines from a stream, one at a time; null at the end. */
function lineReader(stream: NodeJS.ReadableStream): { next(): Promise<unknown> } {
  let buf = '';
  let ended = false;
  const waiting: Array<() => void> = [];
  stream.setEncoding('utf8');
  stream.on('data', (d: string) => {
    buf += d;
    waiting.splice(0).forEach((w) => w());
  });
  stream.on('end', () => {
    ended = true;
    waiting.splice(0).forEach((w) => w());
  });
  return {
    async next() {
      for (;;) {
        const nl = buf.indexOf('\n');
        if (nl >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          try {
            return JSON.parse(line);
          } catch {
            continue;
          }
        }
        if (ended) return null;
        await new Promise<void>((r) => waiting.push(r));
      }
    },
  };
}

const INTROSPECTION = `<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<node>
  <interface name="${INTERFACE}">
    <method name="Mount"><arg name="source" type="h" direction="in"/><arg name="mountpoint" type="s" direction="in"/><arg name="options" type="a{sv}" direction="in"/><arg name="mounted_at" type="s" direction="out"/></method>
    <method name="Unmount"><arg name="mountpoint" type="s" direction="in"/></method>
    <method name="MountFstab"><arg name="mountpoint" type="s" direction="in"/></method>
    <method name="List"><arg name="mounts" type="a(sssu)" direction="out"/></method>
  </interface>
  <interface name="org.freedesktop.DBus.Introspectable"><method name="Introspect"><arg name="xml" type="s" direction="out"/></method></interface>
</node>`;

/** The worker's bundle with its code cache (scripts/bundle.js), or tsc's module where there is no bundle. */
function workerProgram(): string {
  const bundled = path.join(__dirname, 'worker-start.js');
  return fs.existsSync(bundled) ? bundled : path.join(__dirname, 'worker-entry.js');
}

/** Entry point of fusegate-broker.service. */
export async function main(): Promise<number> {
  const log = createLogger({ identifier: 'fusegate-broker', fallback: 'stderr' });
  const dbus = require('dbus-next') as typeof import('dbus-next');
  const bus = await connectSystemBus(timeoutMsOrDefault('systemdBus'));
  let done: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => (done = resolve));
  const stop = (): void => {
    log.info('idle: exiting (the bus starts the broker again for the next request)');
    // Release the name first, so the bus queues new requests for the next activation.
    void bus.releaseName(BUS_NAME).catch(() => undefined).finally(() => {
      bus.disconnect();
      done(0);
    });
  };
  bus.on('error', (e: Error) => {
    log.error(`system bus connection lost: ${e.message}`);
    done(1);
  });
  // The handler before the name: calls queued for the name while the bus
  // activated us arrive the moment it is ours.
  new Broker(bus, dbus, log, stop, workerProgram()).start();
  const reply = await bus.requestName(BUS_NAME, DBUS_NAME_FLAG_DO_NOT_QUEUE);
  if (reply !== 1) {
    log.error(`cannot own ${BUS_NAME} on the system bus (RequestName answered ${reply}): another broker runs?`);
    bus.disconnect();
    return 1;
  }
  log.info(`serving ${BUS_NAME} (exits after ${IDLE_MS / 1000} s idle)`);
  return await finished;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`fusegate-broker: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
