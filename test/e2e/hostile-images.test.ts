/**
 * Hostile images: for every filesystem type fusegate sandboxes here, valid
 * images corrupted deterministically from 20 seeds (bytes flipped and
 * randomised in the superblock / boot sector and in the inode tables, FATs,
 * directories, MFT, squashfs tables, ISO 9660 volume descriptors, path
 * tables and Rock Ridge / Joliet directory records; see images.ts corrupt()), each
 * mounted as a user would (`mount /dev/loopN /mnt/hostile`), listed and read
 * if it mounts, then unmounted.
 *
 * The FUSE server may refuse or crash; what must hold every time:
 * - mount(8) exits 0 or 32, within the helper's timeout;
 * - a mount, if made, is a FUSE mount (never a kernel driver);
 * - afterwards nothing is mounted and no service instance is left;
 * - the host kernel logged no oops, BUG, WARNING or call trace, and no
 *   kernel filesystem driver ever spoke about our devices.
 *
 * One container serves the whole run; one loop device per type is reused,
 * its backing file rewritten in place between attempts (and the device's
 * page cache dropped), since loop devices must exist before the container
 * boots. FUSEGATE_HOSTILE_SEEDS overrides the number of seeds.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { type LoopDevice, attachLoop, e2eLog, e2eSkip } from './harness';
import { runOk } from './host';
import { type Corruption, type ImageType, IMAGE_TYPES, type Layout, corrupt, layoutOf, makeImage, overwriteInPlace, sampleFiles } from './images';
import {
  KERNEL_TROUBLE,
  type JournalEntry,
  findmnt,
  journalCursor,
  journalSince,
  kernelLinesSince,
  kernelLogMark,
  listUnits,
  waitForNoUnits,
} from './scenario';
import { containerSuite, releaseHostSetup } from './suite';

const REPO = resolve(__dirname, '../..');
const SEEDS = Number(process.env.FUSEGATE_HOSTILE_SEEDS ?? 20);
const MNT = '/mnt/hostile';
/** The helper's own limit for one mount, in seconds (FUSEGATE_TIMEOUT). */
const HELPER_TIMEOUT_S = 10;
/** Where images of failed attempts are kept for reproduction. */
const KEEP_DIR = process.env.FUSEGATE_HOSTILE_KEEP ?? join(tmpdir(), 'fusegate-hostile-failures');

const BACKEND: Record<ImageType, string> = {
  ext4: 'fuse2fs',
  vfat: 'fusegate-vfat',
  exfat: 'exfat-fuse',
  ntfs: 'ntfs-3g',
  squashfs: 'squashfuse',
  iso9660: 'fuseiso',
};
/** Extra mount(8) arguments per type: none, every type is intercepted by the default policy (squashfs and iso9660 since issue 18). */
const MOUNT_ARGS: Record<ImageType, string[]> = { ext4: [], vfat: [], exfat: [], ntfs: [], squashfs: [], iso9660: [] };

type Outcome =
  | 'refused by mount(8)'
  | 'refused by policy'
  | 'server refused'
  | 'server crashed at mount'
  | 'mounted'
  | 'mounted, read errors'
  | 'mounted, reads cut off'
  | 'mounted, server crashed';

interface Attempt {
  type: ImageType;
  seed: number;
  corruption: Corruption;
  code: number | null;
  ms: number;
  /** reading (and unmounting) the mount, and waiting until everything was gone */
  readMs: number;
  cleanMs: number;
  /** lines the server (and adapter) wrote to the journal */
  serverLines: number;
  outcome: Outcome;
  fstype: string | null;
  serverExit: string | null;
  why: string;
  problems: string[];
}

describe.skipIf(e2eSkip())('hostile images: the FUSE server may fail, the kernel never does', () => {
  let scratch = '';
  const loops = new Map<ImageType, LoopDevice>();
  const bases = new Map<ImageType, Array<{ image: Buffer; layout: Layout }>>();
  const work = (t: ImageType) => join(scratch, `work-${t}.img`);
  const attempts: Attempt[] = [];
  let kernelMark = 0;
  let t0 = 0;

  beforeAll(async () => {
    t0 = Date.now();
    scratch = mkdtempSync(join(tmpdir(), 'fusegate-e2e-hostile-'));
    for (const type of IMAGE_TYPES) {
      const variants: Array<{ image: Buffer; layout: Layout }> = [];
      // ext4: with and without metadata_csum; squashfs: compressed and not.
      for (const plain of type === 'ext4' || type === 'squashfs' ? [false, true] : [false]) {
        const p = join(scratch, `base-${type}${plain ? '-plain' : ''}.img`);
        await makeImage(type, p, { scratch, plain, label: 'HOSTILE', sizeMiB: 16 });
        variants.push({ image: readFileSync(p), layout: await layoutOf(type, p) });
      }
      // All variants of one type must fit the same loop device.
      const size = Math.max(...variants.map((v) => v.image.length));
      for (const v of variants) if (v.image.length < size) v.image = Buffer.concat([v.image, Buffer.alloc(size - v.image.length)]);
      bases.set(type, variants);
      writeFileSync(work(type), variants[0]!.image);
      loops.set(type, await attachLoop(work(type)));
    }
    e2eLog(`hostile: base images and loop devices ready in ${Date.now() - t0} ms`);
  });
  releaseHostSetup(() => ({ suite: e2e, loops: loops.values(), scratch }));

  const e2e = containerSuite(() => ({ projectDir: REPO, devices: [...loops.values()].map((l) => l.path) }));

  beforeAll(async () => {
    // --take-over=ntfs: ntfs-3g's own mount.ntfs would otherwise serve plain `mount` unsandboxed.
    await e2e.container.install({ args: ['--take-over=ntfs'] });
    await e2e.container.execOk(['mkdir', '-p', MNT]);
    kernelMark = await kernelLogMark();
  });

  async function attempt(type: ImageType, seed: number): Promise<Attempt> {
    const c = e2e.container;
    const loop = loops.get(type)!;
    const variants = bases.get(type)!;
    const base = variants[Math.floor(seed / 4) % variants.length]!;
    const { image, corruption } = corrupt(base.image, base.layout, seed);
    overwriteInPlace(work(type), image);
    // Drop what the kernel cached of the previous image.
    await runOk(['blockdev', '--flushbufs', loop.path]);
    const backend = BACKEND[type];
    const problems: string[] = [];
    const cursor = await journalCursor(c);

    const started = Date.now();
    const m = await c.exec(['mount', ...MOUNT_ARGS[type], loop.path, MNT], {
      env: { FUSEGATE_TIMEOUT: String(HELPER_TIMEOUT_S) },
      timeoutMs: (HELPER_TIMEOUT_S + 20) * 1000,
    });
    const ms = Date.now() - started;
    if (m.timedOut) problems.push(`mount hung (killed after ${ms} ms)`);
    else if (m.code !== 0 && m.code !== 32) problems.push(`mount exited ${m.code} (signal ${m.signal})`);
    if (ms > (HELPER_TIMEOUT_S + 3) * 1000) problems.push(`mount took ${ms} ms, more than the helper's ${HELPER_TIMEOUT_S} s`);

    let fstype: string | null = null;
    let readErrors = false;
    let readKilled = false;
    const tRead = Date.now();
    const row = await findmnt(c, MNT);
    if (row) {
      fstype = row.fstype;
      if (!/^fuse(blk)?\./.test(row.fstype)) problems.push(`mounted with a kernel driver: ${row.fstype}`);
      if (m.code !== 0) problems.push(`mount exited ${m.code} but left a mount`);
      const r = await c.exec(
        [
          'sh',
          '-c',
          // A corrupted directory can be endless (a cycle in the FAT): reading is cut off, by SIGKILL,
          // which a process waiting on a FUSE request must still obey.
          `timeout -s KILL 5 ls -lR ${MNT} >/dev/null 2>&1; echo ls=$?; ` +
            `timeout -s KILL 5 find ${MNT} -type f -exec head -c 262144 {} + >/dev/null 2>&1; echo read=$?`,
        ],
        { timeoutMs: 60_000 },
      );
      if (r.timedOut) problems.push('reading the mount hung');
      readErrors = !/^ls=0$/m.test(r.stdout) || !/^read=0$/m.test(r.stdout);
      readKilled = /^(ls|read)=137$/m.test(r.stdout);
      const u = await c.exec(['umount', MNT]);
      if (u.code !== 0) {
        problems.push(`umount failed: ${u.stderr.trim()}`);
        await c.exec(['umount', '-l', MNT]);
      }
    }
    const readMs = Date.now() - tRead;
    const tClean = Date.now();
    if (await findmnt(c, MNT)) problems.push('a stale mount is left');
    const elsewhere = await c.exec(['findmnt', '--noheadings', '--source', loop.path]);
    if (elsewhere.stdout.trim() !== '') problems.push(`the device is still mounted: ${elsewhere.stdout.trim()}`);
    const left = await waitForNoUnits(c, `${backend}@*`, 10_000);
    if (left.length > 0) {
      problems.push(`instance left after umount: ${left.map((u) => `${u.unit} ${u.active}/${u.sub}`).join(', ')}`);
      for (const u of left) await c.exec(['systemctl', 'kill', '--signal=KILL', u.unit]);
      await waitForNoUnits(c, `${backend}@*`, 10_000);
    }

    // The preflight's checker instance (vfat, exfat, ntfs are checked before their read-write mount) must be gone too.
    const checkers = await waitForNoUnits(c, 'fusegate-check@*', 10_000);
    if (checkers.length > 0) problems.push(`checker instance left: ${checkers.map((u) => `${u.unit} ${u.active}/${u.sub}`).join(', ')}`);

    const cleanMs = Date.now() - tClean;
    // What the journal says happened: the helper's decision, the server's exit.
    // Only the fields needed: a hostile image can make a server log a lot.
    const entries = await journalSince(c, cursor, [], {
      fields: ['MESSAGE', 'SYSLOG_IDENTIFIER', 'UNIT', 'FUSEGATE_DECISION', 'FUSEGATE_RULE', 'FUSEGATE_FSTYPE'],
    });
    const serverLines = entries.filter((e) => e.SYSLOG_IDENTIFIER === `fusegate-${backend}`).length;
    const decision = entries.find((e) => e.SYSLOG_IDENTIFIER === 'fusegate' && e.MESSAGE?.startsWith('decision:'));
    const serverExit = exitOf(entries, backend);
    const crashed = serverExit !== null && /code=(killed|dumped)/.test(serverExit);
    // The server's own words (its stderr, under the unit's identifier), not the adapter's launch line.
    const serverSaid = entries.filter(
      (e) => e.SYSLOG_IDENTIFIER === `fusegate-${backend}` && !/^fusegate-\S+\[\d+\]: mounted /.test(e.MESSAGE ?? ''),
    );
    let outcome: Outcome;
    if (row) outcome = crashed ? 'mounted, server crashed' : readKilled ? 'mounted, reads cut off' : readErrors ? 'mounted, read errors' : 'mounted';
    else if (!decision) outcome = 'refused by mount(8)';
    else if (decision.FUSEGATE_DECISION === 'deny') outcome = 'refused by policy';
    else outcome = crashed ? 'server crashed at mount' : 'server refused';
    const why =
      outcome === 'refused by mount(8)'
        ? lastLine(m.stderr)
        : outcome === 'refused by policy'
          ? `${decision!.FUSEGATE_RULE}: type ${decision!.FUSEGATE_FSTYPE ?? 'unknown'}`
          : lastLine(serverSaid.map((e) => e.MESSAGE ?? '').join('\n')) || lastLine(m.stderr);
    if (decision?.FUSEGATE_DECISION === 'kernel') problems.push('the policy gave a hostile image to the kernel');

    const a: Attempt = { type, seed, corruption, code: m.code, ms, readMs, cleanMs, serverLines, outcome, fstype, serverExit, why, problems };
    if (problems.length > 0) keepForReproduction(a, image);
    return a;
  }

  function keepForReproduction(a: Attempt, image: Buffer): void {
    try {
      mkdirSync(KEEP_DIR, { recursive: true });
      const base = join(KEEP_DIR, `${a.type}-seed${a.seed}`);
      writeFileSync(`${base}.img`, image);
      writeFileSync(`${base}.json`, JSON.stringify(a, null, 2));
      a.problems.push(`image kept at ${base}.img`);
    } catch {
      /* best effort */
    }
  }

  // The control: without it, a backend that never mounts anything would pass every hostile run.
  // (exfat-fuse and ntfs-3g need the preload's answers for the DynamicUser's name and for
  // ntfs-3g's no-op setresuid; this is what proves them.)
  for (const type of IMAGE_TYPES) {
    it(`${type}: the uncorrupted image mounts through the sandboxed ${BACKEND[type]} and reads back intact`, async () => {
      const c = e2e.container;
      const loop = loops.get(type)!;
      overwriteInPlace(work(type), bases.get(type)![0]!.image);
      await runOk(['blockdev', '--flushbufs', loop.path]);
      const cursor = await journalCursor(c);
      const m = await c.exec(['mount', ...MOUNT_ARGS[type], loop.path, MNT]);
      if (m.code !== 0) {
        const said = (await journalSince(c, cursor))
          .filter((e) => e.SYSLOG_IDENTIFIER === `fusegate-${BACKEND[type]}` || e.UNIT?.startsWith(`${BACKEND[type]}@`))
          .map((e) => e.MESSAGE);
        expect.fail(`mount exited ${m.code}: ${m.stderr.trim()}\nservice log:\n${said.join('\n')}`);
      }
      try {
        expect((await findmnt(c, MNT))!.fstype).toMatch(new RegExp(`^fuse(blk)?\\.${BACKEND[type]}$`));
        for (const [rel, data] of sampleFiles()) {
          const r = await c.execOk(['sha256sum', `${MNT}/${rel}`]);
          expect(r.stdout.split(' ')[0], rel).toBe(createHash('sha256').update(data).digest('hex'));
        }
      } finally {
        await c.exec(['umount', MNT]);
      }
      expect(await waitForNoUnits(c, `${BACKEND[type]}@*`)).toEqual([]);
    });
  }

  for (const type of IMAGE_TYPES) {
    it(`${type}: ${SEEDS} corrupted images are refused or served by the sandbox, and always cleaned up`, async () => {
      const mine: Attempt[] = [];
      const started = Date.now();
      for (let seed = 0; seed < SEEDS; seed++) mine.push(await attempt(type, seed));
      attempts.push(...mine);
      const counts = new Map<string, number>();
      for (const a of mine) counts.set(a.outcome, (counts.get(a.outcome) ?? 0) + 1);
      e2eLog(
        `hostile ${type} (${BACKEND[type]}): ${mine.length} images in ${Date.now() - started} ms: ` +
          [...counts].map(([k, n]) => `${n} ${k}`).join(', '),
      );
      for (const a of mine) {
        e2eLog(
          `  seed ${String(a.seed).padStart(2)} ${a.corruption.strategy.padEnd(15)} ${a.corruption.resealed ? 'resealed' : '        '} ` +
            `${String(a.corruption.changes.length).padStart(3)} bytes  exit ${a.code}  mount ${String(a.ms).padStart(5)} ms` +
            `  read ${String(a.readMs).padStart(5)} ms  cleanup ${String(a.cleanMs).padStart(5)} ms  log ${String(a.serverLines).padStart(4)}  ${a.outcome}` +
            `${a.serverExit ? ` [${a.serverExit}]` : ''}${a.why ? `: ${a.why.slice(0, 140)}` : ''}`,
        );
      }
      expect(mine.filter((a) => a.problems.length > 0).map((a) => `seed ${a.seed}: ${a.problems.join('; ')}`)).toEqual([]);
      expect(await listUnits(e2e.container, '*@*-*-*.service')).toEqual([]);
    }, 15 * 60_000);
  }

  it('the host kernel logged no oops, BUG, WARNING or call trace, and no kernel filesystem driver touched the images', async () => {
    expect(attempts.length).toBe(IMAGE_TYPES.length * SEEDS);
    const lines = await kernelLinesSince(kernelMark);
    expect(lines.filter((l) => KERNEL_TROUBLE.test(l.text)).map((l) => l.text)).toEqual([]);
    // Any kernel message naming one of our devices, other than the loop driver's own, means a kernel driver parsed it.
    const names = [...loops.values()].map((l) => l.path.slice('/dev/'.length));
    const about = lines.filter((l) => names.some((n) => new RegExp(`\\b${n}\\b`).test(l.text)) && !/^loop\d+: detected capacity change/.test(l.text));
    expect(about.map((l) => l.text)).toEqual([]);
    e2eLog(`hostile: ${attempts.length} images, ${lines.length} new kernel log lines, none about our devices; total ${Date.now() - t0} ms`);
  });
});

/** "code=killed, status=11/SEGV" from systemd's message about the backend's instance, if it ended. */
function exitOf(entries: JournalEntry[], backend: string): string | null {
  for (const e of entries) {
    if (!e.UNIT?.startsWith(`${backend}@`) && !e.MESSAGE?.startsWith(`${backend}@`)) continue;
    const m = /Main process exited, (code=\w+, status=\S+)/.exec(e.MESSAGE ?? '');
    if (m) return m[1]!;
  }
  return null;
}

function lastLine(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '')
      .pop() ?? ''
  );
}
