/**
 * Mount latency of the helper's kernel path against the floor of any Node
 * process (`node -e 0`), against mount(8) alone, and against the floor of any
 * Node helper: a script with no logic that only does the kernel path's
 * essential work (load the addon, pin the two paths, probe the source with
 * libblkid, read the policy, mount through libmount, _exit). Interleaved on
 * the same machine so noise hits all alike; a last round with
 * FUSEGATE_TIMING=1 says where the helper's time goes. Reports; never fails
 * on a number.
 *
 *   node dist/bench/helper-startup.js [--runs N] [--json FILE]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { withKernelPathScratch } from './kernel-path-scratch';
import { fmt, median, summarize, timeCommand, type Summary } from './stats';

const ROOT = path.resolve(__dirname, '..', '..');
const HELPER = path.join(ROOT, 'dist', 'helper', 'mount.fusegate.js');
const ADDON = path.join(ROOT, 'build', 'Release', 'fusegate_native.node');

/** The floor of a Node kernel-path helper: the helper's syscalls and libraries, none of its logic. */
function floorScript(policy: string): string {
  return `#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS -u NODE_OPTIONS node
const n = require(${JSON.stringify(ADDON)});
const fs = require('node:fs');
const [source, dir] = process.argv.slice(2);
fs.openSync(source, 0o10000000); // O_PATH, as the helper pins
fs.openSync(dir, 0o10000000);
const probe = n.blkidProbe(source);
fs.readFileSync(${JSON.stringify(policy)}, 'utf8');
n.libmountMount(source, dir, probe.tags.TYPE, 'x-fusegate.rule=floor', 0).then((r) => n.exitNow(r.code));
`;
}

/** The helper's FUSEGATE_TIMING phases, in order, with how long each took (median ms). */
export type PhaseTimes = Array<{ phase: string; ms: number }>;

export interface StartupResult {
  date: string;
  runs: number;
  nodeFloor: Summary;
  mountDirect: Summary;
  helperFloor: Summary;
  helperKernel: Summary;
  ratioToNode: number;
  floorRatioToNode: number;
  /** the helper's own cost: its p50 minus node -e 0's */
  overheadMs: number;
  phases: PhaseTimes;
}

export function measureHelperStartup(runs: number): StartupResult {
  const samples = { node: [] as number[], direct: [] as number[], floor: [] as number[], helper: [] as number[] };
  const phaseSamples = new Map<string, number[]>();
  withKernelPathScratch(({ dir, loop, mnt, clean, writePolicy }) => {
    const policy = writePolicy('policy');
    const env = { ...clean, FUSEGATE_POLICY: policy, FUSEGATE_FSTAB: '/dev/null' };
    const floor = path.join(dir, 'floor.js');
    fs.writeFileSync(floor, floorScript(policy), { mode: 0o755 });
    const umount = () => execFileSync('umount', [mnt]);
    // One warm-up of each (page cache, policy cache), then interleaved runs.
    // Run as mount(8) runs it: exec the file, so its #! line applies.
    timeCommand(HELPER, [loop, mnt], { env });
    umount();
    for (let i = 0; i < runs; i++) {
      samples.node.push(timeCommand(process.execPath, ['-e', '0'], { env: clean }));
      samples.direct.push(timeCommand('mount', ['-i', '-t', 'ext4', loop, mnt]));
      umount();
      samples.floor.push(timeCommand(floor, [loop, mnt], { env: clean }));
      umount();
      samples.helper.push(timeCommand(HELPER, [loop, mnt], { env }));
      umount();
    }
    for (let i = 0; i < Math.min(runs, 15); i++) {
      const r = spawnSync(HELPER, [loop, mnt], { env: { ...env, FUSEGATE_TIMING: '1' }, encoding: 'utf8' });
      umount();
      let previous = 0;
      for (const m of r.stderr.matchAll(/timing (\S+) ([\d.]+) ms/g)) {
        const at = Number(m[2]);
        const list = phaseSamples.get(m[1]!) ?? [];
        list.push(at - previous);
        phaseSamples.set(m[1]!, list);
        previous = at;
      }
    }
  });
  const nodeFloor = summarize('node -e 0', samples.node);
  const helperFloor = summarize('Node floor of a kernel-path helper (no logic)', samples.floor);
  const helperKernel = summarize('mount.fusegate, kernel path', samples.helper);
  return {
    date: new Date().toISOString(),
    runs,
    nodeFloor,
    mountDirect: summarize('mount -i (no fusegate)', samples.direct),
    helperFloor,
    helperKernel,
    ratioToNode: helperKernel.p50 / nodeFloor.p50,
    floorRatioToNode: helperFloor.p50 / nodeFloor.p50,
    overheadMs: helperKernel.p50 - nodeFloor.p50,
    phases: [...phaseSamples].map(([phase, v]) => ({ phase, ms: median(v) })),
  };
}

export function startupTable(r: StartupResult): string {
  const rows = [r.nodeFloor, r.mountDirect, r.helperFloor, r.helperKernel].map(
    (s) => `| ${s.name} | ${fmt(s.p50)} | ${fmt(s.p95)} | ${(s.p50 / r.nodeFloor.p50).toFixed(2)}× |`,
  );
  const phases = r.phases.map((p) => `${p.phase} +${p.ms.toFixed(2)}`).join(', ');
  return [
    '| command | p50 ms | p95 ms | p50 / node -e 0 |',
    '|---|---|---|---|',
    ...rows,
    '',
    `helper phases (median ms, each since the one before; 'start' since the process began): ${phases}`,
  ].join('\n');
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const runs = Number(args[args.indexOf('--runs') + 1]) || 25;
  const r = measureHelperStartup(args.includes('--runs') ? runs : 25);
  process.stdout.write(startupTable(r) + '\n');
  process.stdout.write(`goal: helper kernel path <= 1.25x node -e 0; measured ${r.ratioToNode.toFixed(2)}x over ${r.runs} runs (${r.overheadMs.toFixed(1)} ms over node -e 0; a helper with no logic at all: ${r.floorRatioToNode.toFixed(2)}x)\n`);
  const json = args.indexOf('--json');
  if (json >= 0) fs.writeFileSync(args[json + 1]!, JSON.stringify(r, null, 2));
}
