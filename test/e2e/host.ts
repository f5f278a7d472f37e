/**
 * Small host-side utilities for the e2e harness: running a command with a
 * timeout, looking at /proc, unmounting and removing directories safely.
 * Everything here acts on pids and paths it is given, never on names.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';

export interface RunResult {
  stdout: string;
  stderr: string;
  /** Exit code, or null when the process was killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
}

export interface RunOptions {
  timeoutMs?: number;
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Cap on collected output per stream: a runaway command must not eat the test's memory. */
  maxOutputBytes?: number;
  /** Told the pid (also the process group id) once the child started. */
  onSpawn?: (pid: number) => void;
}

const DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024;

/**
 * PATH and locale for commands the harness starts. The host environment is
 * not passed through: on these machines it carries variables such as
 * NODE_EXTRA_CA_CERTS that name host files a container does not have (node
 * then warns on every start), and the container's programs must not depend
 * on whoever ran the test.
 */
export const CLEAN_ENV: NodeJS.ProcessEnv = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  LANG: 'C.UTF-8',
  TERM: 'dumb',
  SYSTEMD_PAGER: 'cat',
  SYSTEMD_COLORS: '0',
};

/**
 * Runs argv[0] with the rest as arguments. The child gets its own process
 * group so that a timeout can kill it and everything it forked (nsenter forks
 * once to enter a PID namespace) by that one pid.
 */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error('run: empty argv');
  const max = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      env: opts.env ?? CLEAN_ENV,
      cwd: opts.cwd,
      detached: true,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    if (child.pid !== undefined) opts.onSpawn?.(child.pid);
    const out = collect(child.stdout, max);
    const err = collect(child.stderr, max);
    let timedOut = false;
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            killGroup(child.pid, 'SIGKILL');
          }, opts.timeoutMs);
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(new Error(`cannot run ${file}: ${e.message}`));
    });
    // 'close' waits for the pipes to reach EOF, which a daemon the command
    // left behind could hold open forever; after 'exit' wait only briefly.
    let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let done = false;
    const finish = (): void => {
      if (done || exited === undefined) return;
      done = true;
      if (timer) clearTimeout(timer);
      child.stdout?.destroy();
      child.stderr?.destroy();
      resolve({ stdout: out(), stderr: err(), code: exited.code, signal: exited.signal, timedOut });
    };
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      setTimeout(finish, 2000).unref();
    });
    child.on('close', finish);
    if (opts.input !== undefined && child.stdin) child.stdin.end(opts.input);
  });
}

/** Like run(), but throws with the command's output unless it exits 0. */
export async function runOk(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(argv, opts);
  if (r.code !== 0) throw new Error(describeFailure(argv, r));
  return r;
}

export function describeFailure(argv: readonly string[], r: RunResult): string {
  const how = r.timedOut ? 'timed out' : r.signal ? `killed by ${r.signal}` : `exited ${r.code}`;
  return [`command ${how}: ${argv.join(' ')}`, tail('stdout', r.stdout), tail('stderr', r.stderr)]
    .filter((s) => s !== '')
    .join('\n');
}

function tail(label: string, text: string, max = 4000): string {
  if (text.trim() === '') return '';
  const t = text.length > max ? `…${text.slice(-max)}` : text;
  return `--- ${label} ---\n${t.trimEnd()}`;
}

function collect(stream: NodeJS.ReadableStream | null, max: number): () => string {
  const chunks: Buffer[] = [];
  let size = 0;
  stream?.on('data', (b: Buffer) => {
    if (size >= max) return;
    chunks.push(b);
    size += b.length;
  });
  return () => Buffer.concat(chunks).toString('utf8');
}

/** Sends a signal to the process group led by pid; ignores a group already gone. */
export function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    /* already gone */
  }
}

/** Sends a signal to one pid; returns false if it no longer exists. */
export function killPid(pid: number, signal: NodeJS.Signals | number): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** True while pid exists and is not a zombie. */
export function pidAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  // The state letter follows the parenthesised comm, which may contain spaces.
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/** Direct children of pid, from every thread's children list. */
export function childPids(pid: number): number[] {
  const kids: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return kids;
  }
  for (const t of tasks) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim();
      if (text !== '') kids.push(...text.split(/\s+/).map(Number));
    } catch {
      /* thread ended */
    }
  }
  return kids;
}

export function readProc(pid: number, file: string): string | null {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return null;
  }
}

/** The pid as seen in the innermost PID namespace (last field of NSpid). */
export function innermostPid(pid: number): number | null {
  const status = readProc(pid, 'status');
  const line = status?.split('\n').find((l) => l.startsWith('NSpid:'));
  if (!line) return null;
  const fields = line.split(/\s+/).slice(1).filter((f) => f !== '');
  const last = fields[fields.length - 1];
  return last === undefined ? null : Number(last);
}

/** Mount points in the harness's own mount namespace at or below dir. */
export function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => m !== undefined)
    .map(unescapeMountPath)
    .filter((m) => m === dir || m.startsWith(prefix));
}

function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * Removes a directory tree the harness made. Anything still mounted below it
 * is unmounted first (deepest first), and rm stays on one filesystem: an
 * interrupted debootstrap can leave /proc or a /dev bind mounted inside its
 * target, and following those would delete the host's files.
 */
export async function removeTree(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  const mounts = mountsUnder(dir).sort((a, b) => b.length - a.length);
  for (const m of mounts) await run(['umount', '-l', m], { timeoutMs: 30_000 });
  const left = mountsUnder(dir);
  if (left.length > 0) throw new Error(`refusing to remove ${dir}: still mounted: ${left.join(', ')}`);
  await runOk(['rm', '-rf', '--one-file-system', '--', dir], { timeoutMs: 120_000 });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Finds an executable in the harness's PATH (or the standard sbin dirs). */
export function which(name: string): string | null {
  const dirs = `${process.env.PATH ?? ''}:${CLEAN_ENV.PATH ?? ''}`.split(':').filter((d) => d !== '');
  for (const d of dirs) {
    const p = `${d}/${name}`;
    if (existsSync(p)) return p;
  }
  return null;
}
