/**
 * One booted systemd container: systemd-nspawn --boot over the cached root,
 * with a throwaway overlay on top so the cache is never modified.
 *
 * Commands run inside with nsenter into the container's init; the journal is
 * written to a host directory so it can be read during and after the run.
 * stop() shuts the container down by the pids this object started, never by
 * name. If the test process ends without stop(), a process 'exit' handler
 * SIGKILLs the container, and if it is killed outright a watchdog does
 * (watchdog.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CLEAN_ENV,
  type RunOptions,
  type RunResult,
  childPids,
  describeFailure,
  innermostPid,
  killPid,
  mountsUnder,
  pidAlive,
  readProc,
  removeTree,
  run,
  sleep,
} from './host';
import { ensureRoot, machineIdFor, rootKey } from './rootfs';
import { type Watchdog, startWatchdog } from './watchdog';

/** The Node bound into the container at /usr/bin/node. */
export const HOST_NODE = process.env.FUSEGATE_E2E_NODE ?? '/usr/bin/node';

/** Where the project directory appears inside the container. */
export const PROJECT_MOUNT = '/opt/fusegate-src';

export interface Bind {
  host: string;
  container?: string;
  readOnly?: boolean;
}

export interface BootOptions {
  /** Root to boot; default: the cached root, built if missing. */
  root?: string;
  /** Host directory bound read-only at PROJECT_MOUNT (e.g. the repo checkout). */
  projectDir?: string;
  /** Block devices (e.g. '/dev/loop3') to bind in at the same path. */
  devices?: string[];
  /** Bind the host's /run/udev read-only (udisks2 needs it; a udevd must run on the host). */
  bindUdev?: boolean;
  /**
   * Share the host's network namespace instead of a private one. Only for
   * udisks2 setting up loop devices itself (`udisksctl loop-setup`): it waits
   * for the host udevd's netlink event about the new device, and netlink
   * events stay in the namespace they were sent in.
   */
  hostNetwork?: boolean;
  binds?: Bind[];
  /** false: do not bind the host's Node at /usr/bin/node (the root has none of its own). */
  node?: boolean;
  /** Give up waiting for `systemctl is-system-running --wait` after this long. */
  bootTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface ExecOptions extends Omit<RunOptions, 'cwd'> {
  /** Extra variables on top of the harness's clean environment. */
  env?: NodeJS.ProcessEnv;
  /**
   * Run as a transient service of the container's systemd (systemd-run
   * --wait --pipe) instead of directly under nsenter. A process nsenter
   * starts keeps the host's full capability set and cgroup; one started by
   * the container's systemd has the container's (smaller) bounding set and
   * sits in its cgroup tree, as a real service or a mount helper would.
   * About 30 ms more.
   */
  inUnit?: boolean;
}

export type ExecResult = RunResult;

export interface InstallOptions {
  /** Arguments after `fusegate install`. */
  args?: string[];
  /** The whole command instead of `node PROJECT_MOUNT/dist/bin/fusegate.js install`. */
  command?: string[];
  timeoutMs?: number;
}

const DEFAULT_EXEC_TIMEOUT = 60_000;
const DEFAULT_BOOT_TIMEOUT = 60_000;
const STOP_TIMEOUT = 20_000;
let serial = 0;

export class Container {
  /** 'running' or 'degraded', as reported by is-system-running once boot finished. */
  systemState = '';
  /** Units that had failed when boot finished (so a test can tell its own failures apart). */
  failedUnits: string[] = [];
  /** From spawning nspawn to is-system-running returning. */
  bootMs = 0;
  private initPidValue: number | null = null;
  /** e.g. 'pid:[4026532345]', to find any process of the container on the host. */
  private pidNamespace: string | null = null;
  private exited: Promise<void>;
  private hasExited = false;
  private stopped = false;
  private readonly onExit = (): void => this.killNow();
  private watchdog: Watchdog | null = null;

  private constructor(
    readonly name: string,
    readonly root: string,
    readonly workDir: string,
    private readonly child: ChildProcess,
  ) {
    // 'error' without 'exit' happens when nspawn cannot be started at all.
    this.exited = new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });
    void this.exited.then(() => (this.hasExited = true));
    process.once('exit', this.onExit);
  }

  /** Boots a container and waits until systemd reports running or degraded. */
  static async boot(opts: BootOptions = {}): Promise<Container> {
    const log = opts.log ?? (() => undefined);
    checkBootOptions(opts);
    const root = opts.root ?? (await ensureRoot({ log })).path;
    await removeAbandonedWorkDirs();
    const workDir = mkdtempSync(join(tmpdir(), `fusegate-e2e-${process.pid}-`));
    const journalDir = join(workDir, 'journal');
    mkdirSync(journalDir);
    const name = `fge2e-${process.pid}-${++serial}`;
    const argv = nspawnArgv(name, root, journalDir, opts);
    const consoleFd = openSync(join(workDir, 'console.log'), 'w');
    const t0 = Date.now();
    let child: ChildProcess;
    try {
      child = spawn(argv[0]!, argv.slice(1), { env: CLEAN_ENV, stdio: ['ignore', consoleFd, consoleFd] });
    } finally {
      closeSync(consoleFd);
    }
    const c = new Container(name, root, workDir, child);
    if (child.pid !== undefined) c.watchdog = startWatchdog({ kind: 'container', nspawnPid: child.pid, machine: name, workDir });
    try {
      await c.waitForBoot(opts.bootTimeoutMs ?? DEFAULT_BOOT_TIMEOUT);
      c.bootMs = Date.now() - t0;
      log(`container ${name} ${c.systemState} after ${c.bootMs} ms${c.failedUnits.length ? `; failed: ${c.failedUnits.join(' ')}` : ''}`);
      return c;
    } catch (e) {
      const diag = await c.diagnostics();
      await c.stop();
      throw new Error(`${(e as Error).message}\n${diag}`);
    }
  }

  get nspawnPid(): number {
    return this.child.pid!;
  }

  /** Host pid of the container's systemd. */
  get initPid(): number {
    if (this.initPidValue === null) throw new Error(`container ${this.name} has no init yet`);
    return this.initPidValue;
  }

  get running(): boolean {
    return !this.hasExited && !this.stopped;
  }

  /** Runs argv inside the container (all its namespaces, its root) with a timeout. */
  exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    if (!this.running) return Promise.reject(new Error(`container ${this.name} is not running`));
    const { inUnit, env, ...rest } = opts;
    const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT;
    const inner = inUnit ? [...systemdRunPrefix(env, timeoutMs), ...argv] : argv;
    return run(['nsenter', '-t', String(this.initPid), '-a', '--', ...inner], {
      ...rest,
      env: { ...CLEAN_ENV, ...env },
      timeoutMs,
    });
  }

  /** Like exec(), but throws with the output unless the command exits 0. */
  async execOk(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const r = await this.exec(argv, opts);
    if (r.code !== 0) throw new Error(`in container ${this.name}: ${describeFailure(argv, r)}`);
    return r;
  }

  /** Runs a /bin/sh script inside the container. */
  sh(script: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return this.exec(['/bin/sh', '-c', script], opts);
  }

  shOk(script: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return this.execOk(['/bin/sh', '-c', script], opts);
  }

  /**
   * Installs fusegate inside the container the way an administrator would:
   * the project's own `fusegate install` from the read-only source bind (the
   * project must be built, dist/ and the addon, before booting).
   */
  install(opts: InstallOptions = {}): Promise<ExecResult> {
    const command = opts.command ?? ['node', `${PROJECT_MOUNT}/dist/bin/fusegate.js`, 'install', ...(opts.args ?? [])];
    return this.execOk(command, { timeoutMs: opts.timeoutMs ?? 120_000 });
  }

  /**
   * The container's journal, read on the host from the bound journal
   * directory: works while it runs and after it stopped (until stop()
   * removes the work directory).
   */
  async journal(opts: { lines?: number } = {}): Promise<string> {
    const dir = this.journalFilesDir();
    if (dir === null) return '(no journal files)';
    const argv = ['journalctl', `--directory=${dir}`, '--no-pager', '--no-hostname', '-o', 'short-monotonic'];
    if (opts.lines !== undefined) argv.push(`--lines=${opts.lines}`);
    const r = await run(argv, { timeoutMs: 30_000 });
    return r.stdout + (r.code === 0 ? '' : r.stderr);
  }

  /** Failed units, the console and the journal: what to print when a test fails. */
  async diagnostics(opts: { lines?: number } = {}): Promise<string> {
    const parts = [`=== e2e container ${this.name} (root ${this.root}, work ${this.workDir}) ===`];
    if (this.running && this.initPidValue !== null) {
      const failed = await this.exec(['systemctl', '--failed', '--no-legend', '--plain'], { timeoutMs: 10_000 }).catch(
        (e: Error) => ({ stdout: e.message }),
      );
      parts.push('--- failed units ---', failed.stdout.trim() || '(none)');
    }
    parts.push('--- nspawn console ---', readText(join(this.workDir, 'console.log')).trim());
    parts.push('--- journal ---', (await this.journal({ lines: opts.lines ?? 400 })).trim());
    return parts.join('\n');
  }

  /** Writes diagnostics() to stderr. */
  async dumpJournal(opts: { lines?: number } = {}): Promise<void> {
    process.stderr.write(`${await this.diagnostics(opts)}\n`);
  }

  /**
   * Shuts the container down and removes its work directory. SIGTERM makes
   * nspawn send the container's systemd SIGRTMIN+3, a clean halt (0.2-1.5 s
   * here); if that does not finish, SIGKILL to the container's init ends its
   * whole PID namespace, then nspawn itself. Killing only nspawn would not
   * do: the container outlives it. Idempotent.
   */
  async stop(opts: { keepWorkDir?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (!this.hasExited) {
      killPid(this.nspawnPid, 'SIGTERM');
      if (!(await this.waitExited(STOP_TIMEOUT))) {
        this.killNow();
        if (!(await this.waitExited(10_000))) throw new Error(`systemd-nspawn ${this.nspawnPid} survived SIGKILL`);
      }
    }
    const init = this.initPidValue;
    if (init !== null && pidAlive(init)) {
      killPid(init, 'SIGKILL');
      for (let i = 0; i < 50 && pidAlive(init); i++) await sleep(100);
      if (pidAlive(init)) throw new Error(`container ${this.name}: init ${init} survived SIGKILL`);
    }
    // Only now is there nothing left for the exit handler or the watchdog to do.
    process.removeListener('exit', this.onExit);
    this.watchdog?.disarm();
    if (!opts.keepWorkDir) await removeTree(this.workDir);
  }

  /**
   * What a finished test can check is gone: pids of nspawn and init still
   * alive, mounts on the host under the work directory or the root.
   */
  leftovers(): { pids: number[]; mounts: string[]; workDir: boolean } {
    const pids = [this.nspawnPid, this.initPidValue].filter((p): p is number => p !== null && pidAlive(p));
    if (this.pidNamespace !== null) pids.push(...pidsInNamespace(this.pidNamespace).filter((p) => !pids.includes(p)));
    const mounts = [...mountsUnder(this.workDir), ...mountsUnder(this.root)];
    return { pids, mounts, workDir: existsSync(this.workDir) };
  }

  /** Synchronous last resort (also the process 'exit' handler): SIGKILL init, then nspawn. */
  private killNow(): void {
    if (this.initPidValue !== null) killPid(this.initPidValue, 'SIGKILL');
    if (this.child.pid !== undefined) killPid(this.child.pid, 'SIGKILL');
  }

  private async waitExited(ms: number): Promise<boolean> {
    if (this.hasExited) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
    const ok = await Promise.race([this.exited.then(() => true), timeout]);
    clearTimeout(timer);
    return ok;
  }

  private async waitForBoot(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    this.initPidValue = await this.waitForInit(deadline);
    this.pidNamespace = pidNamespaceOf(this.initPidValue);
    // systemctl fails until systemd listens on its private socket: retry.
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`container ${this.name}: systemd did not finish booting in ${timeoutMs} ms`);
      const r = await this.exec(['systemctl', 'is-system-running', '--wait'], { timeoutMs: left });
      const state = r.stdout.trim();
      if (state === 'running' || state === 'degraded') {
        this.systemState = state;
        break;
      }
      // 'offline' means systemctl could not reach the manager yet (seen in ~1 of
      // 8 boots right after init starts): like a failed systemctl, retry.
      if (state === 'maintenance' || state === 'stopping') {
        throw new Error(`container ${this.name}: system state ${state}`);
      }
      if (!this.running) throw new Error(`container ${this.name}: systemd-nspawn exited during boot`);
      await sleep(100);
    }
    const failed = await this.exec(['systemctl', '--failed', '--no-legend', '--plain'], { timeoutMs: 10_000 });
    this.failedUnits = failed.stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[0] ?? '')
      .filter((u) => u !== '');
  }

  /**
   * The container's init is the child of nspawn that is pid 1 in its own PID
   * namespace; wait until it has exec'd systemd, before which its mount
   * namespace is still being assembled and nsenter would enter a half-made
   * root.
   */
  private async waitForInit(deadline: number): Promise<number> {
    while (Date.now() < deadline) {
      if (this.hasExited) throw new Error(`container ${this.name}: systemd-nspawn exited during boot`);
      for (const pid of childPids(this.nspawnPid)) {
        if (innermostPid(pid) === 1 && readProc(pid, 'comm')?.trim() === 'systemd') return pid;
      }
      await sleep(20);
    }
    throw new Error(`container ${this.name}: no systemd init appeared`);
  }

  private journalFilesDir(): string | null {
    const base = join(this.workDir, 'journal');
    const byId = join(base, machineIdFor(rootKey()));
    if (existsSync(byId)) return byId;
    // A root not built by ensureRoot() has some other machine id.
    try {
      const sub = readdirSync(base).find((d) => statSync(join(base, d)).isDirectory());
      return sub === undefined ? null : join(base, sub);
    } catch {
      return null;
    }
  }
}

/**
 * systemd-run starts services with systemd's environment, not ours: extras
 * are passed explicitly. RuntimeMaxSec: killing systemd-run on a timeout
 * would leave the service running, so the service gets the same limit.
 */
function systemdRunPrefix(env: NodeJS.ProcessEnv | undefined, timeoutMs: number): string[] {
  const setenv = Object.entries(env ?? {})
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([k, v]) => `--setenv=${k}=${v}`);
  const limit = `--property=RuntimeMaxSec=${Math.ceil(timeoutMs / 1000)}`;
  return ['systemd-run', '--wait', '--pipe', '--quiet', '--collect', '--service-type=exec', limit, ...setenv, '--'];
}

/** Fails early, before anything is created, on options nspawn would reject late. */
function checkBootOptions(opts: BootOptions): void {
  for (const dev of opts.devices ?? []) {
    if (!existsSync(dev) || !statSync(dev).isBlockDevice()) throw new Error(`${dev} is not a block device`);
  }
  if (opts.projectDir !== undefined && !existsSync(opts.projectDir)) throw new Error(`no project dir ${opts.projectDir}`);
  if (opts.bindUdev && !existsSync('/run/udev/data')) {
    throw new Error('bindUdev: no /run/udev/data on the host: a systemd-udevd must run there (docs/testing.md §5)');
  }
}

/**
 * The nspawn command line. No --property=DeviceAllow=: with --register=no
 * and --keep-unit nspawn allocates no scope and ignores --property (it says
 * so); device access is decided by which nodes are bound into /dev.
 */
function nspawnArgv(name: string, root: string, journalDir: string, opts: BootOptions): string[] {
  const argv = [
    'systemd-nspawn',
    '--quiet',
    `--directory=${root}`,
    `--machine=${name}`,
    '--boot',
    '--register=no',
    '--keep-unit',
    // tmpfs overlay over the cached root: nothing a test does reaches the cache,
    // and it is gone with nspawn's mount namespace (about 80 ms; --ephemeral
    // copies the whole tree on ext4, about 830 ms).
    '--volatile=overlay',
    ...(opts.hostNetwork ? [] : ['--private-network']),
    // No pty: the console goes to our log file; the root masks the gettys.
    '--console=pipe',
    '--bind=/dev/fuse',
    '--bind=/dev/loop-control',
    `--bind=${journalDir}:/var/log/journal`,
  ];
  // The host's Node 20 (Debian 12's own is 18); it needs only libc and
  // libstdc++, which bookworm has.
  if (opts.node !== false) argv.push(`--bind-ro=${HOST_NODE}:/usr/bin/node`);
  if (opts.projectDir !== undefined) argv.push(`--bind-ro=${opts.projectDir}:${PROJECT_MOUNT}`);
  for (const dev of opts.devices ?? []) argv.push(`--bind=${dev}`);
  if (opts.bindUdev) argv.push('--bind-ro=/run/udev');
  for (const b of opts.binds ?? []) {
    argv.push(`${b.readOnly ? '--bind-ro' : '--bind'}=${b.host}:${b.container ?? b.host}`);
  }
  return argv;
}

/**
 * Work directories of test processes that died without stop() (their pid is
 * in the name; the watchdog normally removes them, but not if it was killed
 * too).
 */
async function removeAbandonedWorkDirs(): Promise<void> {
  for (const name of readdirSync(tmpdir())) {
    const m = /^fusegate-e2e-(\d+)-[A-Za-z0-9]{6}$/.exec(name);
    if (m && !pidAlive(Number(m[1]))) await removeTree(join(tmpdir(), name));
  }
}

function pidNamespaceOf(pid: number): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return null;
  }
}

/** Host pids of every process in the given PID namespace. */
function pidsInNamespace(ns: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((pid) => pidNamespaceOf(pid) === ns);
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
