/**
 * What the preflight (docs/preflight.md) adds to a mount, per type, for a
 * clean and a dirty 1 GiB image: p50 of the whole mount(8) call inside the
 * e2e container's real systemd with `preflight: check` against the same
 * mount with `preflight: none`, plus the checker's own time as it reports
 * it (FUSEGATE_PREFLIGHT_MS: from the checker's start to its verdict, so
 * the rest of the difference is systemd starting fusegate-check@ and Node).
 * Reports; never fails on a number.
 *
 *   node dist/bench/preflight.js [--runs N] [--size-mib M]     (npm run build first)
 *
 * Images: each type's mkfs on a sparse file, holding the e2e sample tree;
 * dirty as test/e2e/dirty.ts makes them (as an unclean unmount leaves them).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hostVerdict, markDirty } from '../test/e2e/dirty';
import { Container, assertE2eAvailable, attachLoop, e2eLog, type LoopDevice } from '../test/e2e/harness';
import { runOk } from '../test/e2e/host';
import { makeImage } from '../test/e2e/images';
import { addToRule, journalCursor, journalSince, readPolicy, writePolicy } from '../test/e2e/scenario';
import { median } from './stats';

const TYPES = ['ext4', 'vfat', 'exfat', 'ntfs'] as const;
type Type = (typeof TYPES)[number];
const MNT = '/mnt/bench-preflight';
const REPO = path.resolve(__dirname, '..', '..');

interface Row {
  type: Type;
  state: 'clean' | 'dirty';
  noneMs: number[];
  checkMs: number[];
  checkerMs: number[];
  verdict: string;
  action: string;
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

async function main(): Promise<void> {
  assertE2eAvailable();
  const runs = arg('--runs', 7);
  const sizeMiB = arg('--size-mib', 1024);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-bench-preflight-'));
  const loops = new Map<Type, LoopDevice>();
  /** kept as sparse files (a 1 GiB image is mostly holes), copied onto the loop device's file before each mount */
  const images = new Map<string, string>();
  let c: Container | undefined;
  try {
    for (const type of TYPES) {
      const clean = path.join(scratch, `clean-${type}.img`);
      await makeImage(type, clean, { scratch, label: 'BENCH', sizeMiB });
      const dirty = path.join(scratch, `dirty-${type}.img`);
      await runOk(['cp', '--sparse=always', clean, dirty]);
      await markDirty(type, dirty);
      if ((await hostVerdict(type, dirty)) === 'clean') throw new Error(`${type}: the dirty image checks clean`);
      images.set(`${type}-clean`, clean);
      images.set(`${type}-dirty`, dirty);
      const work = path.join(scratch, `work-${type}.img`);
      await runOk(['cp', '--sparse=always', clean, work]);
      loops.set(type, await attachLoop(work));
      e2eLog(`bench preflight: ${type} images ready`);
    }
    c = await Container.boot({ log: e2eLog, projectDir: REPO, devices: [...loops.values()].map((l) => l.path) });
    await c.install({ args: ['--take-over=ntfs'] });
    await c.execOk(['mkdir', '-p', MNT]);
    const base = addToRule(await readPolicy(c), 'images-and-loop-devices', ['allow_unsafe_write: true']);
    const policies = { none: base.replace(/(- name: images-and-loop-devices[\s\S]*?)preflight: check/, '$1preflight: none'), check: base };
    const rows: Row[] = [];
    for (const type of TYPES) {
      for (const state of ['clean', 'dirty'] as const) {
        const row: Row = { type, state, noneMs: [], checkMs: [], checkerMs: [], verdict: '', action: '' };
        for (let i = 0; i < runs; i++) {
          // alternate the order, so neither mode always runs on a warm cache
          for (const mode of i % 2 === 0 ? (['none', 'check'] as const) : (['check', 'none'] as const)) {
            await writePolicy(c, policies[mode]);
            // same inode (the loop device's), content of the wanted image
            await runOk(['cp', '--sparse=always', images.get(`${type}-${state}`)!, loops.get(type)!.image], { timeoutMs: 120_000 });
            await runOk(['blockdev', '--flushbufs', loops.get(type)!.path]);
            const cursor = await journalCursor(c);
            const r = await c.execOk(['sh', '-c', `s=$(date +%s%N); mount ${loops.get(type)!.path} ${MNT}; e=$(date +%s%N); echo $(( (e - s) / 1000 ))`]);
            (mode === 'none' ? row.noneMs : row.checkMs).push(Number(r.stdout.trim()) / 1000);
            await c.execOk(['umount', MNT]);
            if (mode === 'check') {
              const e = (await journalSince(c, cursor, ['SYSLOG_IDENTIFIER=fusegate'])).find((x) => x.FUSEGATE_PREFLIGHT_MS);
              if (e) {
                row.checkerMs.push(Number(e.FUSEGATE_PREFLIGHT_MS));
                row.verdict = e.FUSEGATE_PREFLIGHT_VERDICT ?? '';
                row.action = e.FUSEGATE_PREFLIGHT_ACTION ?? '';
              }
            }
          }
        }
        rows.push(row);
        e2eLog(`bench preflight: ${type} ${state}: none p50 ${median(row.noneMs).toFixed(0)} ms, check p50 ${median(row.checkMs).toFixed(0)} ms`);
      }
    }
    const lines = [
      `| type | image | mount p50, preflight none (ms) | mount p50, preflight check (ms) | added p50 (ms) | checker's own p50 (ms) | verdict → mount |`,
      '|---|---|---|---|---|---|---|',
      ...rows.map((r) => `| ${r.type} | ${r.state} | ${median(r.noneMs).toFixed(0)} | ${median(r.checkMs).toFixed(0)} | ${(median(r.checkMs) - median(r.noneMs)).toFixed(0)} | ${median(r.checkerMs).toFixed(0)} | ${r.verdict} → ${r.action} |`),
    ];
    process.stdout.write(`${lines.join('\n')}\n\n${runs} runs each, ${sizeMiB} MiB images, ${new Date().toISOString()}\n`);
    const out = path.join(REPO, 'bench', 'out');
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(path.join(out, `preflight-${new Date().toISOString().replace(/[:.]/g, '-')}.json`), JSON.stringify({ runs, sizeMiB, rows }, null, 2));
  } finally {
    await c?.stop().catch(() => undefined);
    for (const l of loops.values()) await l.detach();
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench preflight: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
