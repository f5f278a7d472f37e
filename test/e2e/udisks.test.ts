/**
 * A FAT "USB stick" (an image on a loop device) mounted the way a desktop
 * does it: `udisksctl mount -b /dev/loopN`. udisks2 calls the intercepted
 * `mount.vfat`, fusegate's helper decides by policy, and fusegate's own FAT
 * server (fusegate-vfat, in its sandboxed unit) serves the files read-write
 * at /media/root/LABEL; files copied on survive the unmount, fsck.fat finds
 * the stick clean and mtools reads them back. This machine's kernel has no vfat
 * driver at all: the sandbox is the only way this stick mounts.
 *
 * udisks2 inside the container needs udev's data about the device; the host
 * runs no udevd (systemd is not PID 1 there), so this suite runs one on the
 * host, as our child, only for its own duration (test/e2e/udev.ts).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { fsck, mtoolsRead, mtoolsTree } from '../support/vfat/tools';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { markDirty } from './dirty';
import { type LoopDevice, attachLoop, e2eLog, e2eSkip } from './harness';
import { runOk } from './host';
import { makeImage, sampleFiles } from './images';
import { findmnt, journalCursor, listUnits, unitProperty, utabOptions, waitForJournal, waitForNoUnits } from './scenario';
import { containerSuite, releaseHostSetup } from './suite';
import { type HostUdev, startHostUdev } from './udev';

const REPO = resolve(__dirname, '../..');
const LABEL = 'FGSTICK';
const MEDIA = `/media/root/${LABEL}`;
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe.skipIf(e2eSkip())('a USB stick through udisks2 into the sandbox', () => {
  let scratch = '';
  let loop: LoopDevice | undefined;
  let udev: HostUdev | undefined;
  let cursor = '';
  /** what the copy test wrote, checked after the unmount */
  const copied = { osRelease: '', sum: '' };

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'fusegate-e2e-udisks-'));
    await makeImage('vfat', join(scratch, 'stick.img'), { scratch, label: LABEL });
    loop = await attachLoop(join(scratch, 'stick.img'));
    udev = await startHostUdev({ log: e2eLog });
    await udev.coldplug([loop.path]);
  });
  releaseHostSetup(() => ({ suite: e2e, loops: [loop], udev, scratch }));

  const e2e = containerSuite(() => ({ projectDir: REPO, devices: [loop!.path], bindUdev: true }));

  beforeAll(async () => {
    await e2e.container.install();
    cursor = await journalCursor(e2e.container);
  });

  it('udisks2 sees the stick; the kernel has no FAT driver', async () => {
    const c = e2e.container;
    expect((await c.execOk(['cat', '/proc/filesystems'])).stdout).not.toMatch(/\bvfat\b/);
    const info = await c.execOk(['udisksctl', 'info', '-b', loop!.path]);
    expect(info.stdout).toMatch(/^\s+IdType:\s+vfat$/m);
    expect(info.stdout).toMatch(new RegExp(`^\\s+IdLabel:\\s+${LABEL}$`, 'm'));
    expect(info.stdout).toMatch(/org\.freedesktop\.UDisks2\.Filesystem:/);
  });

  it('udisksctl mount: udisks2 runs the intercepted mount.vfat and a sandboxed fusegate-vfat serves the files read-write at /media', async () => {
    const c = e2e.container;
    const m = await c.exec(['udisksctl', 'mount', '-b', loop!.path]);
    expect(m.code, m.stderr).toBe(0);
    expect(m.stdout.trim()).toBe(`Mounted ${loop!.path} at ${MEDIA}`);

    const row = await findmnt(c, MEDIA);
    expect(row).toMatchObject({ source: loop!.path, fstype: 'fuseblk.fusegate-vfat' });
    // fusegate-vfat writes FAT safely: the default policy mounts the stick read-write.
    expect(row!.options).toEqual(expect.arrayContaining(['rw', 'nosuid', 'nodev']));
    expect(row!.options).not.toContain('ro');
    expect(await utabOptions(c, MEDIA)).toEqual(
      expect.arrayContaining(['x-fusegate.backend=fusegate-vfat', 'x-fusegate.rule=images-and-loop-devices', 'uhelper=udisks2']),
    );

    // It was udisks2 that called the helper, as mount.vfat, with its usual options.
    const decisions = (
      await waitForJournal(c, cursor, ['SYSLOG_IDENTIFIER=fusegate'], (es) => es.some((e) => e.MESSAGE?.startsWith('decision:')))
    ).filter((e) => e.MESSAGE?.startsWith('decision:'));
    expect(decisions).toHaveLength(1);
    expect(decisions[0]).toMatchObject({ FUSEGATE_DECISION: 'fuse', FUSEGATE_BACKEND: 'fusegate-vfat', FUSEGATE_UHELPER: 'udisks2', FUSEGATE_MOUNTPOINT: MEDIA });
    // mount(8) ran /sbin/mount.vfat, the launcher, which runs the Node helper with the same arguments.
    expect(decisions[0]).toMatchObject({ FUSEGATE_INVOKED_AS: 'mount.vfat' });
    expect(decisions[0]!._CMDLINE).toMatch(new RegExp(`/mount\\.fusegate\\.js ${loop!.path} ${MEDIA} -o rw,nodev,nosuid,uid=0,gid=0,.*uhelper=udisks2`));

    // One sandboxed instance, whose process is the adapter serving the mount itself (--jitless node).
    const units = await listUnits(c, 'fusegate-vfat@*');
    expect(units).toHaveLength(1);
    expect(units[0]).toMatchObject({ active: 'active', sub: 'running' });
    const pid = await unitProperty(c, units[0]!.unit, 'MainPID');
    const cmdline = (await c.execOk(['cat', `/proc/${pid}/cmdline`])).stdout.split('\0');
    expect(cmdline).toEqual(expect.arrayContaining(['--jitless', 'fusegate-vfat']));

    // The files, byte for byte.
    for (const [rel, data] of sampleFiles()) {
      const r = await c.execOk(['sha256sum', `${MEDIA}/${rel}`]);
      expect(r.stdout.split(' ')[0], rel).toBe(sha256(data));
    }
    expect((await c.execOk(['cat', `${MEDIA}/README.TXT`])).stdout).toBe(sampleFiles().get('README.TXT')!.toString());
  });

  it('files copied onto the stick, Unicode names included, are written through the sandbox', async () => {
    const c = e2e.container;
    await c.execOk(['mkdir', `${MEDIA}/Copied`]);
    await c.execOk(['cp', '/etc/os-release', `${MEDIA}/Copied/os-release.txt`]);
    await c.execOk(['sh', '-c', `head -c 3000000 /dev/urandom > '${MEDIA}/Copied/número.bin' && sync`]);
    copied.osRelease = (await c.execOk(['cat', '/etc/os-release'])).stdout;
    copied.sum = (await c.execOk(['sha256sum', `${MEDIA}/Copied/número.bin`])).stdout.split(' ')[0]!;
    expect((await c.execOk(['ls', `${MEDIA}/Copied`])).stdout.split('\n').filter(Boolean).sort()).toEqual(['número.bin', 'os-release.txt']);
  });

  it('fusegate status shows the stick with its sandbox', async () => {
    const r = await e2e.container.execOk(['fusegate', 'status', '--json']);
    const report = JSON.parse(r.stdout) as { mounts: Array<Record<string, unknown>> };
    expect(report.mounts).toHaveLength(1);
    expect(report.mounts[0]).toMatchObject({ source: loop!.path, mountpoint: MEDIA, backend: 'fusegate-vfat', unit: expect.stringMatching(/^fusegate-vfat@/) });
  });

  // udisks2 ties mounts to block devices by the device number in mountinfo:
  // only a fuseblk mount (the adapter asks for one for block devices) carries
  // the stick's own number; a plain fuse mount's anonymous 0:N would make
  // `udisksctl unmount` answer "Device /dev/loopN is not mounted".
  it('udisksctl unmount unmounts it and the sandbox instance ends', async () => {
    const c = e2e.container;
    try {
      const u = await c.exec(['udisksctl', 'unmount', '-b', loop!.path]);
      expect(u.stderr).not.toMatch(/is not mounted/);
      expect(u.code, u.stderr).toBe(0);
      expect(u.stdout.trim()).toBe(`Unmounted ${loop!.path}.`);
      expect(await findmnt(c, MEDIA)).toBeNull();
      expect(await waitForNoUnits(c, 'fusegate-vfat@*')).toEqual([]);
    } finally {
      // Leave the container clean for what follows whatever happened above.
      if (await findmnt(c, MEDIA)) await c.exec(['umount', MEDIA]);
    }
  });

  it('after the unmount the stick is clean for fsck.fat and mtools reads what was copied on', () => {
    const img = join(scratch, 'stick.img');
    const check = fsck(img);
    expect(check.ok, check.output).toBe(true);
    const tree = mtoolsTree(img);
    expect(tree.get('/Copied/número.bin')).toBe(3000000);
    expect(mtoolsRead(img, '/Copied/os-release.txt').toString()).toBe(copied.osRelease);
    expect(sha256(mtoolsRead(img, '/Copied/número.bin'))).toBe(copied.sum);
    for (const [rel, data] of sampleFiles()) expect(sha256(mtoolsRead(img, `/${rel}`)), rel).toBe(sha256(data));
  });

  it('after the unmount nothing is left: no mount, no instance, and the stick mounts again', async () => {
    const c = e2e.container;
    expect(await findmnt(c, MEDIA)).toBeNull();
    expect(await waitForNoUnits(c, 'fusegate-vfat@*')).toEqual([]);
    expect(await c.exec(['fusegate', 'status', '--json']).then((r) => JSON.parse(r.stdout).mounts)).toEqual([]);
    const again = await c.exec(['udisksctl', 'mount', '-b', loop!.path]);
    expect(again.code, again.stderr).toBe(0);
    expect((await c.execOk(['cat', `${MEDIA}/DOCS/DEEP/LEAF.TXT`])).stdout).toBe('the deepest file\n');
    expect((await c.execOk(['cat', `${MEDIA}/Copied/os-release.txt`])).stdout).toBe(copied.osRelease);
    await c.execOk(['umount', MEDIA]);
    expect(await waitForNoUnits(c, 'fusegate-vfat@*')).toEqual([]);
  });

  // Issue 15: a stick pulled without unmounting. The default policy's
  // preflight finds the dirty bit and the stick comes up read-only, which is
  // what udisks2 and desktops then see (they read the mount's flags).
  it('a stick marked dirty comes up read-only through udisks2, with the reason in the journal', async () => {
    const c = e2e.container;
    await markDirty('vfat', join(scratch, 'stick.img'));
    await runOk(['blockdev', '--flushbufs', loop!.path]);
    const since = await journalCursor(c);
    try {
      const m = await c.exec(['udisksctl', 'mount', '-b', loop!.path]);
      expect(m.code, m.stderr).toBe(0);
      expect(m.stdout.trim()).toBe(`Mounted ${loop!.path} at ${MEDIA}`);
      const row = await findmnt(c, MEDIA);
      expect(row).toMatchObject({ source: loop!.path, fstype: 'fuseblk.fusegate-vfat' });
      expect(row!.options).toContain('ro');
      const entries = await waitForJournal(c, since, ['SYSLOG_IDENTIFIER=fusegate'], (es) => es.some((e) => e.FUSEGATE_PREFLIGHT_ACTION));
      expect(entries.find((e) => e.FUSEGATE_PREFLIGHT_ACTION)).toMatchObject({ FUSEGATE_PREFLIGHT_VERDICT: 'damaged', FUSEGATE_PREFLIGHT_ACTION: 'read-only', FUSEGATE_CHECKER: 'fsck.fat' });
      expect((await c.execOk(['cat', `${MEDIA}/DOCS/DEEP/LEAF.TXT`])).stdout).toBe('the deepest file\n');
      const u = await c.exec(['udisksctl', 'unmount', '-b', loop!.path]);
      expect(u.code, u.stderr).toBe(0);
      expect(await waitForNoUnits(c, 'fusegate-vfat@*')).toEqual([]);
      expect(await waitForNoUnits(c, 'fusegate-check@*')).toEqual([]);
    } finally {
      if (await findmnt(c, MEDIA)) await c.exec(['umount', MEDIA]);
    }
  });
});
