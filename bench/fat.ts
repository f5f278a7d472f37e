/**
 * The FAT section of the benchmark (issue 14): fusegate's own FAT server
 * (fusegate-vfat, TypeScript, in-process in its sandboxed unit) against C
 * peers measured in the same run, on the same machine, through the same
 * helper and sandbox:
 *
 * - sequential write and read of one large file: fusegate-vfat on a FAT32
 *   image against exfat-fuse on an exFAT image of the same size;
 * - 5,000 small files: created through fusegate-vfat (read-write), then
 *   stat and read on the same image read-only through fusefat and through
 *   fusegate-vfat (fusefat is the read-only fallback);
 * - memory of the mount's unit (cgroup memory.current, server RSS/USS)
 *   after that read workload, fusegate-vfat against fusefat.
 *
 * Every number is a ratio against its peer from the same run.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Container, LoopDevice } from '../test/e2e/harness';
import { median } from './stats';

export interface FatLoops {
  vfat: LoopDevice;
  exfat: LoopDevice;
}

type Inside = <T>(op: string, args: unknown) => Promise<T>;

/** Policies the helper is pointed at per mount (FUSEGATE_POLICY): the backend is the variable. */
function policy(backends: string): string {
  return `version: 1
defaults:
  action: deny
  reason: only the benchmark's loop devices are mounted here
  force_options: [nosuid, nodev]
rules:
  - name: bench-fat
    match: { loop: true }
    action: fuse
    backends: { ${backends} }
`;
}

const POLICIES = {
  '/etc/fusegate/bench-fusegate-vfat.yaml': policy('vfat: [fusegate-vfat], exfat: [exfat-fuse]'),
  '/etc/fusegate/bench-fusefat.yaml': policy('vfat: [fusefat]'),
};

/** Image size for the section: room for the large file and the small ones. */
export function fatImageMiB(dataMiB: number): number {
  return Math.max(64, dataMiB * 2 + 64);
}

export function makeFatImages(scratch: string, sizeMiB: number): { vfat: string; exfat: string } {
  const vfat = path.join(scratch, 'fat32.img');
  const exfat = path.join(scratch, 'exfat.img');
  for (const f of [vfat, exfat]) {
    fs.writeFileSync(f, '');
    fs.truncateSync(f, sizeMiB * 2 ** 20);
  }
  execFileSync('mkfs.vfat', ['-F', '32', '-n', 'FGBENCH', vfat], { stdio: 'pipe' });
  execFileSync('mkfs.exfat', ['-L', 'FGBENCH', exfat], { stdio: 'pipe' });
  return { vfat, exfat };
}

export async function fatSection(
  inside: Inside,
  c: Container,
  p: { dataMiB: number; smallFiles: number; smallFileBytes: number; rounds: number },
  loops: FatLoops,
  dropCaches: () => void,
  log: (m: string) => void,
) {
  for (const [file, text] of Object.entries(POLICIES)) {
    await c.execOk(['sh', '-c', `cat > ${file}`], { input: text });
    await c.execOk(['fusegate', 'policy', 'check', file]);
  }
  const VFAT = '/etc/fusegate/bench-fusegate-vfat.yaml';
  const FUSEFAT = '/etc/fusegate/bench-fusefat.yaml';
  const mnt = '/mnt/fgbench/fat';
  const s: Record<string, number[]> = {};
  const add = (k: string, v: number) => (s[k] ??= []).push(v);
  const mounts: Record<string, string | null> = {};
  const memory: Record<string, unknown> = {};

  for (let r = 0; r < p.rounds; r++) {
    // sequential, against exfat-fuse on an image of the same size; the order alternates per round
    const seq: Array<['fusegate-vfat' | 'exfat-fuse', LoopDevice]> = [['fusegate-vfat', loops.vfat], ['exfat-fuse', loops.exfat]];
    for (const [backend, loop] of r % 2 ? seq.reverse() : seq) {
      log(`fat: round ${r + 1}/${p.rounds}, sequential ${p.dataMiB} MiB through ${backend}`);
      mounts[backend] = (await inside<{ fsType: string }>('fatMount', { loop: loop.path, mnt, policy: VFAT })).fsType;
      try {
        dropCaches();
        add(`${backend} seqWriteMiBs`, (await inside<{ mibPerS: number }>('seqwrite', { file: `${mnt}/big.dat`, mib: p.dataMiB })).mibPerS);
        dropCaches();
        add(`${backend} seqReadMiBs`, (await inside<{ mibPerS: number }>('seqread', { file: `${mnt}/big.dat` })).mibPerS);
        await inside('remove', { path: `${mnt}/big.dat` });
      } finally {
        await inside('fatUmount', { mnt, backend });
      }
    }

    // small files: created read-write through fusegate-vfat, then read-only through each
    log(`fat: round ${r + 1}/${p.rounds}, ${p.smallFiles} small files`);
    await inside('fatMount', { loop: loops.vfat.path, mnt, policy: VFAT });
    try {
      dropCaches();
      add('fusegate-vfat smallCreateMs', (await inside<{ ms: number }>('smallcreate', { dir: `${mnt}/small`, files: p.smallFiles, size: p.smallFileBytes })).ms);
    } finally {
      await inside('fatUmount', { mnt, backend: 'fusegate-vfat' });
    }
    const ro: Array<['fusegate-vfat' | 'fusefat', string]> = [['fusefat', FUSEFAT], ['fusegate-vfat', VFAT]];
    for (const [backend, pol] of r % 2 ? ro.reverse() : ro) {
      const m = await inside<{ fsType: string }>('fatMount', { loop: loops.vfat.path, mnt, policy: pol, ro: true });
      mounts[`${backend} (ro)`] = m.fsType;
      try {
        dropCaches();
        add(`${backend} ro smallStatMs`, (await inside<{ ms: number }>('smallstat', { dir: `${mnt}/small`, files: p.smallFiles })).ms);
        dropCaches();
        add(`${backend} ro smallReadMs`, (await inside<{ ms: number }>('smallread', { dir: `${mnt}/small`, files: p.smallFiles })).ms);
        if (r === 0) memory[backend] = await inside('fatMemory', { backend });
      } finally {
        await inside('fatUmount', { mnt, backend });
      }
    }
    await inside('fatMount', { loop: loops.vfat.path, mnt, policy: VFAT });
    try {
      await inside('remove', { path: `${mnt}/small` });
    } finally {
      await inside('fatUmount', { mnt, backend: 'fusegate-vfat' });
    }
  }

  const med = Object.fromEntries(Object.entries(s).map(([k, v]) => [k, median(v)]));
  const ratio = (a: string, b: string) => (med[a] !== undefined && med[b] ? med[a]! / med[b]! : null);
  const memOf = (k: string) => (memory[k] as { memoryCurrentBytes: number | null; processes: Array<{ rssBytes: number | null; ussBytes: number | null }> } | undefined) ?? null;
  const v = memOf('fusegate-vfat');
  const f = memOf('fusefat');
  return {
    params: p,
    mounts,
    samples: s,
    medians: med,
    ratios: {
      seqWriteVsExfatFuse: ratio('fusegate-vfat seqWriteMiBs', 'exfat-fuse seqWriteMiBs'),
      seqReadVsExfatFuse: ratio('fusegate-vfat seqReadMiBs', 'exfat-fuse seqReadMiBs'),
      /** time ratios: > 1 means fusegate-vfat is slower */
      smallStatTimeVsFusefat: ratio('fusegate-vfat ro smallStatMs', 'fusefat ro smallStatMs'),
      smallReadTimeVsFusefat: ratio('fusegate-vfat ro smallReadMs', 'fusefat ro smallReadMs'),
      memoryCurrentVsFusefat: v?.memoryCurrentBytes && f?.memoryCurrentBytes ? v.memoryCurrentBytes / f.memoryCurrentBytes : null,
      serverRssVsFusefat: v?.processes[0]?.rssBytes && f?.processes[0]?.rssBytes ? v.processes[0].rssBytes / f.processes[0].rssBytes : null,
      serverUssVsFusefat: v?.processes[0]?.ussBytes && f?.processes[0]?.ussBytes ? v.processes[0].ussBytes / f.processes[0].ussBytes : null,
    },
    memory,
  };
}

type FatResult = Awaited<ReturnType<typeof fatSection>>;

/** The section as Markdown, appended to results.md. */
export function renderFat(r: FatResult | undefined): string {
  if (!r) return '';
  const m = r.medians;
  const n = (x: number | undefined | null, d = 1) => (x === undefined || x === null ? '–' : x.toFixed(d));
  const mib = (b: number | null | undefined) => (b ? (b / 2 ** 20).toFixed(1) : '–');
  const mem = (k: string) => r.memory[k] as { memoryCurrentBytes: number | null; processes: Array<{ comm: string; rssBytes: number | null; ussBytes: number | null }> } | undefined;
  const rows = [
    ['sequential write MiB/s', n(m['fusegate-vfat seqWriteMiBs']), n(m['exfat-fuse seqWriteMiBs']), 'exfat-fuse', n(r.ratios.seqWriteVsExfatFuse, 2)],
    ['sequential read MiB/s', n(m['fusegate-vfat seqReadMiBs']), n(m['exfat-fuse seqReadMiBs']), 'exfat-fuse', n(r.ratios.seqReadVsExfatFuse, 2)],
    [`stat ${r.params.smallFiles} files, ms (ro)`, n(m['fusegate-vfat ro smallStatMs'], 0), n(m['fusefat ro smallStatMs'], 0), 'fusefat', n(r.ratios.smallStatTimeVsFusefat, 2)],
    [`read ${r.params.smallFiles} files, ms (ro)`, n(m['fusegate-vfat ro smallReadMs'], 0), n(m['fusefat ro smallReadMs'], 0), 'fusefat', n(r.ratios.smallReadTimeVsFusefat, 2)],
    [`create ${r.params.smallFiles} files, ms (rw)`, n(m['fusegate-vfat smallCreateMs'], 0), '–', '(fusefat: read-only)', '–'],
    ['unit memory.current after the read workload, MiB', mib(mem('fusegate-vfat')?.memoryCurrentBytes), mib(mem('fusefat')?.memoryCurrentBytes), 'fusefat', n(r.ratios.memoryCurrentVsFusefat, 2)],
    ['server RSS, MiB', mib(mem('fusegate-vfat')?.processes[0]?.rssBytes), mib(mem('fusefat')?.processes[0]?.rssBytes), 'fusefat', n(r.ratios.serverRssVsFusefat, 2)],
    ['server private memory (USS), MiB', mib(mem('fusegate-vfat')?.processes[0]?.ussBytes), mib(mem('fusefat')?.processes[0]?.ussBytes), 'fusefat', n(r.ratios.serverUssVsFusefat, 2)],
  ];
  return [
    '',
    `## FAT: fusegate-vfat against C peers (${r.params.rounds} rounds, medians; ${r.params.dataMiB} MiB file, ${r.params.smallFiles} files of ${r.params.smallFileBytes} B)`,
    '',
    '| measure | fusegate-vfat | peer | peer is | ratio |',
    '|---|---|---|---|---|',
    ...rows.map((row) => `| ${row.join(' | ')} |`),
    '',
    `Mounts: ${Object.entries(r.mounts).map(([k, v]) => `${k} → ${v}`).join(', ')}. Throughput ratios > 1: fusegate-vfat faster; time and memory ratios > 1: fusegate-vfat slower or larger.`,
    '',
  ].join('\n');
}
