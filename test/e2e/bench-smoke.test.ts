/**
 * The benchmark's smoke mode, end to end, so bench/ cannot rot: it boots the
 * e2e container, installs fusegate, and runs every section with a few
 * iterations and small sizes. It checks that the JSON has every section with
 * numbers and that the run cleaned up after itself — never that a number
 * meets a goal (a benchmark reports; a noisy machine must not fail CI).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertE2eAvailable, e2eSkip } from './harness';

const REPO = resolve(__dirname, '../..');
const RUNNER = join(REPO, 'dist', 'bench', 'run.js');

type Json = Record<string, any>;

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function expectSummary(s: Json | undefined, what: string): void {
  expect(s, what).toBeDefined();
  for (const k of ['p50', 'p95', 'min', 'mean', 'max', 'runs']) expect(isNum(s![k]), `${what}.${k} = ${s![k]}`).toBe(true);
  expect(s!.runs, `${what}.runs`).toBeGreaterThan(0);
}

function runBench(outDir: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [RUNNER, '--smoke', '--out', outDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), 170_000);
    child.on('error', rej);
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr });
    });
  });
}

describe.skipIf(e2eSkip())('npm run bench -- --smoke', () => {
  let out = '';
  let result: Json = {};
  let markdown = '';

  beforeAll(async () => {
    assertE2eAvailable();
    out = mkdtempSync(join(tmpdir(), 'fusegate-bench-smoke-'));
    const r = await runBench(out);
    if (r.code !== 0) throw new Error(`bench --smoke exited ${r.code}\n${r.stderr.slice(-4000)}`);
    const json = readdirSync(out).find((f) => /^results-.*\.json$/.test(f));
    if (!json) throw new Error(`no results-*.json in ${out}`);
    result = JSON.parse(readFileSync(join(out, json), 'utf8')) as Json;
    markdown = readFileSync(join(out, 'results.md'), 'utf8');
    expect(r.stdout).toContain('### Goals');
  }, 180_000);

  afterAll(() => {
    if (out) rmSync(out, { recursive: true, force: true });
  });

  it('describes the machine and the mode', () => {
    expect(result.mode).toBe('smoke');
    for (const k of ['nproc', 'memoryMiB']) expect(isNum(result.machine[k])).toBe(true);
    for (const k of ['kernel', 'node']) expect(typeof result.machine[k]).toBe('string');
  });

  it('has mount latency for every path, with a phase breakdown of the sandboxed one', () => {
    const s = result.latency.summaries;
    for (const k of ['nodeFloor', 'kernel', 'helperKernel', 'fuseDirect', 'sandbox']) expectSummary(s[k], `latency.${k}`);
    expect(result.latency.sandboxBreakdown.length).toBeGreaterThanOrEqual(7);
    for (const p of result.latency.sandboxBreakdown) expectSummary(p, `breakdown ${p.name}`);
    for (const w of Object.values(result.latency.whatIf as Json)) expectSummary(w as Json, 'latency.whatIf');
  });

  it('has data-path numbers for the kernel, fuse2fs unsandboxed and sandboxed', () => {
    for (const c of ['kernel', 'fuseDirect', 'fuseDirectSandboxOpts', 'sandbox']) {
      for (const m of ['seqWriteMiBs', 'seqReadMiBs', 'smallCreateMs', 'smallStatMs', 'smallReadMs']) {
        expectSummary(result.dataPath.summaries[c][m], `dataPath.${c}.${m}`);
      }
    }
  });

  it('has memory of the sandboxed and the bare server, and no Node left in the unit', () => {
    for (const c of ['fuseDirect', 'fuseDirectSandboxOpts', 'sandbox']) {
      for (const phase of ['idle', 'afterWorkload']) {
        const srv = result.memory[c][phase].server;
        for (const k of ['rssBytes', 'ussBytes', 'pssBytes']) expect(isNum(srv[k]) && srv[k] > 0, `${c}.${phase}.${k}`).toBe(true);
      }
    }
    const procs = result.memory.sandbox.afterWorkload.unitProcesses.map((p: Json) => p.comm);
    expect(procs).toEqual(['fuse2fs']);
  });

  it('has concurrency numbers and a census before and after', () => {
    const r0 = result.concurrency.rounds[0];
    expect(r0.mounts.length).toBe(result.params.concurrency);
    for (const m of r0.mounts) expect(isNum(m.exitMs)).toBe(true);
    expect(isNum(r0.mountWallMs) && isNum(r0.umountWallMs)).toBe(true);
    for (const k of ['before', 'after']) expect(isNum(r0[k].pid1Fds)).toBe(true);
  });

  it('has the start-up experiments', () => {
    expect(Object.keys(result.startup.nodeInContainer).length).toBeGreaterThanOrEqual(5);
    for (const s of Object.values(result.startup.nodeInContainer as Json)) expectSummary(s as Json, 'startup');
    expectSummary(result.startup.unitVariants['no sandbox, /bin/sh'], 'unit bare');
    expectSummary(result.startup.unitVariants['fuse2fs@ sandbox, /bin/sh'], 'unit full');
  });

  it('has the FAT section: fusegate-vfat against exfat-fuse and fusefat, with ratios', () => {
    const f = result.fat;
    expect(f.mounts).toMatchObject({ 'fusegate-vfat': 'fuseblk.fusegate-vfat', 'exfat-fuse': 'fuseblk.exfat-fuse', 'fusefat (ro)': expect.stringMatching(/^fuse(blk)?\.fusefat$/) });
    for (const k of ['seqWriteVsExfatFuse', 'seqReadVsExfatFuse', 'smallStatTimeVsFusefat', 'smallReadTimeVsFusefat', 'serverRssVsFusefat']) {
      expect(isNum(f.ratios[k]) && f.ratios[k] > 0, `fat.ratios.${k}`).toBe(true);
    }
    expect(markdown).toContain('## FAT: fusegate-vfat against C peers');
  });

  it('left nothing behind: no container processes, mounts or loop devices', () => {
    expect(result.cleanup.loopDevicesStillAttached).toEqual([]);
    expect(result.cleanup.mountsLeftUnderScratch).toEqual([]);
    expect(result.cleanup.containerLeftovers.pids).toEqual([]);
    expect(result.cleanup.containerLeftovers.mounts).toEqual([]);
  });

  it('renders every section in the Markdown table', () => {
    for (const h of ['### Goals', '### 1. Mount latency', '### 2. Data path', '### 3. Memory per mount', '### 4. Concurrency', '### 5. Start-up']) {
      expect(markdown).toContain(h);
    }
  });
});
