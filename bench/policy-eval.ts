/**
 * Policy benchmark (not a test: numbers depend on the machine).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/policy-eval.js [IMAGE]
 *
 * 1. decide() over a 1,000-rule policy where the request matches only the
 *    last rule, so every rule is evaluated: median time per evaluation.
 * 2. What loading the policy and gathering facts adds to a mount: fresh
 *    `node` processes time require + loadPolicy + gatherFacts + decide from
 *    inside (so Node's own start-up is excluded), with the compiled-policy
 *    cache warm (the normal case) and cold (first mount after boot or edit).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decide } from '../policy/decide';
import { parsePolicy } from '../policy/load';
import { syntheticFacts } from '../policy/synthetic';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** 1,000 distinct rules using a mix of keys; only the last matches the request below. */
export function thousandRules(): string {
  const lines = ['version: 1', 'rules:'];
  for (let i = 0; i < 999; i++) {
    switch (i % 5) {
      case 0: lines.push(`  - name: r${i}`, '    match:', `      label: ["STICK-${i}*"]`, '      bus: usb', '    action: fuse'); break;
      case 1: lines.push(`  - name: r${i}`, '    match:', `      uuid: ["${i.toString(16).padStart(8, '0')}-*"]`, '    action: deny', '    reason: blocked'); break;
      case 2: lines.push(`  - name: r${i}`, '    match:', `      - { user: [${10000 + i}], kind: image }`, `      - { group: [g${i}], removable: true }`, '    action: fuse'); break;
      case 3: lines.push(`  - name: r${i}`, '    match:', `      mountpoint: /srv/m${i}/*`, '      type: [ext4, vfat]', '    unless: { options: [suid] }', '    action: fuse'); break;
      case 4: lines.push(`  - name: r${i}`, '    match:', `      source: /dev/disk/by-id/usb-${i}*`, '    action: fuse', `    force_options: [nosuid, nodev, noexec]`); break;
    }
  }
  lines.push('  - name: last', '    match: { bus: usb }', '    action: fuse');
  return lines.join('\n') + '\n';
}

function evalBench(): void {
  const text = thousandRules();
  const t0 = now();
  const policy = parsePolicy(text, '(1,000 generated rules)');
  const parseMs = now() - t0;
  const facts = syntheticFacts({ bus: 'usb', removable: true, label: 'MYSTICK', uuid: 'abcd-ef01', options: ['rw', 'uhelper=udisks2'], mountpoint: '/media/alice/MYSTICK' });
  for (const trace of [true, false]) {
    for (let i = 0; i < 200; i++) decide(policy, facts, { trace });
    const times: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const t = now();
      const d = decide(policy, facts, { trace });
      times.push(now() - t);
      if (d.rule !== 'last') throw new Error(`expected rule 'last', got ${d.rule}`);
    }
    console.log(`decide, 1,000 rules, trace ${trace ? 'on ' : 'off'}: median ${(median(times) * 1000).toFixed(0)} µs, p95 ${(times.sort((a, b) => a - b)[1900]! * 1000).toFixed(0)} µs`);
  }
  console.log(`parse + validate 1,000 rules (yaml + shadow check, cold): ${parseMs.toFixed(1)} ms`);
}

function startupBench(image: string): void {
  const dist = path.resolve(__dirname, '..');
  // Run from the repository root; the YAML is not copied into dist/.
  const defaultPolicy = path.resolve('policy', 'default-policy.yaml');
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-bench-cache-'));
  fs.chmodSync(cacheDir, 0o700);
  const script = `
    const t0 = process.hrtime.bigint();
    const { loadPolicy } = require(${JSON.stringify(path.join(dist, 'policy', 'load.js'))});
    const { gatherFacts } = require(${JSON.stringify(path.join(dist, 'policy', 'facts.js'))});
    const { decide } = require(${JSON.stringify(path.join(dist, 'policy', 'decide.js'))});
    const t1 = process.hrtime.bigint();
    const policy = loadPolicy(${JSON.stringify(defaultPolicy)}, { cacheDir: process.argv[1] === 'cold' ? null : ${JSON.stringify(cacheDir)} });
    const t2 = process.hrtime.bigint();
    // 'exec' runs blkid(8) as before libblkid moved into the addon, for comparison.
    const env = process.argv[1] === 'exec' ? { blkid: '/usr/sbin/blkid' } : {};
    const facts = gatherFacts({ source: ${JSON.stringify(image)}, mountpoint: '/mnt', options: ['rw'], caller: { uid: 0, gid: 0, groups: [] } }, env);
    const t3 = process.hrtime.bigint();
    const d = decide(policy, facts);
    const t4 = process.hrtime.bigint();
    console.log(JSON.stringify([t1 - t0, t2 - t1, t3 - t2, t4 - t3].map((x) => Number(x) / 1e6).concat([d.action])));
  `;
  try {
    for (const mode of ['warm', 'exec', 'cold']) {
      const runs: number[][] = [];
      for (let i = 0; i < 15; i++) {
        const out = execFileSync(process.execPath, ['-e', script, mode], { encoding: 'utf8' });
        runs.push(JSON.parse(out) as number[]);
      }
      const col = (i: number): string => median(runs.slice(1).map((r) => r[i]!)).toFixed(1);
      const total = median(runs.slice(1).map((r) => r[0]! + r[1]! + r[2]! + r[3]!));
      const label = { warm: 'cache warm, libblkid in-process (what the helper does)', exec: 'cache warm, blkid -p as a child process', cold: 'cache cold (yaml parse), libblkid' }[mode];
      console.log(`mount-path cost, ${label}: total ${total.toFixed(1)} ms (require ${col(0)}, loadPolicy ${col(1)}, gatherFacts ${col(2)}, decide ${col(3)}) median of 14`);
    }
  } finally {
    fs.rmSync(cacheDir, { recursive: true, force: true });
  }
}

function main(): void {
  evalBench();
  let image = process.argv[2];
  let made: string | null = null;
  if (image === undefined) {
    made = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-bench-img-'));
    image = path.join(made, 'fat.img');
    fs.writeFileSync(image, Buffer.alloc(0));
    fs.truncateSync(image, 8 << 20);
    execFileSync('mkfs.vfat', ['-n', 'BENCH', image], { stdio: 'ignore' });
  }
  try {
    startupBench(image);
  } finally {
    if (made !== null) fs.rmSync(made, { recursive: true, force: true });
  }
}

if (require.main === module) main();
