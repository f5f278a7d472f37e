/**
 * The benchmark's measuring side: runs inside the e2e container (a real
 * systemd with fusegate installed), started by bench/run.ts as
 *
 *   node /opt/fusegate-src/dist/bench/inside.js OP 'JSON-ARGS'
 *
 * and prints one JSON object on stdout. All clocks are taken here, so the
 * nsenter that starts this process is never part of a measurement. Every
 * mount this file makes is undone before it returns (or by the caller's
 * `umount` op); it never starts anything it does not wait for.
 */
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { findBackend } from '../lib/backends';
import { readOrNull } from '../lib/fs-or-null';
import { backendInstances, instanceCgroup, instanceOfMount, instanceProcesses, systemSlice } from '../lib/instance';
import { mountAt, readMountinfo } from '../lib/mountinfo';
import { serviceUnit } from '../admin/units';
import { fatMemory, fatMount, fatUmount } from './fat-inside';

const BACKEND = 'fuse2fs';
const SERVER_COMM = 'fuse2fs';
const INSTALLED = '/usr/lib/fusegate';

// ---------------------------------------------------------------- basics

/** CLOCK_MONOTONIC in ms (systemd and journald stamp with the same clock, in µs). */
const now = (): number => Number(process.hrtime.bigint()) / 1e6;
const sleepSync = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env } });
}

function shOk(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): string {
  const r = sh(cmd, args, env);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status ?? r.signal}: ${(r.stderr || r.stdout || '').trim()}`);
  return r.stdout;
}

function parentDev(mnt: string): number {
  return fs.statSync(path.dirname(mnt)).dev;
}

/** Waits until mnt is a mount point whose root answers stat (FUSE: the server replied). */
function waitMounted(mnt: string, pdev: number, timeoutMs = 15_000): void {
  const deadline = now() + timeoutMs;
  for (;;) {
    if (fs.statSync(mnt).dev !== pdev) return;
    if (now() > deadline) throw new Error(`${mnt} did not become a mount point`);
    sleepSync(1);
  }
}

function isMounted(mnt: string): boolean {
  try {
    return fs.statSync(mnt).dev !== parentDev(mnt);
  } catch {
    return false;
  }
}

const readText = readOrNull;

function pids(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
}

function comm(pid: number): string | null {
  return readText(`/proc/${pid}/comm`)?.trim() ?? null;
}

function cmdline(pid: number): string[] {
  return (readText(`/proc/${pid}/cmdline`) ?? '').split('\0').filter((s) => s !== '');
}

function serverPids(): number[] {
  return pids().filter((p) => comm(p) === SERVER_COMM);
}

/** Active service instances of the backend, by cgroup (cheaper than asking systemctl). */
function instanceUnits(): string[] {
  return backendInstances(BACKEND);
}

/** The instance serving the mount on mnt (lib/instance.ts), or null. */
function unitServing(mnt: string): string | null {
  const m = mountAt(readMountinfo(), mnt);
  return m === null ? null : instanceOfMount(m)?.unit ?? null;
}

/** After an umount: waits until no server process and no service instance is left. */
function waitServersGone(timeoutMs = 20_000): number {
  const t0 = now();
  while (serverPids().length > 0 || instanceUnits().length > 0) {
    if (now() - t0 > timeoutMs) throw new Error(`servers still running ${timeoutMs} ms after umount: ${serverPids().join(' ')} ${instanceUnits().join(' ')}`);
    sleepSync(2);
  }
  return now() - t0;
}

function showUnit(unit: string, props: string[]): Record<string, string> {
  const out = sh('systemctl', ['show', unit, '-p', props.join(',')]).stdout;
  return Object.fromEntries(
    out
      .trim()
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

function mountOptions(mnt: string): string | null {
  const line = (readText('/proc/self/mountinfo') ?? '').split('\n').find((l) => l.split(' ')[4] === mnt);
  if (!line) return null;
  const [pre, post] = line.split(' - ');
  return `${pre!.split(' ')[5]} | ${post}`;
}

// ---------------------------------------------------------------- mounting

type MountConfig = 'kernel' | 'helperKernel' | 'fuseDirect' | 'fuseDirectSandboxOpts' | 'sandbox';

/** Options the helper and the kernel set themselves, or that only make sense for one mount. */
const PER_MOUNT_OPTIONS = /^(rw|ro|fd=.*|rootmode=.*|user_id=.*|group_id=.*)$/;

/**
 * The FUSE options a sandboxed mount ends up with (from the adapter's OPTS
 * and the helper's choice of fuse or fuseblk), as fuse2fs -o options, so the
 * unsandboxed server can be run with the same ones.
 */
function sandboxFuseOptions(a: { loop: string; mnt: string }) {
  timedMount({ config: 'sandbox', loop: a.loop, mnt: a.mnt });
  try {
    const line = (readText('/proc/self/mountinfo') ?? '').split('\n').find((l) => l.split(' ')[4] === a.mnt) ?? '';
    const [fsType = '', , superOpts = ''] = (line.split(' - ')[1] ?? '').split(' ');
    // fuseblk (blkdev, blksize=) cannot be copied: fuse2fs opens its device
    // O_EXCL itself, and the kernel's exclusive open for fuseblk then fails
    // with EBUSY (fuse2fs still exits 0). The comparison mounts plain fuse.
    const opts = superOpts.split(',').filter((o) => o && !PER_MOUNT_OPTIONS.test(o) && !/^blksize=/.test(o));
    return { fsType, superOptions: superOpts, options: opts.join(',') };
  } finally {
    umount(a.mnt);
  }
}

interface MountArgs {
  config: MountConfig;
  loop: string;
  mnt: string;
  /** fuseDirectSandboxOpts: the -o options (from sandboxFuseOptions) */
  fuseOptions?: string;
  /** policy file for the helper's kernel path */
  kernelPolicy?: string;
}

function mountCommand(a: MountArgs): { cmd: string; args: string[]; env: NodeJS.ProcessEnv } {
  switch (a.config) {
    case 'kernel':
      return { cmd: 'mount', args: ['-i', '-t', 'ext4', a.loop, a.mnt], env: {} };
    case 'helperKernel':
      return { cmd: 'mount', args: [a.loop, a.mnt], env: { FUSEGATE_POLICY: a.kernelPolicy ?? '', FUSEGATE_TIMING: '1' } };
    case 'fuseDirect':
      // The same binary the sandbox runs, as root, no sandbox; it daemonizes once mounted.
      return { cmd: 'fuse2fs', args: [a.loop, a.mnt], env: {} };
    case 'fuseDirectSandboxOpts':
      // The same, with the FUSE options the sandbox path mounts with: separates their cost from the sandbox's.
      return { cmd: 'fuse2fs', args: [a.loop, a.mnt, ...(a.fuseOptions ? ['-o', a.fuseOptions] : [])], env: {} };
    case 'sandbox':
      return { cmd: 'mount', args: [a.loop, a.mnt], env: { FUSEGATE_TIMING: '1' } };
  }
}

interface TimedMount {
  /** command start → command exit */
  exitMs: number;
  /** command start → the mount point's root answers stat */
  statMs: number;
  t0: number;
  stderr: string;
}

function timedMount(a: MountArgs): TimedMount {
  fs.mkdirSync(a.mnt, { recursive: true });
  const pdev = parentDev(a.mnt);
  if (fs.statSync(a.mnt).dev !== pdev) throw new Error(`${a.mnt} is already a mount point`);
  const { cmd, args, env } = mountCommand(a);
  const t0 = now();
  const r = sh(cmd, args, env);
  const t1 = now();
  if (r.status !== 0) throw new Error(`${a.config}: ${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}: ${r.stderr.trim()}`);
  waitMounted(a.mnt, pdev);
  const t2 = now();
  return { exitMs: t1 - t0, statMs: t2 - t0, t0, stderr: r.stderr };
}

function umount(mnt: string): number {
  const t0 = now();
  shOk('umount', [mnt]);
  const ms = now() - t0;
  waitServersGone();
  return ms;
}

// ---------------------------------------------------------------- latency

interface LatencyArgs {
  runs: number;
  loop: string;
  mnt: string;
  kernelPolicy: string;
  /** systemd drop-ins for fuse2fs@.service to try end to end, after the main runs: name → [Service] lines */
  whatIf?: Record<string, string[]>;
}

const DROP_IN_DIR = `/run/systemd/system/${BACKEND}@.service.d`;

/** Sandboxed mounts with a drop-in applied to the backend's template unit: does a unit change pay off end to end? */
function whatIfRuns(a: LatencyArgs, lines: string[]): number[] {
  const file = `${DROP_IN_DIR}/zz-fusegate-bench.conf`;
  fs.mkdirSync(DROP_IN_DIR, { recursive: true });
  fs.writeFileSync(file, `[Service]\n${lines.join('\n')}\n`);
  try {
    shOk('systemctl', ['daemon-reload']);
    const out: number[] = [];
    for (let i = -1; i < a.runs; i++) {
      const m = timedMount({ config: 'sandbox', loop: a.loop, mnt: a.mnt });
      umount(a.mnt);
      if (i >= 0) out.push(m.statMs);
    }
    return out;
  } finally {
    fs.rmSync(file, { force: true });
    sh('systemctl', ['daemon-reload']);
  }
}

interface SandboxRunDetail {
  unit: string;
  t0: number;
  exitMs: number;
  statMs: number;
  helperStartMs: number | null;
  helperDecidedMs: number | null;
  /** systemd timestamps, ms after command start */
  instanceStartMs: number | null;
  forkMs: number | null;
  execDoneMs: number | null;
  /** the adapter's journal entry just before BYEE and execve, ms after command start */
  adapterReadyMs: number | null;
}

function helperMark(stderr: string, phase: string): number | null {
  const m = new RegExp(`timing ${phase} ([\\d.]+) ms`).exec(stderr);
  return m ? Number(m[1]) : null;
}

function monoMs(us: string | undefined, t0: number): number | null {
  const n = Number(us);
  return us && Number.isFinite(n) && n > 0 ? n / 1000 - t0 : null;
}

function latency(a: LatencyArgs) {
  const configs: Array<'nodeFloor' | MountConfig> = ['nodeFloor', 'kernel', 'helperKernel', 'fuseDirect', 'sandbox'];
  const samples: Record<string, number[]> = Object.fromEntries(configs.map((c) => [c, []]));
  const exits: Record<string, number[]> = Object.fromEntries(configs.map((c) => [c, []]));
  const umounts: Record<string, number[]> = {};
  const helperKernelMarks: Array<{ start: number | null; decided: number | null; mounted: number | null }> = [];
  const details: SandboxRunDetail[] = [];
  const options: Record<string, string | null> = {};
  // One warm-up of each (page cache, the helper's policy cache), then interleaved runs.
  for (let i = -1; i < a.runs; i++) {
    for (const c of configs) {
      if (c === 'nodeFloor') {
        const t0 = now();
        shOk('node', ['-e', '0']);
        if (i >= 0) samples[c]!.push(now() - t0);
        continue;
      }
      const m = timedMount({ config: c, loop: a.loop, mnt: a.mnt, kernelPolicy: a.kernelPolicy });
      if (i >= 0) {
        samples[c]!.push(m.statMs);
        exits[c]!.push(m.exitMs);
      }
      options[c] ??= mountOptions(a.mnt);
      if (c === 'helperKernel' && i >= 0) {
        helperKernelMarks.push({ start: helperMark(m.stderr, 'start'), decided: helperMark(m.stderr, 'decided'), mounted: helperMark(m.stderr, 'mounted') });
      }
      if (c === 'sandbox' && i >= 0) {
        const unit = unitServing(a.mnt) ?? '';
        const p = unit ? showUnit(unit, ['InactiveExitTimestampMonotonic', 'ExecMainStartTimestampMonotonic', 'ActiveEnterTimestampMonotonic']) : {};
        details.push({
          unit,
          t0: m.t0,
          exitMs: m.exitMs,
          statMs: m.statMs,
          helperStartMs: helperMark(m.stderr, 'start'),
          helperDecidedMs: helperMark(m.stderr, 'decided'),
          instanceStartMs: monoMs(p.InactiveExitTimestampMonotonic, m.t0),
          forkMs: monoMs(p.ExecMainStartTimestampMonotonic, m.t0),
          execDoneMs: monoMs(p.ActiveEnterTimestampMonotonic, m.t0),
          adapterReadyMs: null,
        });
      }
      const u = umount(a.mnt);
      if (i >= 0) (umounts[c] ??= []).push(u);
    }
  }
  // The adapter logs "mounted …; starting fuse2fs …" right before BYEE and execve.
  const journal = sh('journalctl', ['-o', 'json', '--no-pager', `SYSLOG_IDENTIFIER=fusegate-${BACKEND}`]).stdout;
  const ready = new Map<string, number>();
  for (const line of journal.split('\n')) {
    if (!line.trim()) continue;
    try {
      const e = JSON.parse(line) as Record<string, string>;
      if (e._SYSTEMD_UNIT && /\bmounted \S+ on /.test(e.MESSAGE ?? '')) ready.set(e._SYSTEMD_UNIT, Number(e.__MONOTONIC_TIMESTAMP) / 1000);
    } catch {
      // not JSON
    }
  }
  for (const d of details) {
    const t = ready.get(d.unit);
    d.adapterReadyMs = t === undefined ? null : t - d.t0;
  }
  const whatIf: Record<string, { lines: string[]; samples: number[] }> = {};
  for (const [name, lines] of Object.entries(a.whatIf ?? {})) whatIf[name] = { lines, samples: whatIfRuns(a, lines) };
  return { samples, exits, umounts, helperKernelMarks, sandboxDetails: details, mountOptions: options, whatIf };
}

// ---------------------------------------------------------------- data path

const CHUNK = 1 << 20;

function seqWrite(a: { file: string; mib: number }) {
  const buf = Buffer.alloc(CHUNK);
  randomFillSync(buf);
  const t0 = now();
  const fd = fs.openSync(a.file, 'w');
  for (let i = 0; i < a.mib; i++) {
    buf.writeUInt32LE(i, 0); // no two chunks alike
    fs.writeSync(fd, buf, 0, CHUNK);
  }
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  const ms = now() - t0;
  return { ms, mibPerS: a.mib / (ms / 1000) };
}

function seqRead(a: { file: string }) {
  const buf = Buffer.alloc(CHUNK);
  const t0 = now();
  const fd = fs.openSync(a.file, 'r');
  let total = 0;
  for (;;) {
    const n = fs.readSync(fd, buf, 0, CHUNK, null);
    if (n === 0) break;
    total += n;
  }
  fs.closeSync(fd);
  const ms = now() - t0;
  return { ms, bytes: total, mibPerS: total / CHUNK / (ms / 1000) };
}

/** files spread over directories of 100, as a source tree or photo folder would be */
function smallNames(dir: string, files: number): string[] {
  const names: string[] = [];
  for (let i = 0; i < files; i++) names.push(path.join(dir, `d${String(Math.floor(i / 100)).padStart(3, '0')}`, `f${i}.dat`));
  return names;
}

function smallCreate(a: { dir: string; files: number; size: number }) {
  const buf = Buffer.alloc(a.size, 0x61);
  const names = smallNames(a.dir, a.files);
  const t0 = now();
  fs.mkdirSync(a.dir);
  let lastDir = '';
  for (const n of names) {
    const d = path.dirname(n);
    if (d !== lastDir) fs.mkdirSync((lastDir = d));
    fs.writeFileSync(n, buf);
  }
  return { ms: now() - t0 };
}

function smallStat(a: { dir: string; files: number }) {
  const names = smallNames(a.dir, a.files);
  const t0 = now();
  let bytes = 0;
  for (const n of names) bytes += fs.statSync(n).size;
  return { ms: now() - t0, bytes };
}

function smallRead(a: { dir: string; files: number }) {
  const names = smallNames(a.dir, a.files);
  const t0 = now();
  let bytes = 0;
  for (const n of names) bytes += fs.readFileSync(n).length;
  return { ms: now() - t0, bytes };
}

function remove(a: { path: string }) {
  const t0 = now();
  fs.rmSync(a.path, { recursive: true, force: true });
  return { ms: now() - t0 };
}

function doMount(a: MountArgs) {
  const m = timedMount(a);
  return { statMs: m.statMs, options: mountOptions(a.mnt) };
}

// ---------------------------------------------------------------- memory

function kB(status: string, key: string): number | null {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
  return m ? Number(m[1]) * 1024 : null;
}

interface ProcMemory {
  pid: number;
  comm: string | null;
  threads: number | null;
  rssBytes: number | null;
  /** anonymous (heap, stacks): memory only this process holds */
  anonBytes: number | null;
  /** file-backed pages mapped (binaries, libraries), shared with other processes */
  fileBytes: number | null;
  hwmBytes: number | null;
  pssBytes: number | null;
  /** unique set size: Private_Clean + Private_Dirty */
  ussBytes: number | null;
}

function procMemory(pid: number): ProcMemory {
  const status = readText(`/proc/${pid}/status`) ?? '';
  const rollup = readText(`/proc/${pid}/smaps_rollup`) ?? '';
  const pc = kB(rollup, 'Private_Clean');
  const pd = kB(rollup, 'Private_Dirty');
  const threads = /^Threads:\s+(\d+)/m.exec(status);
  return {
    pid,
    comm: comm(pid),
    threads: threads ? Number(threads[1]) : null,
    rssBytes: kB(status, 'VmRSS'),
    anonBytes: kB(status, 'RssAnon'),
    fileBytes: kB(status, 'RssFile'),
    hwmBytes: kB(status, 'VmHWM'),
    pssBytes: kB(rollup, 'Pss'),
    ussBytes: pc !== null && pd !== null ? pc + pd : null,
  };
}

/** The server of the mount on mnt: the unit's main process (sandbox) or the fuse2fs given this loop device. */
function memorySnapshot(a: { config: 'sandbox' | 'fuseDirect' | 'fuseDirectSandboxOpts'; loop: string }) {
  if (a.config !== 'sandbox') {
    const pid = serverPids().find((p) => cmdline(p).includes(a.loop));
    if (pid === undefined) throw new Error(`no ${SERVER_COMM} serving ${a.loop}`);
    return { unit: null, server: procMemory(pid), unitProcesses: [procMemory(pid)], memoryCurrentBytes: null, memoryCurrentWhy: 'not a systemd unit' };
  }
  const mount = readMountinfo().find((m) => m.source === a.loop);
  const unit = mount === undefined ? null : instanceOfMount(mount)?.unit ?? null;
  if (unit === null) throw new Error(`no ${BACKEND}@ instance serves ${a.loop} (${mount ? `mounted on ${mount.mountpoint}` : 'not mounted'}); instances: ${instanceUnits().join(' ') || 'none'}`);
  return unitMemory(unit);
}

function unitMemory(unit: string) {
  const p = showUnit(unit, ['MainPID', 'MemoryCurrent']);
  const cgroup = instanceCgroup(unit);
  const cgFile = cgroup === null ? null : readText(path.join(cgroup, 'memory.current'));
  const fromSystemd = /^\d+$/.test(p.MemoryCurrent ?? '') && p.MemoryCurrent !== '18446744073709551615' ? Number(p.MemoryCurrent) : null;
  const memoryCurrentBytes = fromSystemd ?? (cgFile !== null ? Number(cgFile.trim()) : null);
  return {
    unit,
    server: procMemory(Number(p.MainPID)),
    unitProcesses: instanceProcesses(unit).map(procMemory),
    memoryCurrentBytes,
    memoryCurrentWhy:
      memoryCurrentBytes !== null
        ? null
        : `systemd reports MemoryCurrent=${p.MemoryCurrent}: no memory controller in this systemd's cgroup hierarchy (${systemSlice()})`,
  };
}

// ---------------------------------------------------------------- concurrency

interface Census {
  pid1Fds: number;
  processes: string[];
  fuseMounts: number;
  instances: string[];
  /** instance cgroups in the cgroup tree (a unit systemd forgot would show here) */
  instanceCgroups: string[];
  servers: number;
  failedUnits: string[];
  socketActive: string;
}

function census(exclude: Set<number>): Census {
  const mountinfo = readText('/proc/self/mountinfo') ?? '';
  return {
    pid1Fds: fs.readdirSync('/proc/1/fd').length,
    processes: pids()
      .filter((p) => !exclude.has(p) && p !== process.pid)
      .map((p) => comm(p) ?? '?')
      .sort(),
    fuseMounts: mountinfo.split('\n').filter((l) => / - fuse(\.|blk|\s)/.test(l)).length,
    instances: sh('systemctl', ['list-units', '--all', '--plain', '--no-legend', `${BACKEND}@*`]).stdout.split('\n').filter((l) => l.trim() !== ''),
    instanceCgroups: instanceUnits(),
    servers: serverPids().length,
    failedUnits: sh('systemctl', ['list-units', '--failed', '--plain', '--no-legend']).stdout.split('\n').filter((l) => l.trim() !== ''),
    socketActive: sh('systemctl', ['is-active', `${BACKEND}.socket`]).stdout.trim(),
  };
}

interface ChildRun {
  code: number | null;
  exitMs: number;
  stderr: string;
}

function spawnTimed(cmd: string, args: string[], t0: number): Promise<ChildRun> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    c.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('error', (e) => resolve({ code: null, exitMs: now() - t0, stderr: String(e) }));
    c.on('close', (code) => resolve({ code, exitMs: now() - t0, stderr }));
  });
}

async function concurrency(a: { loops: string[]; mntBase: string }) {
  const mnts = a.loops.map((_, i) => path.join(a.mntBase, `c${String(i).padStart(2, '0')}`));
  for (const m of mnts) fs.mkdirSync(m, { recursive: true });
  const pdev = parentDev(mnts[0]!);
  const before = census(new Set());

  // 32 mount(8) at once; each mount's time is from the common start to its root answering stat.
  const since = `@${(Date.now() / 1000).toFixed(3)}`;
  const t0 = now();
  const mounted = await Promise.all(
    a.loops.map(async (loop, i) => {
      const r = await spawnTimed('mount', [loop, mnts[i]!], t0);
      let statMs: number | null = null;
      if (r.code === 0) {
        const st = await fs.promises.stat(mnts[i]!);
        statMs = st.dev !== pdev ? now() - t0 : null;
      }
      return { ...r, statMs };
    }),
  );
  const mountWallMs = now() - t0;
  const units = instanceUnits();
  const withProcs = units.map((u) => ({ unit: u, procs: instanceProcesses(u).map(procMemory) }));
  const perUnit = withProcs
    .filter((u) => u.procs.length > 0)
    .map((u) => ({
      unit: u.unit,
      processes: u.procs.map((p) => p.comm),
      serverRssBytes: u.procs[0]?.rssBytes ?? null,
      serverUssBytes: u.procs[0]?.ussBytes ?? null,
      serverPssBytes: u.procs[0]?.pssBytes ?? null,
    }));
  const emptyInstanceCgroups = withProcs.filter((u) => u.procs.length === 0).map((u) => u.unit);
  const mountedCount = mnts.filter(isMounted).length;

  const t1 = now();
  const unmounted = await Promise.all(mnts.map((m) => spawnTimed('umount', [m], t1)));
  const umountWallMs = now() - t1;
  let teardownMs: number | null = null;
  try {
    waitServersGone(30_000);
    teardownMs = now() - t1;
  } catch {
    // reported through the census below
  }
  // Give systemd a moment to finish collecting the instances before counting.
  await sleep(300);
  const after = census(new Set());
  // What systemd and the services logged at warning or worse during the round (why a mount failed).
  const warnings = sh('journalctl', ['--no-pager', '-o', 'short-monotonic', '-p', 'warning', `--since=${since}`]).stdout.trim().split('\n').filter((l) => l && !l.startsWith('-- '));
  return {
    warnings: warnings.slice(-60),
    n: a.loops.length,
    mountWallMs,
    mounts: mounted.map((m) => ({ code: m.code, exitMs: m.exitMs, statMs: m.statMs, stderr: m.stderr.trim().slice(0, 300) })),
    instancesWhileMounted: perUnit.length,
    emptyInstanceCgroups,
    mountedCount,
    perUnit,
    umountWallMs,
    umounts: unmounted.map((u) => ({ code: u.code, exitMs: u.exitMs, stderr: u.stderr.trim().slice(0, 300) })),
    teardownMs,
    before,
    after,
  };
}

// ---------------------------------------------------------------- start-up experiments

function timeRuns(variants: Record<string, { cmd: string; args: string[]; env?: NodeJS.ProcessEnv; ok?: number[] }>, runs: number) {
  const out: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  for (let i = -1; i < runs; i++) {
    for (const [name, v] of Object.entries(variants)) {
      const t0 = now();
      const r = spawnSync(v.cmd, v.args, { stdio: 'ignore', env: { ...process.env, ...v.env } });
      const ms = now() - t0;
      if (!(v.ok ?? [0]).includes(r.status ?? -1)) throw new Error(`${name}: ${v.cmd} ${v.args.join(' ')} exited ${r.status ?? r.signal}`);
      if (i >= 0) out[name]!.push(ms);
    }
  }
  return out;
}

/** A copy of an installed loader and bundle without the V8 code cache beside it. */
function copyWithoutCache(rel: string, dir: string): string {
  const src = path.join(INSTALLED, rel);
  const dst = path.join(dir, rel);
  fs.mkdirSync(path.dirname(dst), { recursive: true });
  fs.copyFileSync(src, dst);
  fs.copyFileSync(src.replace(/\.js$/, '.bundle.js'), dst.replace(/\.js$/, '.bundle.js'));
  for (const l of ['build', 'node_modules', 'package.json']) {
    if (!fs.existsSync(path.join(dir, l))) fs.symlinkSync(path.join(INSTALLED, l), path.join(dir, l));
  }
  return dst;
}

function nodeStartup(a: { runs: number; caFile?: string }) {
  const nocache = '/tmp/fgbench-nocache';
  fs.rmSync(nocache, { recursive: true, force: true });
  const adapterNoCache = copyWithoutCache('dist/sandbox/adapter-start.js', nocache);
  const helperNoCache = copyWithoutCache('dist/helper/mount.fusegate.js', nocache);
  const adapter = `${INSTALLED}/dist/sandbox/adapter-start.js`;
  const JIT = ['--jitless', '--no-expose-wasm'];
  // A user-land startup snapshot that holds nothing: what deserializing one costs on top of Node's own.
  fs.mkdirSync(nocache, { recursive: true });
  fs.writeFileSync(`${nocache}/snap-entry.js`, "require('v8').startupSnapshot.setDeserializeMainFunction(() => {});\n");
  shOk('node', ['--snapshot-blob', `${nocache}/empty.blob`, '--build-snapshot', `${nocache}/snap-entry.js`]);
  // The adapter, not socket-activated, loads its whole bundle and stops at the
  // activation check (exit 2): Node start + bundle, without the handshake.
  const samples = timeRuns(
    {
      'node -e 0': { cmd: 'node', args: ['-e', '0'] },
      'node --jitless --no-expose-wasm -e 0': { cmd: 'node', args: [...JIT, '-e', '0'] },
      'node --snapshot-blob (an empty user-land snapshot)': { cmd: 'node', args: ['--snapshot-blob', `${nocache}/empty.blob`] },
      'adapter bundle, --jitless, code cache (as installed)': { cmd: 'node', args: [...JIT, adapter, BACKEND], ok: [2] },
      'adapter bundle, --jitless, no code cache': { cmd: 'node', args: [...JIT, adapterNoCache, BACKEND], ok: [2] },
      'adapter bundle, JIT, cache rejected (flags differ)': { cmd: 'node', args: [adapter, BACKEND], ok: [2] },
      'helper bundle --version, code cache (as installed)': { cmd: `${INSTALLED}/dist/helper/mount.fusegate.js`, args: ['--version'] },
      'helper bundle --version, no code cache': { cmd: 'node', args: [helperNoCache, '--version'] },
      ...(a.caFile
        ? {
            // What mount(8) run from a login shell on these machines passes on to the helper.
            'helper bundle --version, NODE_EXTRA_CA_CERTS set (as in this machine\'s login environment)': {
              cmd: `${INSTALLED}/dist/helper/mount.fusegate.js`,
              args: ['--version'],
              env: { NODE_EXTRA_CA_CERTS: a.caFile },
            },
          }
        : {}),
    },
    a.runs,
  );
  fs.rmSync(nocache, { recursive: true, force: true });
  return { samples };
}

/** The [Service] hardening of the real fuse2fs@.service, one directive a line. */
function hardening(): string[] {
  const text = serviceUnit(findBackend(BACKEND)!).text;
  return text
    .split('[Service]\n')[1]!
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('#') && !/^(Type|ExecStart|SyslogIdentifier|Environment)=/.test(l));
}

const MOUNT_NS_KEYS = [
  'DynamicUser',
  'PrivateTmp',
  'PrivateDevices',
  'PrivateMounts',
  'ProtectSystem',
  'ProtectHome',
  'ProtectProc',
  'ProcSubset',
  'ProtectHostname',
  'ProtectClock',
  'ProtectKernelLogs',
  'ProtectKernelModules',
  'ProtectKernelTunables',
  'ProtectControlGroups',
];

/**
 * systemd's cost of starting one sandboxed instance: template services on
 * Accept=yes stream sockets whose program writes one byte to the connection;
 * the client times connect → byte. Variants: no sandbox, the real unit's
 * sandbox, the sandbox without one directive (or group), and Node in place of
 * /bin/sh (what the adapter's interpreter costs inside the sandbox).
 */
type Variant = { exec: string; lines: string[] };

const SH = `/bin/sh -c 'printf x >&3'`;
const NODE = `/usr/bin/node --jitless --no-expose-wasm -e "require('fs').writeSync(3,'x')"`;

/** Installs one Accept=yes socket + template per variant, times connect → first byte, removes them. */
async function activationTimes(variants: Record<string, Variant>, runs: number) {
  const names = Object.keys(variants);
  const id = (i: number) => `fgbench-v${i}`;
  names.forEach((n, i) => {
    const v = variants[n]!;
    fs.writeFileSync(`/run/systemd/system/${id(i)}.socket`, `[Socket]\nListenStream=/run/${id(i)}.sock\nAccept=yes\n`);
    fs.writeFileSync(`/run/systemd/system/${id(i)}@.service`, `[Service]\nType=exec\nExecStart=${v.exec}\n${v.lines.join('\n')}\n`);
  });
  const sockets = names.map((_, i) => `${id(i)}.socket`);
  const samples: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const failures: Record<string, number> = {};
  try {
    shOk('systemctl', ['daemon-reload']);
    shOk('systemctl', ['start', ...sockets]);
    const once = (p: string) =>
      new Promise<number>((resolve, reject) => {
        const t0 = now();
        const s = net.connect(p);
        s.once('data', () => {
          resolve(now() - t0);
          s.destroy();
        });
        s.once('error', reject);
        s.once('close', () => reject(new Error('closed without data')));
      });
    for (let r = -1; r < runs; r++) {
      for (const [i, n] of names.entries()) {
        try {
          const ms = await once(`/run/${id(i)}.sock`);
          if (r >= 0) samples[n]!.push(ms);
        } catch {
          failures[n] = (failures[n] ?? 0) + 1;
        }
        await sleep(40);
      }
    }
  } finally {
    sh('systemctl', ['stop', ...sockets]);
    names.forEach((_, i) => {
      fs.rmSync(`/run/systemd/system/${id(i)}.socket`, { force: true });
      fs.rmSync(`/run/systemd/system/${id(i)}@.service`, { force: true });
    });
    sh('systemctl', ['daemon-reload']);
    sh('systemctl', ['reset-failed']);
  }
  return { samples, failures };
}

async function unitVariants(a: { runs: number; all: boolean }) {
  const full = hardening();
  const drop = (keys: string[]) => full.filter((l) => !keys.includes(l.slice(0, l.indexOf('='))));
  const variants: Record<string, Variant> = {
    'no sandbox, /bin/sh': { exec: SH, lines: [] },
    'fuse2fs@ sandbox, /bin/sh': { exec: SH, lines: full },
    'fuse2fs@ sandbox without mount-namespace directives, /bin/sh': { exec: SH, lines: drop(MOUNT_NS_KEYS) },
    'fuse2fs@ sandbox without ProtectKernelTunables, /bin/sh': { exec: SH, lines: drop(['ProtectKernelTunables']) },
    'no sandbox, node --jitless': { exec: NODE, lines: [] },
    'fuse2fs@ sandbox, node --jitless': { exec: NODE, lines: full },
  };
  if (a.all) {
    const keys = [...new Set(full.map((l) => l.slice(0, l.indexOf('='))))];
    for (const k of keys) variants[`fuse2fs@ sandbox without ${k}, /bin/sh`] ??= { exec: SH, lines: drop([k]) };
  }
  const r = await activationTimes(variants, a.runs);
  return { ...r, hardening: full, mountNamespaceKeys: MOUNT_NS_KEYS, mounts: mountCount() };
}

function mountCount(): number {
  return (readText('/proc/self/mountinfo') ?? '').split('\n').filter((l) => l).length;
}

/**
 * Does the sandbox's set-up cost grow with the mount table? systemd copies
 * PID 1's mount namespace for each instance and remounts what the Protect*
 * directives cover, so each extra mount (another FUSE mount, a snap, a
 * container's bind) may cost every later mount. Adds N tmpfs mounts and
 * times the full sandbox and no sandbox at each N.
 */
async function mountScaling(a: { counts: number[]; runs: number; base: string }) {
  const full = hardening();
  const made: string[] = [];
  const out: Array<{ extraMounts: number; mountTable: number; bare: number[]; sandbox: number[] }> = [];
  try {
    for (const n of a.counts) {
      while (made.length < n) {
        const d = path.join(a.base, `m${made.length}`);
        fs.mkdirSync(d, { recursive: true });
        shOk('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'fgbench', d]);
        made.push(d);
      }
      const r = await activationTimes({ bare: { exec: SH, lines: [] }, sandbox: { exec: SH, lines: full } }, a.runs);
      out.push({ extraMounts: n, mountTable: mountCount(), bare: r.samples.bare ?? [], sandbox: r.samples.sandbox ?? [] });
    }
  } finally {
    for (const d of made.reverse()) sh('umount', [d]);
    fs.rmSync(a.base, { recursive: true, force: true });
  }
  return { points: out };
}

function systemInfo() {
  return {
    systemd: sh('systemctl', ['--version']).stdout.split('\n')[0]?.trim() ?? null,
    cgroup: systemSlice() === '/sys/fs/cgroup/system.slice' ? 'unified (v2)' : 'hybrid (v1 controllers + v2 for systemd)',
    mounts: mountCount(),
    fuse2fs: sh('dpkg-query', ['-W', '-f', '${Version}', 'fuse2fs']).stdout.trim() || null,
  };
}

// ---------------------------------------------------------------- main

const OPS: Record<string, (a: never) => unknown> = {
  latency,
  mount: doMount,
  sandboxFuseOptions,
  umount: (a: { mnt: string }) => ({ ms: umount(a.mnt) }),
  seqwrite: seqWrite,
  seqread: seqRead,
  smallcreate: smallCreate,
  smallstat: smallStat,
  smallread: smallRead,
  remove,
  memory: memorySnapshot,
  concurrency,
  nodeStartup,
  unitVariants,
  mountScaling,
  systemInfo,
  fatMount,
  fatUmount,
  fatMemory,
};

async function main(): Promise<void> {
  const [op, json] = process.argv.slice(2);
  const fn = OPS[op ?? ''];
  if (!fn) throw new Error(`unknown op ${op}; one of ${Object.keys(OPS).join(' ')}`);
  const result = await fn(JSON.parse(json ?? '{}') as never);
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`bench inside: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
