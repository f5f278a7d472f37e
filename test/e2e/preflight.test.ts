/**
 * The preflight on a real systemd (docs/preflight.md), for ext4, vfat, exfat
 * and ntfs loop devices under the default policy (preflight: check on
 * images and loop devices):
 *
 * - a clean image is checked by fusegate-check@….service and mounts
 *   read-write;
 * - an image marked dirty (as an unclean unmount leaves it) mounts
 *   read-only, with the reason in mount(8)'s stderr and the checker's verdict
 *   in the journal; the check wrote nothing (the image is still dirty);
 * - under preflight: repair the same dirty image mounts read-write, and the
 *   type's checker run afterwards on the host, outside any sandbox, finds it
 *   clean;
 * - no checker instance is left behind;
 * - ext4 through fuse2fs killed mid-write (a pulled stick) is brought back
 *   by the next mount's preflight: repair.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hostVerdict, markDirty } from './dirty';
import { type LoopDevice, attachLoop, e2eLog, e2eSkip } from './harness';
import { runOk } from './host';
import { type ImageType, makeImage, overwriteInPlace, sampleFiles } from './images';
import {
  addToRule, findmnt, journalCursor, readPolicy, waitForJournal, waitForNoUnits, writePolicy,
} from './scenario';
import { containerSuite, releaseHostSetup } from './suite';

const REPO = resolve(__dirname, '../..');
const MNT = '/mnt/preflight';
const TYPES = ['ext4', 'vfat', 'exfat', 'ntfs'] as const satisfies readonly ImageType[];
type Type = (typeof TYPES)[number];
const BACKEND: Record<Type, string> = { ext4: 'fuse2fs', vfat: 'fusegate-vfat', exfat: 'exfat-fuse', ntfs: 'ntfs-3g' };
/** What each checker's verdict on a dirty image is, and the words mount(8)'s line quotes. */
const DIRTY: Record<Type, { verdict: string; checker: string; said: RegExp }> = {
  ext4: { verdict: 'marked', checker: 'e2fsck', said: /was not cleanly unmounted/ },
  vfat: { verdict: 'damaged', checker: 'fsck.fat', said: /Dirty bit is set/ },
  exfat: { verdict: 'marked', checker: 'fsck.exfat', said: /the exFAT VolumeDirty flag is set/ },
  ntfs: { verdict: 'marked', checker: 'ntfsinfo', said: /Volume is scheduled for check/ },
};
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe.skipIf(e2eSkip())('preflight: a sandboxed check before a read-write mount', () => {
  let scratch = '';
  const loops = new Map<Type, LoopDevice>();
  const clean = new Map<Type, Buffer>();
  const dirty = new Map<Type, Buffer>();
  const work = (t: Type) => join(scratch, `work-${t}.img`);
  let defaultPolicy = '';

  beforeAll(async () => {
    const t0 = Date.now();
    scratch = mkdtempSync(join(tmpdir(), 'fusegate-e2e-preflight-'));
    for (const type of TYPES) {
      const p = join(scratch, `clean-${type}.img`);
      await makeImage(type, p, { scratch, label: 'PREFLIGHT', sizeMiB: 16 });
      clean.set(type, readFileSync(p));
      const d = join(scratch, `dirty-${type}.img`);
      writeFileSync(d, clean.get(type)!);
      await markDirty(type, d);
      dirty.set(type, readFileSync(d));
      // The dirty image really is dirty for the type's own checker.
      expect(await hostVerdict(type, d), type).not.toBe('clean');
      expect(await hostVerdict(type, p), type).toBe('clean');
      writeFileSync(work(type), clean.get(type)!);
      loops.set(type, await attachLoop(work(type)));
    }
    e2eLog(`preflight: images and loop devices ready in ${Date.now() - t0} ms`);
  });
  releaseHostSetup(() => ({ suite: e2e, loops: loops.values(), scratch }));

  const e2e = containerSuite(() => ({ projectDir: REPO, devices: [...loops.values()].map((l) => l.path) }));

  beforeAll(async () => {
    const c = e2e.container;
    // --take-over=ntfs: ntfs-3g's own mount.ntfs would otherwise serve plain `mount` unsandboxed.
    await c.install({ args: ['--take-over=ntfs'] });
    await c.execOk(['mkdir', '-p', MNT]);
    defaultPolicy = await readPolicy(c);
    // fuse2fs mounts ext4 read-only unless the administrator accepts its unjournaled writes; only read-write mounts are checked.
    await writePolicy(c, addToRule(defaultPolicy, 'images-and-loop-devices', ['allow_unsafe_write: true']));
  });

  // A failed test must not leave its mount to the next one.
  afterEach(async () => {
    if (await findmnt(e2e.container, MNT)) await e2e.container.exec(['umount', MNT]);
  });

  async function use(type: Type, image: Buffer): Promise<string> {
    overwriteInPlace(work(type), image);
    const loop = loops.get(type)!;
    await runOk(['blockdev', '--flushbufs', loop.path]);
    return loop.path;
  }

  /** The helper's preflight entry for this mount, once journald has it. */
  async function preflightEntry(cursor: string, dev: string): Promise<Record<string, string>> {
    const entries = await waitForJournal(e2e.container, cursor, ['SYSLOG_IDENTIFIER=fusegate', `FUSEGATE_SOURCE=${dev}`], (es) => es.some((e) => e.FUSEGATE_PREFLIGHT_VERDICT));
    const entry = entries.find((e) => e.FUSEGATE_PREFLIGHT_VERDICT);
    expect(entry, `no preflight entry for ${dev}`).toBeDefined();
    return entry!;
  }

  async function readBack(): Promise<void> {
    const c = e2e.container;
    const data = sampleFiles().get('DOCS/DEEP/LEAF.TXT')!;
    const r = await c.execOk(['sha256sum', `${MNT}/DOCS/DEEP/LEAF.TXT`]);
    expect(r.stdout.split(' ')[0]).toBe(sha256(data));
  }

  async function unmountAndSettle(type: Type): Promise<void> {
    const c = e2e.container;
    await c.execOk(['umount', MNT]);
    expect(await findmnt(c, MNT)).toBeNull();
    expect(await waitForNoUnits(c, `${BACKEND[type]}@*`)).toEqual([]);
    expect(await waitForNoUnits(c, 'fusegate-check@*')).toEqual([]);
  }

  it.each(TYPES)('%s: a clean image is checked in fusegate-check@ and mounts read-write', async (type) => {
    const c = e2e.container;
    const dev = await use(type, clean.get(type)!);
    const cursor = await journalCursor(c);
    const m = await c.exec(['mount', dev, MNT]);
    expect(m.code, m.stderr).toBe(0);
    // Nothing to say about a clean volume.
    expect(m.stderr).toBe('');
    const row = await findmnt(c, MNT);
    expect(row!.fstype).toMatch(new RegExp(`^fuse(blk)?\\.${BACKEND[type]}$`));
    expect(row!.options).toContain('rw');
    const entry = await preflightEntry(cursor, dev);
    expect(entry).toMatchObject({ FUSEGATE_PREFLIGHT: 'check', FUSEGATE_PREFLIGHT_VERDICT: 'clean', FUSEGATE_PREFLIGHT_ACTION: 'read-write' });
    // The checker ran in its own sandboxed instance, which logged its verdict too
    // (through its stderr: the sandbox has no socket to journald's).
    const own = await waitForJournal(c, cursor, ['SYSLOG_IDENTIFIER=fusegate-check'], (es) => es.some((e) => e.MESSAGE?.startsWith(`check of ${type}: clean`)));
    const line = own.find((e) => e.MESSAGE?.startsWith(`check of ${type}: clean`));
    expect(line, `no verdict line of fusegate-check for ${type}`).toBeDefined();
    expect(line!._SYSTEMD_UNIT).toMatch(/^fusegate-check@\d+-\d+-\d+\.service$/);
    await readBack();
    await unmountAndSettle(type);
  });

  it.each(TYPES)('%s: an image marked dirty mounts read-only, with the reason on stderr and the verdict in the journal', async (type) => {
    const c = e2e.container;
    const dev = await use(type, dirty.get(type)!);
    const cursor = await journalCursor(c);
    const m = await c.exec(['mount', dev, MNT]);
    expect(m.code, m.stderr).toBe(0);
    const want = DIRTY[type];
    const lines = m.stderr.trim().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^mount\\.fusegate: ${dev} \\(${type}\\) (is marked dirty|has errors)`));
    expect(lines[0]).toMatch(want.said);
    expect(lines[0]).toMatch(/; mounted read-only$/);
    expect(lines[1]).toMatch(/to repair it in the sandbox, set 'preflight: repair' in rule 'images-and-loop-devices'/);
    const row = await findmnt(c, MNT);
    expect(row!.fstype).toMatch(new RegExp(`^fuse(blk)?\\.${BACKEND[type]}$`));
    expect(row!.options).toContain('ro');
    const entry = await preflightEntry(cursor, dev);
    expect(entry).toMatchObject({
      FUSEGATE_PREFLIGHT: 'check',
      FUSEGATE_PREFLIGHT_VERDICT: want.verdict,
      FUSEGATE_PREFLIGHT_ACTION: 'read-only',
      FUSEGATE_CHECKER: want.checker,
      FUSEGATE_RULE: 'images-and-loop-devices',
    });
    expect(entry.FUSEGATE_CHECKER_SAID).toMatch(want.said);
    await readBack();
    const w = await c.exec(['sh', '-c', `echo no > ${MNT}/new.txt`]);
    expect(w.stderr).toMatch(/Read-only file system/);
    await unmountAndSettle(type);
    // A check never writes: the image is as dirty as before.
    expect(await hostVerdict(type, work(type))).not.toBe('clean');
  });

  it.each(TYPES)('%s: under preflight: repair the dirty image is repaired in the sandbox and mounts read-write; the host checker then finds it clean', async (type) => {
    const c = e2e.container;
    const repairing = addToRule(defaultPolicy, 'images-and-loop-devices', ['allow_unsafe_write: true']).replace(
      /(- name: images-and-loop-devices[\s\S]*?)preflight: check/,
      '$1preflight: repair',
    );
    expect(repairing).toMatch(/preflight: repair/);
    await writePolicy(c, repairing);
    try {
      const dev = await use(type, dirty.get(type)!);
      const cursor = await journalCursor(c);
      const m = await c.exec(['mount', dev, MNT]);
      expect(m.code, m.stderr).toBe(0);
      expect((await findmnt(c, MNT))!.options).toContain('rw');
      const entry = await preflightEntry(cursor, dev);
      expect(entry).toMatchObject({ FUSEGATE_PREFLIGHT: 'repair', FUSEGATE_PREFLIGHT_VERDICT: 'clean', FUSEGATE_PREFLIGHT_ACTION: 'read-write' });
      await readBack();
      await unmountAndSettle(type);
    } finally {
      await c.exec(['umount', MNT]);
      await writePolicy(c, addToRule(defaultPolicy, 'images-and-loop-devices', ['allow_unsafe_write: true']));
    }
    expect(await hostVerdict(type, work(type))).toBe('clean');
  });

  // docs/preflight.md §5: fuse2fs does not journal its own writes. A stick
  // pulled mid-write (the server killed with SIGKILL while it writes) is
  // either brought back by the next mount's preflight repair (e2fsck -p
  // fixed it: read-write, and clean) or, where e2fsck -p stops ("run fsck
  // manually", which depends on where the kill landed: both seen here), refused with
  // what to run; never mounted read-write unclean. That it is not always
  // brought back is why read-write ext4 through fuse2fs is not the default.
  it('ext4 through fuse2fs killed mid-write: the next mount under preflight: repair brings it back clean, or refuses it', async () => {
    const c = e2e.container;
    const repairing = addToRule(defaultPolicy, 'images-and-loop-devices', ['allow_unsafe_write: true']).replace(
      /(- name: images-and-loop-devices[\s\S]*?)preflight: check/,
      '$1preflight: repair',
    );
    await writePolicy(c, repairing);
    try {
      const dev = await use('ext4', clean.get('ext4')!);
      await c.execOk(['mount', dev, MNT]);
      expect((await findmnt(c, MNT))!.options).toContain('rw');
      // A writer that never stops, then the server killed under it.
      // (into a directory of the mount: once it is gone, the writer's next file cannot land underneath)
      await c.execOk(['mkdir', `${MNT}/w`]);
      const writer = (await c.execOk(['sh', '-c', `(i=0; while :; do head -c 65536 /dev/urandom > ${MNT}/w/f$i 2>/dev/null || exit 0; i=$((i+1)); done) >/dev/null 2>&1 & echo $!`])).stdout.trim();
      await new Promise((r) => setTimeout(r, 1500));
      const unit = (await c.execOk(['systemctl', 'list-units', '--no-legend', '--plain', 'fuse2fs@*'])).stdout.trim().split(/\s+/)[0]!;
      expect(unit).toMatch(/^fuse2fs@/);
      await c.execOk(['systemctl', 'kill', '--signal=KILL', unit]);
      await waitForNoUnits(c, 'fuse2fs@*');
      await c.exec(['kill', writer]);
      await c.exec(['umount', MNT]);
      await c.exec(['umount', '-l', MNT]);
      expect(await findmnt(c, MNT)).toBeNull();
      // What the pulled stick looks like to e2fsck on the host.
      const pulled = await hostVerdict('ext4', work('ext4'));
      e2eLog(`preflight: ext4 after SIGKILL mid-write: ${pulled.split('\n')[0]}`);
      expect(pulled).not.toBe('clean');

      const cursor = await journalCursor(c);
      const m = await c.exec(['mount', dev, MNT]);
      const entry = await preflightEntry(cursor, dev);
      e2eLog(`preflight: ext4 after SIGKILL, repair: exit ${m.code}, ${entry.FUSEGATE_PREFLIGHT_ACTION}`);
      if (m.code === 0) {
        expect((await findmnt(c, MNT))!.options).toContain('rw');
        expect(entry).toMatchObject({ FUSEGATE_PREFLIGHT: 'repair', FUSEGATE_PREFLIGHT_VERDICT: 'clean', FUSEGATE_PREFLIGHT_REPAIRED: 'true', FUSEGATE_PREFLIGHT_ACTION: 'read-write' });
        await readBack();
        await unmountAndSettle('ext4');
        expect(await hostVerdict('ext4', work('ext4'))).toBe('clean');
      } else {
        // e2fsck -p would not fix it alone: refused, with what to run, and nothing mounted.
        expect(m.code, m.stderr).toBe(32);
        expect(m.stderr).toMatch(/did not fix/);
        expect(m.stderr).toMatch(/run e2fsck/);
        expect(entry).toMatchObject({ FUSEGATE_PREFLIGHT: 'repair', FUSEGATE_PREFLIGHT_ACTION: 'refused' });
        expect(entry.FUSEGATE_PREFLIGHT_VERDICT).not.toBe('clean');
        expect(await findmnt(c, MNT)).toBeNull();
        expect(await hostVerdict('ext4', work('ext4'))).not.toBe('clean');
      }
    } finally {
      await c.exec(['umount', MNT]);
      await writePolicy(c, addToRule(defaultPolicy, 'images-and-loop-devices', ['allow_unsafe_write: true']));
    }
  });
});
