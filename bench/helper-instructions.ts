/**
 * The helper's kernel-path start-up in instructions, not milliseconds: each
 * command runs under callgrind (valgrind), which counts the instructions a
 * process executes whatever else the machine is doing, so two builds can be
 * compared on a loaded machine where wall-clock times vary by 3×. Compared
 * against `node -e 0` measured in the same run, and, with --against, against
 * another built checkout (a previous release) on the same loop device.
 *
 * V8 seeds its hash tables with a randomly searched prime at start-up
 * (HashSeed::InitializeRoots, 6-9 million instructions that vary from run to
 * run); that function's share is left out of every count. Kernel time (the
 * mount itself, reads of /proc and /sys) is not counted: this says how much
 * work the helper's code does, bench/helper-startup how long a mount takes.
 *
 *   node dist/bench/helper-instructions.js [--runs N] [--against DIR]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { withKernelPathScratch } from './kernel-path-scratch';
import { median } from './stats';

const ROOT = path.resolve(__dirname, '..', '..');

/** Instructions of one command under callgrind, without V8's hash-seed search. */
function instructions(argv: string[], env: NodeJS.ProcessEnv, out: string): number {
  const r = spawnSync('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}`, ...argv], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} under callgrind: exit ${r.status}: ${r.stderr.slice(-500)}`);
  const annotate = (inclusive: boolean) =>
    execFileSync('callgrind_annotate', [`--inclusive=${inclusive ? 'yes' : 'no'}`, out], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const count = (line: string | undefined) => Number((line ?? '0').trim().split(/\s+/)[0]!.replace(/,/g, ''));
  const total = count(annotate(false).split('\n').find((l) => l.includes('PROGRAM TOTALS')));
  const seed = count(annotate(true).split('\n').find((l) => l.includes('HashSeed::InitializeRoots')));
  return total - seed;
}

export interface InstructionResult {
  runs: number;
  node: number;
  helpers: Array<{ tree: string; instructions: number; overNode: number }>;
}

export function measureHelperInstructions(runs: number, trees: string[]): InstructionResult {
  const counts = new Map<string, number[]>([['node', []], ...trees.map((t): [string, number[]] => [t, []])]);
  withKernelPathScratch(({ dir, loop, mnt, clean, writePolicy }) => {
    const out = path.join(dir, 'callgrind.out');
    // One policy file per tree: the validated-policy cache keys on the file, and
    // each build stamps its entries, so two trees sharing one file would miss every time.
    const policies = new Map(trees.map((t, i) => [t, writePolicy(`policy-${i}`)]));
    const mountWith = (tree: string, counted: boolean) => {
      const env = { ...clean, FUSEGATE_POLICY: policies.get(tree)!, FUSEGATE_FSTAB: '/dev/null' };
      const helper = path.join(tree, 'dist', 'helper', 'mount.fusegate.js');
      if (counted) counts.get(tree)!.push(instructions([process.execPath, helper, loop, mnt], env, out));
      else execFileSync(helper, [loop, mnt], { env });
      execFileSync('umount', [mnt]);
    };
    for (const t of trees) mountWith(t, false); // fills the policy cache
    for (let i = 0; i < runs; i++) {
      counts.get('node')!.push(instructions([process.execPath, '-e', '0'], clean, out));
      for (const t of trees) mountWith(t, true);
    }
  });
  const node = median(counts.get('node')!);
  return {
    runs,
    node,
    helpers: trees.map((tree) => {
      const n = median(counts.get(tree)!);
      return { tree, instructions: n, overNode: n - node };
    }),
  };
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const runs = args.includes('--runs') ? Number(args[args.indexOf('--runs') + 1]) || 3 : 3;
  const trees = [ROOT, ...(args.includes('--against') ? [path.resolve(args[args.indexOf('--against') + 1]!)] : [])];
  const r = measureHelperInstructions(runs, trees);
  const m = (n: number) => `${(n / 1e6).toFixed(1)} M`;
  const base = r.helpers[1];
  process.stdout.write(['| command | instructions (median of ' + r.runs + ') | over node -e 0 |' + (base ? ' helper part / --against\'s |' : ''),
    '|---|---|---|' + (base ? '---|' : ''),
    `| node -e 0 | ${m(r.node)} | | ${base ? ' |' : ''}`,
    ...r.helpers.map((h) => `| mount.fusegate kernel path (${h.tree}) | ${m(h.instructions)} | ${m(h.overNode)} |${base ? ` ${(h.overNode / base.overNode).toFixed(2)}× |` : ''}`),
  ].join('\n') + '\n');
}
