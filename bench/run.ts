/**
 * fusegate's benchmark: mount latency, data-path overhead, memory per mount
 * and concurrency, side by side in one run on one machine, measured in a
 * real systemd (the e2e container) with fusegate installed the way an
 * administrator would. Reports; never fails on a number.
 *
 *   npm run bench                    full mode (about 5 minutes)
 *   npm run bench -- --smoke         a few iterations, small sizes (CI)
 *   node dist/bench/run.js [--smoke] [--out DIR] [--only latency,data,memory,concurrency,startup]
 *
 * Writes DIR/results-<date>.json and DIR/results.md (DIR: bench/out) and
 * prints the Markdown table. Needs root, /dev/fuse, loop devices and what
 * the e2e harness needs (test/e2e/harness.ts).
 *
 * The host only sets up (images, loop devices, the container, policies) and
 * drops page caches; every clock runs inside the container (bench/inside.ts).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  type LoopDevice,
  Container,
  PROJECT_MOUNT,
  assertE2eAvailable,
  attachLoop,
  e2eLog,
  loopsFor,
  makeExt4Image,
} from '../test/e2e/harness';
import { CLEAN_ENV, mountsUnder } from '../test/e2e/host';
import { fatImageMiB, fatSection, makeFatImages, renderFat, type FatLoops } from './fat';
import { renderMarkdown } from './report';
import { summarizeFull } from './stats';

const REPO = path.resolve(__dirname, '..', '..');
const INSIDE = `${PROJECT_MOUNT}/dist/bench/inside.js`;
const SECTIONS = ['latency', 'data', 'memory', 'concurrency', 'startup', 'fat'] as const;
type Section = (typeof SECTIONS)[number];

export interface BenchParams {
  mode: 'full' | 'smoke';
  latencyRuns: number;
  dataMiB: number;
  smallFiles: number;
  smallFileBytes: number;
  dataRounds: number;
  memoryWorkloadMiB: number;
  concurrency: number;
  concurrencyRounds: number;
  startupRuns: number;
  unitRuns: number;
  unitAllDirectives: boolean;
  /** FAT section (bench/fat.ts): large file size and rounds */
  fatDataMiB: number;
  fatRounds: number;
}

const FULL: BenchParams = {
  mode: 'full',
  latencyRuns: 25,
  dataMiB: 512,
  smallFiles: 5000,
  smallFileBytes: 4096,
  dataRounds: 5,
  memoryWorkloadMiB: 64,
  concurrency: 32,
  concurrencyRounds: 3,
  startupRuns: 20,
  unitRuns: 10,
  unitAllDirectives: true,
  fatDataMiB: 128,
  fatRounds: 2,
};

const SMOKE: BenchParams = {
  mode: 'smoke',
  latencyRuns: 3,
  dataMiB: 16,
  smallFiles: 200,
  smallFileBytes: 4096,
  dataRounds: 1,
  memoryWorkloadMiB: 8,
  concurrency: 4,
  concurrencyRounds: 1,
  startupRuns: 3,
  unitRuns: 2,
  unitAllDirectives: false,
  fatDataMiB: 8,
  fatRounds: 1,
};

/** The policy the sandboxed mounts run under: ext4 on loop devices through fuse2fs, writable. */
const BENCH_POLICY = `# fusegate benchmark policy (bench/run.ts): loop devices through the sandboxed
# fuse2fs, writable. Debian 12's fuse2fs does not write the ext4 journal; the
# benchmark's images are throwaway, so the risk is accepted here.
version: 1
intercept: [ext4]
defaults:
  action: deny
  reason: only the benchmark's loop devices are mounted here
  force_options: [nosuid, nodev]
rules:
  - name: bench-loop-sandboxed-rw
    match: { loop: true, type: ext4 }
    action: fuse
    backends: [fuse2fs]
    allow_unsafe_write: true
`;

/** The helper's kernel path (FUSEGATE_POLICY points here for those runs). */
const KERNEL_POLICY = `version: 1
intercept: [ext4]
defaults:
  action: deny
  reason: only the benchmark's loop devices are mounted here
rules:
  - name: bench-loop-kernel
    match: { loop: true }
    action: kernel
`;

function parseArgs(argv: string[]): { params: BenchParams; outDir: string; only: Set<Section> } {
  const smoke = argv.includes('--smoke');
  const outIdx = argv.indexOf('--out');
  const onlyIdx = argv.indexOf('--only');
  const only = new Set<Section>(
    onlyIdx >= 0 ? (argv[onlyIdx + 1] ?? '').split(',').filter((s): s is Section => (SECTIONS as readonly string[]).includes(s)) : SECTIONS,
  );
  return { params: smoke ? SMOKE : FULL, outDir: outIdx >= 0 ? path.resolve(argv[outIdx + 1]!) : path.join(REPO, 'bench', 'out'), only };
}

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : '';
}

function machine() {
  const osRelease = fs.readFileSync('/etc/os-release', 'utf8');
  const cpu = os.cpus();
  return {
    nproc: os.cpus().length,
    cpuModel: cpu[0]?.model ?? null,
    memoryMiB: Math.round(os.totalmem() / 2 ** 20),
    kernel: os.release(),
    node: process.version,
    os: /^PRETTY_NAME="?([^"\n]*)"?/m.exec(osRelease)?.[1] ?? null,
    debianVersion: fs.existsSync('/etc/debian_version') ? fs.readFileSync('/etc/debian_version', 'utf8').trim() : null,
    systemdNspawn: sh('systemd-nspawn', ['--version']).split('\n')[0] ?? null,
  };
}

/** Images go on tmpfs when there is room: the "device" is then RAM, so disk noise stays out of the ratios. */
function scratchBase(needMiB: number): { dir: string; backing: string } {
  try {
    const st = fs.statfsSync('/dev/shm');
    const freeMiB = (st.bavail * st.bsize) / 2 ** 20;
    if (st.type === 0x01021994 && freeMiB > needMiB * 1.5 + 512) return { dir: '/dev/shm', backing: 'tmpfs (/dev/shm)' };
  } catch {
    // no /dev/shm
  }
  return { dir: '/var/tmp', backing: 'disk (/var/tmp)' };
}

function dropCaches(): void {
  spawnSync('sync');
  fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
}

class Bench {
  constructor(
    readonly c: Container,
    readonly p: BenchParams,
  ) {}

  async inside<T>(op: string, args: unknown, timeoutMs = 600_000): Promise<T> {
    const r = await this.c.exec(['node', INSIDE, op, JSON.stringify(args)], { timeoutMs });
    if (r.code !== 0) throw new Error(`inside ${op} failed (exit ${r.code}${r.timedOut ? ', timed out' : ''}):\n${r.stderr.trim()}`);
    const last = r.stdout.trim().split('\n').pop() ?? '';
    return JSON.parse(last) as T;
  }
}

// ---------------------------------------------------------------- sections

async function latencySection(b: Bench, loop: string) {
  e2eLog(`latency: ${b.p.latencyRuns} interleaved runs of 5 commands`);
  type Raw = {
    samples: Record<string, number[]>;
    exits: Record<string, number[]>;
    umounts: Record<string, number[]>;
    helperKernelMarks: Array<{ start: number | null; decided: number | null; mounted: number | null }>;
    sandboxDetails: Array<Record<string, number | string | null>>;
    mountOptions: Record<string, string | null>;
    whatIf: Record<string, { lines: string[]; samples: number[] }>;
  };
  const raw = await b.inside<Raw>('latency', {
    runs: b.p.latencyRuns,
    loop,
    mnt: '/mnt/fgbench/lat',
    kernelPolicy: '/etc/fusegate/bench-kernel.yaml',
    // The unit directive the start-up experiments find most expensive, tried on real mounts.
    whatIf: { 'fuse2fs@ unit with ProtectKernelTunables=no': ['ProtectKernelTunables=no'] },
  });
  const names: Record<string, string> = {
    nodeFloor: 'node -e 0 (floor of any Node process)',
    kernel: 'kernel driver: mount -i -t ext4',
    helperKernel: 'mount → fusegate helper → kernel driver',
    fuseDirect: 'fuse2fs run directly, no sandbox',
    sandbox: 'mount → helper → socket → sandboxed fuse2fs',
  };
  const summaries = Object.fromEntries(Object.entries(raw.samples).map(([k, v]) => [k, summarizeFull(names[k] ?? k, v)]));
  // The timeline of each sandboxed mount, cut into phases (ms).
  const d = raw.sandboxDetails.map((x) => x as Record<string, number | null>);
  const phase = (f: (x: Record<string, number | null>) => number | null) =>
    d.map(f).filter((v): v is number => v !== null && Number.isFinite(v));
  const breakdown = [
    ['helper: mount(8), Node start, bundle (helper "start" mark)', phase((x) => x.helperStartMs)],
    ['helper: facts, probe, policy ("decided" − "start")', phase((x) => (x.helperDecidedMs != null && x.helperStartMs != null ? x.helperDecidedMs - x.helperStartMs : null))],
    ['mount(8) exec, helper logs + connects, systemd accepts, forks, marks the instance starting (InactiveExit)', phase((x) => (x.instanceStartMs != null && x.helperDecidedMs != null ? x.instanceStartMs - x.helperDecidedMs : null))],
    ['systemd: rest of the sandbox set-up until node is exec\'d (InactiveExit → ActiveEnter)', phase((x) => (x.execDoneMs != null && x.instanceStartMs != null ? x.execDoneMs - x.instanceStartMs : null))],
    ['adapter: Node start, bundle, handshake incl. the helper\'s mount (→ its journal entry)', phase((x) => (x.adapterReadyMs != null && x.execDoneMs != null ? x.adapterReadyMs - x.execDoneMs : null))],
    ['adapter BYEE + execve fuse2fs; helper statfs, utab, exit', phase((x) => (x.adapterReadyMs != null && x.exitMs != null ? x.exitMs - x.adapterReadyMs : null))],
    ['mount(8) exit → stat answers', phase((x) => (x.statMs != null && x.exitMs != null ? x.statMs - x.exitMs : null))],
    ['total (command start → stat answers)', phase((x) => x.statMs)],
  ].map(([name, v]) => summarizeFull(name as string, v as number[]));
  const hk = raw.helperKernelMarks;
  const helperKernelPhases = [
    ['helper: mount(8), Node start, bundle ("start")', hk.map((x) => x.start)],
    ['helper: facts, probe, policy ("decided" − "start")', hk.map((x) => (x.decided != null && x.start != null ? x.decided - x.start : null))],
    ['helper: mount -i ("mounted" − "decided")', hk.map((x) => (x.mounted != null && x.decided != null ? x.mounted - x.decided : null))],
  ].map(([name, v]) => summarizeFull(name as string, (v as Array<number | null>).filter((n): n is number => n !== null)));
  return {
    runs: b.p.latencyRuns,
    summaries,
    exitSummaries: Object.fromEntries(Object.entries(raw.exits).filter(([, v]) => v.length).map(([k, v]) => [k, summarizeFull(k, v)])),
    umountSummaries: Object.fromEntries(Object.entries(raw.umounts).map(([k, v]) => [k, summarizeFull(k, v)])),
    sandboxBreakdown: breakdown,
    helperKernelPhases,
    mountOptions: raw.mountOptions,
    whatIf: Object.fromEntries(Object.entries(raw.whatIf ?? {}).map(([k, v]) => [k, summarizeFull(k, v.samples)])),
    raw,
  };
}

type DataConfig = 'kernel' | 'fuseDirect' | 'fuseDirectSandboxOpts' | 'sandbox';
/** fuseDirectSandboxOpts: unsandboxed fuse2fs with the sandbox path's FUSE options, to tell their cost from the sandbox's. */
const DATA_CONFIGS: DataConfig[] = ['kernel', 'fuseDirect', 'fuseDirectSandboxOpts', 'sandbox'];

async function dataSection(b: Bench, loop: string) {
  const mnt = '/mnt/fgbench/data';
  const { dataMiB, smallFiles, smallFileBytes } = b.p;
  const metrics = ['seqWriteMiBs', 'seqReadMiBs', 'smallCreateMs', 'smallStatMs', 'smallReadMs'] as const;
  const samples: Record<DataConfig, Record<(typeof metrics)[number], number[]>> = Object.fromEntries(
    DATA_CONFIGS.map((c) => [c, Object.fromEntries(metrics.map((m) => [m, [] as number[]]))]),
  ) as never;
  const options: Partial<Record<DataConfig, string | null>> = {};
  const same = await b.inside<{ fsType: string; superOptions: string; options: string }>('sandboxFuseOptions', { loop, mnt });
  e2eLog(`data path: the sandbox mounts ${same.fsType} (${same.superOptions}); unsandboxed fuse2fs gets -o ${same.options} for comparison`);
  for (let r = 0; r < b.p.dataRounds; r++) {
    // Rotate the order so no configuration always runs first (or last).
    const order = DATA_CONFIGS.map((_, i) => DATA_CONFIGS[(i + r) % DATA_CONFIGS.length]!);
    for (const config of order) {
      e2eLog(`data path: round ${r + 1}/${b.p.dataRounds}, ${config}`);
      const m = await b.inside<{ options: string | null }>('mount', { config, loop, mnt, fuseOptions: same.options });
      options[config] ??= m.options;
      const s = samples[config];
      try {
        dropCaches();
        s.seqWriteMiBs.push((await b.inside<{ mibPerS: number }>('seqwrite', { file: `${mnt}/big.dat`, mib: dataMiB })).mibPerS);
        dropCaches();
        s.seqReadMiBs.push((await b.inside<{ mibPerS: number }>('seqread', { file: `${mnt}/big.dat` })).mibPerS);
        dropCaches();
        s.smallCreateMs.push((await b.inside<{ ms: number }>('smallcreate', { dir: `${mnt}/small`, files: smallFiles, size: smallFileBytes })).ms);
        dropCaches();
        s.smallStatMs.push((await b.inside<{ ms: number }>('smallstat', { dir: `${mnt}/small`, files: smallFiles })).ms);
        dropCaches();
        s.smallReadMs.push((await b.inside<{ ms: number }>('smallread', { dir: `${mnt}/small`, files: smallFiles })).ms);
        await b.inside('remove', { path: `${mnt}/big.dat` });
        await b.inside('remove', { path: `${mnt}/small` });
      } finally {
        await b.inside('umount', { mnt });
      }
    }
  }
  const summaries = Object.fromEntries(
    DATA_CONFIGS.map((c) => [c, Object.fromEntries(metrics.map((m) => [m, summarizeFull(`${c} ${m}`, samples[c][m])]))]),
  );
  return { sizeMiB: dataMiB, smallFiles, smallFileBytes, rounds: b.p.dataRounds, sandboxFuseOptions: same, summaries, mountOptions: options, samples };
}

async function memorySection(b: Bench, loop: string) {
  const mnt = '/mnt/fgbench/data';
  const out: Record<string, unknown> = {};
  const same = await b.inside<{ fsType: string; options: string }>('sandboxFuseOptions', { loop, mnt });
  for (const config of ['fuseDirect', 'fuseDirectSandboxOpts', 'sandbox'] as const) {
    e2eLog(`memory: ${config}`);
    await b.inside('mount', { config, loop, mnt, fuseOptions: same.options });
    try {
      const idle = await b.inside('memory', { config, loop });
      await b.inside('smallcreate', { dir: `${mnt}/small`, files: Math.min(1000, b.p.smallFiles), size: b.p.smallFileBytes });
      await b.inside('seqwrite', { file: `${mnt}/big.dat`, mib: b.p.memoryWorkloadMiB });
      dropCaches();
      await b.inside('seqread', { file: `${mnt}/big.dat` });
      await b.inside('smallread', { dir: `${mnt}/small`, files: Math.min(1000, b.p.smallFiles) });
      const busy = await b.inside('memory', { config, loop });
      await b.inside('remove', { path: `${mnt}/big.dat` });
      await b.inside('remove', { path: `${mnt}/small` });
      out[config] = { idle, afterWorkload: busy };
    } finally {
      await b.inside('umount', { mnt });
    }
  }
  return {
    workload: `${Math.min(1000, b.p.smallFiles)} files of ${b.p.smallFileBytes} B created and read, ${b.p.memoryWorkloadMiB} MiB written and read back`,
    ...out,
  };
}

async function concurrencySection(b: Bench, loops: string[]) {
  const rounds = [];
  for (let r = 0; r < b.p.concurrencyRounds; r++) {
    e2eLog(`concurrency: round ${r + 1}/${b.p.concurrencyRounds}, ${loops.length} mounts at once, then ${loops.length} umounts`);
    rounds.push(await b.inside<Record<string, unknown>>('concurrency', { loops, mntBase: '/mnt/fgbench/conc' }));
  }
  return { n: loops.length, rounds };
}

/** On the host: what NODE_EXTRA_CA_CERTS (set in this machine's login environment) does to every Node start. */
function hostNodeStartup(runs: number) {
  const ca = '/etc/ssl/certs/ca-certificates.crt';
  const variants: Array<[string, NodeJS.ProcessEnv]> = [['node -e 0, clean environment', CLEAN_ENV]];
  if (fs.existsSync(ca)) variants.push([`node -e 0, NODE_EXTRA_CA_CERTS=${ca}`, { ...CLEAN_ENV, NODE_EXTRA_CA_CERTS: ca }]);
  const samples: Record<string, number[]> = Object.fromEntries(variants.map(([n]) => [n, []]));
  for (let i = -1; i < runs; i++) {
    for (const [name, env] of variants) {
      const t0 = process.hrtime.bigint();
      spawnSync(process.execPath, ['-e', '0'], { env, stdio: 'ignore' });
      if (i >= 0) samples[name]!.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
  return {
    inheritedNodeExtraCaCerts: process.env.NODE_EXTRA_CA_CERTS ?? null,
    summaries: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarizeFull(k, v)])),
  };
}

async function startupSection(b: Bench) {
  e2eLog('start-up experiments: Node and bundles');
  const ca = '/etc/ssl/certs/ca-certificates.crt';
  let caFile: string | undefined;
  if (fs.existsSync(ca)) {
    caFile = '/tmp/fgbench-ca-certificates.crt';
    await b.c.execOk(['sh', '-c', `cat > ${caFile}`], { input: fs.readFileSync(ca) });
  }
  const node = await b.inside<{ samples: Record<string, number[]> }>('nodeStartup', { runs: b.p.startupRuns, caFile });
  e2eLog('start-up experiments: systemd sandbox variants');
  const units = await b.inside<{ samples: Record<string, number[]>; failures: Record<string, number>; hardening: string[] }>('unitVariants', {
    runs: b.p.unitRuns,
    all: b.p.unitAllDirectives,
  });
  e2eLog('start-up experiments: sandbox set-up against the size of the mount table');
  const scaling = await b.inside<{ points: Array<{ extraMounts: number; mountTable: number; bare: number[]; sandbox: number[] }> }>('mountScaling', {
    counts: b.p.mode === 'full' ? [0, 32, 64, 128] : [0, 16],
    runs: b.p.unitRuns,
    base: '/mnt/fgbench/extra',
  });
  return {
    mountScaling: scaling.points.map((pt) => ({
      extraMounts: pt.extraMounts,
      mountTable: pt.mountTable,
      bare: summarizeFull('no sandbox', pt.bare),
      sandbox: summarizeFull('fuse2fs@ sandbox', pt.sandbox),
    })),
    mountsWhenMeasured: (units as { mounts?: number }).mounts ?? null,
    nodeInContainer: Object.fromEntries(Object.entries(node.samples).map(([k, v]) => [k, summarizeFull(k, v)])),
    host: hostNodeStartup(b.p.startupRuns),
    unitVariants: Object.fromEntries(Object.entries(units.samples).map(([k, v]) => [k, summarizeFull(k, v)])),
    unitVariantFailures: units.failures,
    unitHardening: units.hardening,
  };
}

// ---------------------------------------------------------------- main

export async function runBench(argv: string[]): Promise<{ jsonFile: string; mdFile: string; results: Record<string, unknown> }> {
  const { params: p, outDir, only } = parseArgs(argv);
  assertE2eAvailable();
  const started = Date.now();
  const dataImgMiB = Math.max(64, p.dataMiB * 2);
  const { dir: base, backing } = scratchBase(dataImgMiB + 64 + p.concurrency * 8 + (only.has('fat') ? 2 * fatImageMiB(p.fatDataMiB) : 0));
  const scratch = fs.mkdtempSync(path.join(base, 'fusegate-bench-'));
  const loops: LoopDevice[] = [];
  let container: Container | undefined;
  const results: Record<string, unknown> = {
    date: new Date().toISOString(),
    mode: p.mode,
    params: p,
    machine: machine(),
    imageBacking: backing,
    fsType: 'ext4 (mkfs.ext4 defaults, with journal)',
  };
  const cleanup: Record<string, unknown> = {};
  try {
    e2eLog(`images in ${scratch} (${backing})`);
    await makeExt4Image(path.join(scratch, 'lat.img'), { sizeMiB: 64, label: 'fgbench-lat' });
    await makeExt4Image(path.join(scratch, 'data.img'), { sizeMiB: dataImgMiB, label: 'fgbench-data' });
    const latLoop = await attachLoop(path.join(scratch, 'lat.img'));
    loops.push(latLoop);
    const dataLoop = await attachLoop(path.join(scratch, 'data.img'));
    loops.push(dataLoop);
    const concLoops: LoopDevice[] = [];
    if (only.has('concurrency')) {
      for (let i = 0; i < p.concurrency; i++) {
        const img = path.join(scratch, `c${i}.img`);
        await makeExt4Image(img, { sizeMiB: 8 });
        const l = await attachLoop(img);
        loops.push(l);
        concLoops.push(l);
      }
    }
    let fatLoops: FatLoops | undefined;
    if (only.has('fat')) {
      const imgs = makeFatImages(scratch, fatImageMiB(p.fatDataMiB));
      fatLoops = { vfat: await attachLoop(imgs.vfat), exfat: await attachLoop(imgs.exfat) };
      loops.push(fatLoops.vfat, fatLoops.exfat);
    }
    // The loop devices are made inside with mknod rather than bound in by
    // nspawn: each bind is a line in the mount table, and every sandboxed
    // start pays for each line (see the mount-table experiment), so 34 binds
    // would inflate every sandboxed number here. A desktop's table is smaller.
    container = await Container.boot({ projectDir: REPO, log: e2eLog });
    const c = container;
    for (const l of loops) {
      const rdev = fs.statSync(l.path).rdev;
      const [major, minor] = [Math.floor(rdev / 256) & 0xfff, (rdev & 0xff) | ((rdev >> 12) & ~0xff)];
      await c.execOk(['sh', '-c', `[ -b ${l.path} ] || mknod -m 0660 ${l.path} b ${major} ${minor}`]);
    }
    await c.install();
    await c.exec(['sh', '-c', 'cat > /etc/fusegate/policy.yaml'], { input: BENCH_POLICY });
    await c.exec(['sh', '-c', 'cat > /etc/fusegate/bench-kernel.yaml'], { input: KERNEL_POLICY });
    for (const f of ['/etc/fusegate/policy.yaml', '/etc/fusegate/bench-kernel.yaml']) await c.execOk(['fusegate', 'policy', 'check', f]);
    const b = new Bench(c, p);
    results.container = { bootMs: c.bootMs, ...(await b.inside<Record<string, unknown>>('systemInfo', {})) };

    if (only.has('latency')) results.latency = await latencySection(b, latLoop.path);
    if (only.has('data')) results.dataPath = await dataSection(b, dataLoop.path);
    if (only.has('memory')) results.memory = await memorySection(b, dataLoop.path);
    if (only.has('concurrency')) results.concurrency = await concurrencySection(b, concLoops.map((l) => l.path));
    if (only.has('startup')) results.startup = await startupSection(b);
    if (fatLoops) {
      const fp = { dataMiB: p.fatDataMiB, smallFiles: p.smallFiles, smallFileBytes: p.smallFileBytes, rounds: p.fatRounds };
      results.fat = await fatSection((op, args) => b.inside(op, args), c, fp, fatLoops, dropCaches, e2eLog);
    }
  } finally {
    if (container) {
      const leftovers = container.leftovers;
      await container.stop();
      cleanup.containerLeftovers = leftovers.call(container);
    }
    for (const l of loops) await l.detach();
    const stillAttached: string[] = [];
    for (const l of loops) stillAttached.push(...(await loopsFor(l.image)));
    cleanup.loopDevicesStillAttached = stillAttached;
    cleanup.mountsLeftUnderScratch = mountsUnder(scratch);
    fs.rmSync(scratch, { recursive: true, force: true });
    results.cleanup = cleanup;
  }
  results.wallSeconds = (Date.now() - started) / 1000;
  fs.mkdirSync(outDir, { recursive: true });
  const stamp = (results.date as string).replace(/[:.]/g, '-');
  const jsonFile = path.join(outDir, `results-${stamp}.json`);
  fs.writeFileSync(jsonFile, JSON.stringify(results, null, 2) + '\n');
  const md = renderMarkdown(results as never) + renderFat(results.fat as never);
  const mdFile = path.join(outDir, 'results.md');
  fs.writeFileSync(mdFile, md);
  return { jsonFile, mdFile, results };
}

if (require.main === module) {
  runBench(process.argv.slice(2)).then(
    ({ jsonFile, mdFile }) => {
      process.stdout.write(fs.readFileSync(mdFile, 'utf8'));
      process.stdout.write(`\nwrote ${jsonFile}\nwrote ${mdFile}\n`);
    },
    (err: unknown) => {
      process.stderr.write(`bench: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
