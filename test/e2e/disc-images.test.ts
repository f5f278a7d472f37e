/**
 * Downloaded disc images through the sandbox (issue 18), on a real systemd
 * after `fusegate install` with the default policy:
 *
 * - an ISO 9660 image with Joliet and Rock Ridge names (non-ASCII too)
 *   mounts through a sandboxed fuseiso@ instance whether mount(8) is given
 *   the loop device, `-t iso9660`, `-t auto`, or the .iso file itself with
 *   no -t (mount(8) sets up a loop device, probes iso9660 and runs the
 *   intercepted mount.iso9660); the files read back byte for byte; umount
 *   leaves no mount, no instance and no loop device;
 * - a UDF image on a loop device is refused, saying there is no sandboxed
 *   driver;
 * - a squashfs image mounted as a plain file (no -t) goes to squashfuse by
 *   interception, not to the kernel's squashfs driver (which this kernel has);
 * - udisks2 mounts the ISO the way a desktop does (loop device, then
 *   `udisksctl mount -b`), through the same sandbox.
 *
 * This machine's kernel has neither an isofs nor a udf driver, so the
 * sandbox is the only way these images mount at all here.
 */
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { type LoopDevice, attachLoop, e2eLog, e2eSkip, makeSparseFile } from './harness';
import { runOk } from './host';
import { discFiles, makeImage, sampleFiles } from './images';
import type { Container } from './container';
import { findmnt, journalCursor, listUnits, unitProperty, utabOptions, waitForJournal, waitForNoUnits } from './scenario';
import { containerSuite, releaseHostSetup } from './suite';
import { type HostUdev, startHostUdev } from './udev';

const REPO = resolve(__dirname, '../..');
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
/** Where the host's image directory appears in the container (read-only). */
const IMAGES = '/srv/images';
const ISO_LABEL = 'FG_DISC';

/** Every file of the disc, byte for byte, as sha256sum inside the container sees it. */
async function expectDiscFiles(c: Container, dir: string, files: Map<string, Buffer> = discFiles()): Promise<void> {
  for (const [rel, data] of files) {
    const r = await c.execOk(['sha256sum', `${dir}/${rel}`]);
    expect(r.stdout.split(' ')[0], rel).toBe(sha256(data));
  }
}

/** Loop devices inside the container backed by `file` (its container path). */
async function loopsBacking(c: Container, file: string): Promise<string[]> {
  const r = await c.execOk(['losetup', '--noheadings', '--output', 'NAME', '--associated', file]);
  return r.stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '');
}

/**
 * mount(8) given a file sets up a loop device through /dev/loop-control, and
 * the container's /dev only holds the nodes bound at boot (loop.ts): give the
 * device the kernel will hand out next a node, as devtmpfs would on a host.
 */
async function nodeForNextLoop(c: Container): Promise<void> {
  await c.execOk(['sh', '-c', 'd=$(losetup -f) && { [ -b "$d" ] || mknod "$d" b 7 "${d#/dev/loop}"; }']);
}

describe.skipIf(e2eSkip())('disc images through the sandbox: mount(8)', () => {
  let scratch = '';
  const loops: Record<'iso' | 'udf', LoopDevice | undefined> = { iso: undefined, udf: undefined };

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'fusegate-e2e-disc-'));
    const images = join(scratch, 'images');
    mkdirSync(images);
    await makeImage('iso9660', join(images, 'disc.iso'), { scratch, label: ISO_LABEL });
    // The same disc as a file no loop device backs yet: mount(8) would reuse
    // the one attached to disc.iso instead of setting up its own.
    copyFileSync(join(images, 'disc.iso'), join(images, 'download.iso'));
    await makeImage('squashfs', join(images, 'data.sqfs'), { scratch });
    // UDF as a DVD image would hold it; mkudffs makes an empty one (the kernel here cannot fill it).
    makeSparseFile(join(images, 'dvd.udf'), 8);
    await runOk(['mkudffs', '--label=FG_DVD', '--media-type=hd', join(images, 'dvd.udf')], { timeoutMs: 60_000 });
    chmodSync(scratch, 0o755);
    loops.iso = await attachLoop(join(images, 'disc.iso'), { readOnly: true });
    loops.udf = await attachLoop(join(images, 'dvd.udf'));
  });
  releaseHostSetup(() => ({ suite: e2e, loops: Object.values(loops), scratch }));

  const e2e = containerSuite(() => ({
    projectDir: REPO,
    devices: [loops.iso!.path, loops.udf!.path],
    binds: [{ host: join(scratch, 'images'), container: IMAGES, readOnly: true }],
  }));

  beforeAll(async () => {
    const c = e2e.container;
    await c.install();
    // install made the intercepting helpers from the default policy's list,
    // and doctor finds the new backend from the table.
    for (const t of ['iso9660', 'udf', 'squashfs']) {
      // The boot-safe launcher, which runs the Node helper (helper/mount-launcher.sh).
      expect((await c.execOk(['readlink', '-f', `/usr/sbin/mount.${t}`])).stdout.trim(), t).toMatch(/mount-launcher\.sh$/);
    }
    const doctor = await c.exec(['fusegate', 'doctor']);
    expect(doctor.stdout).toMatch(/^ok\s+backend fuseiso: \/usr\/bin\/fuseiso \(iso9660\)$/m);
    expect(doctor.stdout).toMatch(/^ok\s+units fuseiso: fuseiso\.socket, fuseiso@\.service: installed, enabled, listening on \/run\/filesystems\/fuseiso$/m);
    await c.execOk(['mkdir', '-p', '/mnt/iso', '/mnt/dvd', '/mnt/sq']);
  });

  it('the kernel has no iso9660 or udf driver, so nothing but the sandbox could mount these', async () => {
    const fs = (await e2e.container.execOk(['cat', '/proc/filesystems'])).stdout;
    expect(fs).not.toMatch(/\biso9660\b/);
    expect(fs).not.toMatch(/\budf\b/);
  });

  it('mount(8) of the ISO loop device (no -t) goes through a sandboxed fuseiso@ instance, read-only, names and bytes intact', async () => {
    const c = e2e.container;
    const iso = loops.iso!.path;
    const m = await c.exec(['mount', iso, '/mnt/iso']);
    expect(m.code, m.stderr).toBe(0);
    try {
      const row = await findmnt(c, '/mnt/iso');
      expect(row).toMatchObject({ source: iso, fstype: 'fuseblk.fuseiso' });
      expect(row!.options).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev']));
      expect(await utabOptions(c, '/mnt/iso')).toEqual(
        expect.arrayContaining(['x-fusegate.backend=fuseiso', 'x-fusegate.rule=images-and-loop-devices']),
      );
      const units = await listUnits(c, 'fuseiso@*');
      expect(units).toHaveLength(1);
      expect(units[0]).toMatchObject({ active: 'active', sub: 'running' });
      const pid = await unitProperty(c, units[0]!.unit, 'MainPID');
      expect((await c.execOk(['cat', `/proc/${pid}/comm`])).stdout.trim()).toBe('fuseiso');

      await expectDiscFiles(c, '/mnt/iso');
      // The names as Rock Ridge stores them, listed by the kernel's readdir through FUSE.
      const ls = (await c.execOk(['ls', '-1', '/mnt/iso'])).stdout.split('\n');
      expect(ls).toEqual(expect.arrayContaining(['Grüße aus Köln', 'Ελληνικά.bin', 'A long file name.txt']));
      const w = await c.exec(['sh', '-c', 'echo no > /mnt/iso/new.txt']);
      expect(w.stderr).toMatch(/Read-only file system/);

      // The running instance is as locked down as the generated unit promises.
      const sec = await c.execOk(['systemd-analyze', 'security', '--no-pager', units[0]!.unit]);
      const score = /Overall exposure level for \S+: (\d+\.\d+)/.exec(sec.stdout);
      expect(score, sec.stdout.slice(-1000)).not.toBeNull();
      expect(Number(score![1])).toBeLessThanOrEqual(0.2);
    } finally {
      await c.exec(['umount', '/mnt/iso']);
    }
    expect(await findmnt(c, '/mnt/iso')).toBeNull();
    expect(await waitForNoUnits(c, 'fuseiso@*')).toEqual([]);
  });

  for (const how of [['-t', 'iso9660'], ['-t', 'auto']]) {
    it(`mount ${how.join(' ')} of the ISO loop device reaches the policy too`, async () => {
      const c = e2e.container;
      const cursor = await journalCursor(c);
      const m = await c.exec(['mount', ...how, loops.iso!.path, '/mnt/iso']);
      expect(m.code, m.stderr).toBe(0);
      try {
        expect((await findmnt(c, '/mnt/iso'))!.fstype).toBe('fuseblk.fuseiso');
        const d = (await waitForJournal(c, cursor, ['SYSLOG_IDENTIFIER=fusegate'], (es) => es.some((e) => e.MESSAGE?.startsWith('decision:'))))
          .filter((e) => e.MESSAGE?.startsWith('decision:'));
        expect(d[0]).toMatchObject({ FUSEGATE_DECISION: 'fuse', FUSEGATE_BACKEND: 'fuseiso', FUSEGATE_FSTYPE: 'iso9660' });
        // mount(8) ran /sbin/mount.iso9660 (the launcher), which ran the Node helper.
        expect(d[0]).toMatchObject({ FUSEGATE_INVOKED_AS: 'mount.iso9660' });
        expect((await c.execOk(['cat', '/mnt/iso/DOCS/DEEP/LEAF.TXT'])).stdout).toBe('the deepest file\n');
      } finally {
        await c.exec(['umount', '/mnt/iso']);
      }
      expect(await waitForNoUnits(c, 'fuseiso@*')).toEqual([]);
    });
  }

  for (const how of [[], ['-t', 'auto']]) {
    it(`mount ${[...how, 'download.iso'].join(' ')} (a file): mount(8) makes a loop device, probes iso9660, and the sandbox serves it; umount leaves no loop device`, async () => {
      const c = e2e.container;
      const file = `${IMAGES}/download.iso`;
      expect(await loopsBacking(c, file)).toEqual([]);
      await nodeForNextLoop(c);
      const m = await c.exec(['mount', ...how, file, '/mnt/iso']);
      expect(m.code, m.stderr).toBe(0);
      let loop = '';
      try {
        const row = await findmnt(c, '/mnt/iso');
        expect(row!.fstype).toBe('fuseblk.fuseiso');
        loop = row!.source;
        expect(loop).toMatch(/^\/dev\/loop\d+$/);
        expect(await loopsBacking(c, file)).toEqual([loop]);
        expect(await utabOptions(c, '/mnt/iso')).toContain('x-fusegate.rule=images-and-loop-devices');
        await expectDiscFiles(c, '/mnt/iso');
      } finally {
        await c.exec(['umount', '/mnt/iso']);
      }
      expect(await findmnt(c, '/mnt/iso')).toBeNull();
      expect(await waitForNoUnits(c, 'fuseiso@*')).toEqual([]);
      // The loop device was set up with autoclear: gone once the server closed it.
      const deadline = Date.now() + 5_000;
      while ((await loopsBacking(c, file)).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(await loopsBacking(c, file)).toEqual([]);
    });
  }

  for (const how of [[], ['-t', 'udf']]) {
    it(`mount ${[...how, ''].join(' ')}of a UDF loop device is refused: no sandboxed driver`, async () => {
      const c = e2e.container;
      const udf = loops.udf!.path;
      const cursor = await journalCursor(c);
      const m = await c.exec(['mount', ...how, udf, '/mnt/dvd']);
      expect(m.code).toBe(32);
      expect(m.stderr).toContain(
        `${udf} on /mnt/dvd (udf): refused by rule 'no-sandbox-for-removable': fusegate has no sandboxed driver for this filesystem`,
      );
      expect(await findmnt(c, '/mnt/dvd')).toBeNull();
      expect(await listUnits(c, '*@*-*-*.service')).toEqual([]);
      const d = (await waitForJournal(c, cursor, ['SYSLOG_IDENTIFIER=fusegate', `FUSEGATE_SOURCE=${udf}`], (es) => es.length >= 2))
        .filter((e) => e.MESSAGE?.startsWith('decision:'));
      expect(d).toHaveLength(1);
      expect(d[0]).toMatchObject({ FUSEGATE_DECISION: 'deny', FUSEGATE_FSTYPE: 'udf', FUSEGATE_RULE: 'no-sandbox-for-removable' });
    });
  }

  it('mount data.sqfs (a file, no -t) goes to squashfuse by interception, not to the kernel squashfs driver', async () => {
    const c = e2e.container;
    const file = `${IMAGES}/data.sqfs`;
    // This kernel has squashfs: without interception mount(8) would give the image to it.
    expect((await c.execOk(['cat', '/proc/filesystems'])).stdout).toMatch(/\bsquashfs\b/);
    await nodeForNextLoop(c);
    const m = await c.exec(['mount', file, '/mnt/sq']);
    expect(m.code, m.stderr).toBe(0);
    try {
      const row = await findmnt(c, '/mnt/sq');
      expect(row!.fstype).toBe('fuseblk.squashfuse');
      expect(await utabOptions(c, '/mnt/sq')).toEqual(expect.arrayContaining(['x-fusegate.backend=squashfuse', 'x-fusegate.rule=images-and-loop-devices']));
      expect(await listUnits(c, 'squashfuse@*')).toHaveLength(1);
      await expectDiscFiles(c, '/mnt/sq', sampleFiles());
    } finally {
      await c.exec(['umount', '/mnt/sq']);
    }
    expect(await findmnt(c, '/mnt/sq')).toBeNull();
    expect(await waitForNoUnits(c, 'squashfuse@*')).toEqual([]);
    const deadline = Date.now() + 5_000;
    while ((await loopsBacking(c, file)).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await loopsBacking(c, file)).toEqual([]);
  });
});

describe.skipIf(e2eSkip())('disc images through the sandbox: udisks2', () => {
  let scratch = '';
  let loop: LoopDevice | undefined;
  let udev: HostUdev | undefined;
  const MEDIA = `/media/root/${ISO_LABEL}`;

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'fusegate-e2e-disc-udisks-'));
    await makeImage('iso9660', join(scratch, 'disc.iso'), { scratch, label: ISO_LABEL });
    loop = await attachLoop(join(scratch, 'disc.iso'), { readOnly: true });
    mkdirSync(join(scratch, 'images'));
    copyFileSync(join(scratch, 'disc.iso'), join(scratch, 'images', 'download.iso'));
    chmodSync(scratch, 0o755);
    udev = await startHostUdev({ log: e2eLog });
    await udev.coldplug([loop.path]);
  });
  releaseHostSetup(() => ({ suite: e2e, loops: [loop], udev, scratch }));

  const e2e = containerSuite(() => ({
    projectDir: REPO,
    devices: [loop!.path],
    bindUdev: true,
    // udisksctl loop-setup waits for udev's event about the new device (container.ts).
    hostNetwork: true,
    binds: [{ host: join(scratch, 'images'), container: IMAGES, readOnly: true }],
  }));

  beforeAll(async () => {
    await e2e.container.install();
  });

  it('udisksctl mount runs the intercepted mount.iso9660; a sandboxed fuseiso serves the disc at /media; unmount leaves nothing', async () => {
    const c = e2e.container;
    const info = await c.execOk(['udisksctl', 'info', '-b', loop!.path]);
    expect(info.stdout).toMatch(/^\s+IdType:\s+iso9660$/m);
    const cursor = await journalCursor(c);
    const m = await c.exec(['udisksctl', 'mount', '-b', loop!.path]);
    expect(m.code, m.stderr).toBe(0);
    expect(m.stdout.trim()).toBe(`Mounted ${loop!.path} at ${MEDIA}`);
    try {
      const row = await findmnt(c, MEDIA);
      expect(row).toMatchObject({ source: loop!.path, fstype: 'fuseblk.fuseiso' });
      expect(row!.options).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev']));
      expect(await utabOptions(c, MEDIA)).toEqual(expect.arrayContaining(['x-fusegate.backend=fuseiso', 'uhelper=udisks2']));
      const d = (await waitForJournal(c, cursor, ['SYSLOG_IDENTIFIER=fusegate'], (es) => es.some((e) => e.MESSAGE?.startsWith('decision:'))))
        .filter((e) => e.MESSAGE?.startsWith('decision:'));
      expect(d).toHaveLength(1);
      expect(d[0]).toMatchObject({ FUSEGATE_DECISION: 'fuse', FUSEGATE_BACKEND: 'fuseiso', FUSEGATE_UHELPER: 'udisks2' });
      // mount(8) ran /sbin/mount.iso9660, the launcher, which runs the Node helper with the same arguments.
      expect(d[0]).toMatchObject({ FUSEGATE_INVOKED_AS: 'mount.iso9660' });
      expect(d[0]!._CMDLINE).toMatch(new RegExp(`/mount\\.fusegate\\.js ${loop!.path} ${MEDIA} -o .*uhelper=udisks2`));
      expect(await listUnits(c, 'fuseiso@*')).toHaveLength(1);
      await expectDiscFiles(c, MEDIA);
    } catch (err) {
      await c.exec(['umount', MEDIA]);
      throw err;
    }
    const u = await c.exec(['udisksctl', 'unmount', '-b', loop!.path]);
    expect(u.code, u.stderr).toBe(0);
    expect(await findmnt(c, MEDIA)).toBeNull();
    expect(await waitForNoUnits(c, 'fuseiso@*')).toEqual([]);
    expect(JSON.parse((await c.execOk(['fusegate', 'status', '--json'])).stdout).mounts).toEqual([]);
  });

  it('udisksctl loop-setup -f download.iso, then udisksctl mount: the same sandbox; unmount and loop-delete leave no loop device', async () => {
    const c = e2e.container;
    const file = `${IMAGES}/download.iso`;
    await nodeForNextLoop(c);
    const setup = await c.exec(['udisksctl', 'loop-setup', '-r', '-f', file], { timeoutMs: 60_000 });
    expect(setup.code, setup.stderr).toBe(0);
    const dev = /^Mapped file \S+ as (\/dev\/loop\d+)\.$/m.exec(setup.stdout)?.[1];
    expect(dev, setup.stdout).toBeDefined();
    try {
      expect(await loopsBacking(c, file)).toEqual([dev]);
      const m = await c.exec(['udisksctl', 'mount', '-b', dev!], { timeoutMs: 60_000 });
      expect(m.code, m.stderr).toBe(0);
      expect(m.stdout.trim()).toBe(`Mounted ${dev} at ${MEDIA}`);
      try {
        expect(await findmnt(c, MEDIA)).toMatchObject({ source: dev, fstype: 'fuseblk.fuseiso' });
        expect(await utabOptions(c, MEDIA)).toEqual(expect.arrayContaining(['x-fusegate.backend=fuseiso', 'uhelper=udisks2']));
        expect(await listUnits(c, 'fuseiso@*')).toHaveLength(1);
        await expectDiscFiles(c, MEDIA);
      } finally {
        const u = await c.exec(['udisksctl', 'unmount', '-b', dev!], { timeoutMs: 60_000 });
        expect(u.code, u.stderr).toBe(0);
      }
      expect(await findmnt(c, MEDIA)).toBeNull();
      expect(await waitForNoUnits(c, 'fuseiso@*')).toEqual([]);
    } finally {
      // udisks2 sets autoclear on a loop device it mounted: it may be gone already.
      const left = await loopsBacking(c, file);
      e2eLog(`udisks2 loop device after unmount: ${left.length > 0 ? 'still attached, loop-delete' : 'already cleared'}`);
      if (left.length > 0) await c.exec(['udisksctl', 'loop-delete', '-b', dev!], { timeoutMs: 60_000 });
    }
    const deadline = Date.now() + 5_000;
    while ((await loopsBacking(c, file)).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await loopsBacking(c, file)).toEqual([]);
    expect(JSON.parse((await c.execOk(['fusegate', 'status', '--json'])).stdout).mounts).toEqual([]);
  });
});
