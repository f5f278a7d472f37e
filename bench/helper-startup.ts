/**
 * Mount latency of the helper's kernel path against the floor of any Node
 * process (`node -e 0`) and against mount(8) alone, interleaved on the same
 * machine so noise hits all three alike. Reports; never fails on a number.
 *
 *   node dist/bench/helper-startup.js [--runs N] [--json FILE]
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fmt, summarize, timeCommand, type Summary } from './stats';

const ROOT = path.resolve(__dirname, '..', '..');
const HELPER = path.join(ROOT, 'dist', 'helper', 'mount.fusegate.js');

export interface StartupResult {
  date: string;
  runs: number;
  nodeFloor: Summary;
  mountDirect: Summary;
  helperKernel: Summary;
  ratioToNode: number;
}

export function measureHelperStartup(runs: number): StartupResult {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-bench-'));
  const img = path.join(dir, 'ext4.img');
  const mnt = path.join(dir, 'mnt');
  fs.mkdirSync(mnt);
  fs.writeFileSync(img, '');
  fs.truncateSync(img, 32 << 20);
  execFileSync('mkfs.ext4', ['-q', '-F', img]);
  const loop = execFileSync('losetup', ['--find', '--show', img], { encoding: 'utf8' }).trim();
  const policy = path.join(dir, 'policy.yaml');
  fs.writeFileSync(policy, 'version: 1\nrules:\n  - name: bench-loop\n    match: { loop: true }\n    action: kernel\n');
  // NODE_EXTRA_CA_CERTS (set in this machine's login environment) adds ~50 ms
  // to every Node start; the helper's shebang drops it, so the floor must too.
  const clean = { ...process.env };
  delete clean.NODE_EXTRA_CA_CERTS;
  delete clean.NODE_OPTIONS;
  const env = { ...clean, FUSEGATE_POLICY: policy, FUSEGATE_FSTAB: '/dev/null' };
  const umount = () => execFileSync('umount', [mnt]);
  const samples = { node: [] as number[], direct: [] as number[], helper: [] as number[] };
  try {
    // One warm-up of each (page cache, policy cache), then interleaved runs.
    // Run as mount(8) runs it: exec the file, so its #! line applies.
    timeCommand(HELPER, [loop, mnt], { env });
    umount();
    for (let i = 0; i < runs; i++) {
      samples.node.push(timeCommand(process.execPath, ['-e', '0'], { env: clean }));
      samples.direct.push(timeCommand('mount', ['-i', '-t', 'ext4', loop, mnt]));
      umount();
      samples.helper.push(timeCommand(HELPER, [loop, mnt], { env }));
      umount();
    }
  } finally {
    try {
      execFileSync('umount', [mnt], { stdio: 'ignore' });
    } catch {
      // not mounted
    }
    execFileSync('losetup', ['-d', loop]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const nodeFloor = summarize('node -e 0', samples.node);
  const helperKernel = summarize('mount.fusegate, kernel path', samples.helper);
  return {
    date: new Date().toISOString(),
    runs,
    nodeFloor,
    mountDirect: summarize('mount -i (no fusegate)', samples.direct),
    helperKernel,
    ratioToNode: helperKernel.p50 / nodeFloor.p50,
  };
}

export function startupTable(r: StartupResult): string {
  const rows = [r.nodeFloor, r.mountDirect, r.helperKernel].map(
    (s) => `| ${s.name} | ${fmt(s.p50)} | ${fmt(s.p95)} | ${(s.p50 / r.nodeFloor.p50).toFixed(2)}× |`,
  );
  return ['| command | p50 ms | p95 ms | p50 / node -e 0 |', '|---|---|---|---|', ...rows].join('\n');
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const runs = Number(args[args.indexOf('--runs') + 1]) || 25;
  const r = measureHelperStartup(args.includes('--runs') ? runs : 25);
  process.stdout.write(startupTable(r) + '\n');
  process.stdout.write(`goal: helper kernel path <= 1.25x node -e 0; measured ${r.ratioToNode.toFixed(2)}x over ${r.runs} runs\n`);
  const json = args.indexOf('--json');
  if (json >= 0) fs.writeFileSync(args[json + 1]!, JSON.stringify(r, null, 2));
}
