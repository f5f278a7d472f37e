/**
 * The Debian package, as an administrator uses it: `apt install
 * ./fusegate_*.deb` in a booted Debian 12, the udisks2 FAT stick mounts
 * sandboxed, `apt purge fusegate` leaves the system as it was: the same
 * files, the same diversions, Debian's own /sbin/mount.ntfs back in place.
 *
 * The package depends on nodejs (>= 20). The container runs the host's Node
 * 20 bound at /usr/bin/node, which no package in the container owns, so the
 * test installs a stand-in: an empty package named nodejs, version
 * 20.99.0+fusegate.e2e.fake, built here with dpkg-deb.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildDeb, type BuiltPackage } from '../../scripts/package-deb';
import { type LoopDevice, attachLoop, e2eLog, e2eSkip } from './harness';
import { makeImage } from './images';
import { findmnt, waitForNoUnits } from './scenario';
import { containerSuite, releaseHostSetup } from './suite';
import { type HostUdev, startHostUdev } from './udev';

const DEBS = '/opt/fusegate-debs';
const LABEL = 'FGSTICK';
const MEDIA = `/media/root/${LABEL}`;

/** What the package may touch, listed with each entry's type and link target. */
const SNAPSHOT = [
  'set -e',
  'find /usr/lib/fusegate /etc/fusegate /etc/systemd/system /lib/systemd/system /usr/sbin /usr/bin /usr/share/man/man5 /usr/share/man/man8 /usr/share/doc/fusegate /run/filesystems',
  "  -printf '%p %y %l\\n' 2>/dev/null | sort",
].join(' \\\n');

function fakeNodejs(dir: string): string {
  const root = join(dir, 'nodejs-fake');
  mkdirSync(join(root, 'DEBIAN'), { recursive: true });
  writeFileSync(join(root, 'DEBIAN/control'), [
    'Package: nodejs',
    'Version: 20.99.0+fusegate.e2e.fake',
    'Architecture: all',
    'Maintainer: fusegate tests <fusegate@example.org>',
    'Description: FAKE nodejs for fusegate\'s package test (ships nothing)',
    ' The container runs the host\'s Node 20, bound at /usr/bin/node.',
    '',
  ].join('\n'));
  const deb = join(dir, 'nodejs-fake.deb');
  const r = spawnSync('dpkg-deb', ['--root-owner-group', '--build', root, deb], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`dpkg-deb: ${r.stderr}`);
  return deb;
}

describe.skipIf(e2eSkip())('e2e: the Debian package', () => {
  let scratch = '';
  let pkg: BuiltPackage | undefined;
  let loop: LoopDevice | undefined;
  let udev: HostUdev | undefined;
  let before = '';
  let diversionsBefore = '';

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'fusegate-e2e-deb-'));
    const debs = join(scratch, 'debs');
    pkg = buildDeb(debs);
    fakeNodejs(debs);
    await makeImage('vfat', join(scratch, 'stick.img'), { scratch, label: LABEL });
    loop = await attachLoop(join(scratch, 'stick.img'));
    udev = await startHostUdev({ log: e2eLog });
    await udev.coldplug([loop.path]);
  }, 300_000);

  releaseHostSetup(() => ({ suite: e2e, loops: [loop], udev, scratch }));

  const e2e = containerSuite(() => ({
    devices: [loop!.path],
    bindUdev: true,
    binds: [{ host: join(scratch, 'debs'), container: DEBS, readOnly: true }],
  }));

  it('lintian finds no errors in it', () => {
    const r = spawnSync('lintian', ['--tag-display-limit', '0', pkg!.file], { encoding: 'utf8', timeout: 300_000 });
    expect(r.error).toBeUndefined();
    expect(r.stdout.split('\n').filter((l) => l.startsWith('E:'))).toEqual([]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
  }, 300_000);

  it('apt installs the package: helpers diverted, sockets enabled and listening', async () => {
    const c = e2e.container;
    before = (await c.shOk(SNAPSHOT)).stdout;
    diversionsBefore = (await c.shOk('dpkg-divert --list | sort')).stdout;
    expect((await c.execOk(['readlink', '/sbin/mount.ntfs'])).stdout.trim()).toBe('mount.ntfs-3g');

    await c.execOk(['dpkg', '-i', `${DEBS}/nodejs-fake.deb`]);
    const r = await c.exec(['apt-get', 'install', '-y', `${DEBS}/${basename(pkg!.file)}`], {
      env: { DEBIAN_FRONTEND: 'noninteractive' },
      timeoutMs: 180_000,
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect((await c.execOk(['dpkg-query', '-W', '-f=${Status} ${Version}', 'fusegate'])).stdout).toBe(`install ok installed ${pkg!.version}`);

    // Debian's mount.ntfs moved aside by dpkg-divert; ours in its place.
    expect((await c.execOk(['dpkg-divert', '--listpackage', '/sbin/mount.ntfs'])).stdout.trim()).toBe('fusegate');
    expect((await c.execOk(['readlink', '/sbin/mount.ntfs'])).stdout.trim()).toBe('/usr/lib/fusegate/helper/mount-launcher.sh');
    expect((await c.execOk(['readlink', '/sbin/mount.ntfs.fusegate-distrib'])).stdout.trim()).toBe('mount.ntfs-3g');
    for (const s of pkg!.sockets) {
      expect((await c.exec(['systemctl', 'is-enabled', s])).stdout.trim(), s).toBe('enabled');
      expect((await c.exec(['systemctl', 'is-active', s])).stdout.trim(), s).toBe('active');
    }
    // The policy is a conffile; doctor finds everything in place.
    expect((await c.execOk(['dpkg-query', '-W', '-f=${Conffiles}', 'fusegate'])).stdout).toMatch(/\/etc\/fusegate\/policy\.yaml [0-9a-f]{32}/);
    const doctor = await c.exec(['fusegate', 'doctor']);
    expect(doctor.stdout).toMatch(/^ok +launcher: /m);
    expect(doctor.stdout).toMatch(/^ok +mount\.fusegate: /m);
  });

  it('the udisks2 FAT stick mounts sandboxed, and unmounts', async () => {
    const c = e2e.container;
    const m = await c.exec(['udisksctl', 'mount', '-b', loop!.path]);
    expect(m.code, m.stderr).toBe(0);
    const row = await findmnt(c, MEDIA);
    expect(row).toMatchObject({ source: loop!.path, fstype: expect.stringMatching(/^fuse(blk)?\.fusegate-vfat$/) });
    expect((await c.execOk(['cat', `${MEDIA}/README.TXT`])).stdout.length).toBeGreaterThan(0);
    const u = await c.exec(['udisksctl', 'unmount', '-b', loop!.path]);
    expect(u.code, u.stderr).toBe(0);
    expect(await waitForNoUnits(c, 'fusegate-vfat@*')).toEqual([]);
  });

  it('apt purge leaves the files and the diversions as they were, mount.ntfs restored', async () => {
    const c = e2e.container;
    const r = await c.exec(['apt-get', 'purge', '-y', 'fusegate'], { env: { DEBIAN_FRONTEND: 'noninteractive' }, timeoutMs: 120_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect((await c.exec(['dpkg-query', '-W', '-f=${Status}', 'fusegate'])).stdout).not.toMatch(/installed/);
    expect((await c.shOk('dpkg-divert --list | sort')).stdout).toBe(diversionsBefore);
    expect((await c.shOk(SNAPSHOT)).stdout).toBe(before);
    expect((await c.execOk(['readlink', '/sbin/mount.ntfs'])).stdout.trim()).toBe('mount.ntfs-3g');
    expect((await c.exec(['systemctl', 'is-active', 'fusefat.socket'])).stdout.trim()).not.toBe('active');
  });
});
