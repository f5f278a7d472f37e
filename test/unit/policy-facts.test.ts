/**
 * Facts from a made-up machine: a sysfs tree, udev database, fstab,
 * passwd/group and a stand-in blkid, all in a temp dir. Block devices are
 * regular files that the `stat` hook declares to be block devices.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExport } from '../../policy/device';
import { busFromDevPath } from '../../policy/device';
import { parseFstab } from '../../policy/etc';
import { gatherFacts, type FactEnv, type SourceStat } from '../../policy/facts';
import type { MountRequest } from '../../policy/types';

let root: string;
let env: FactEnv;
const devices = new Map<string, SourceStat>();

const USB_DISK = 'devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb';
const SATA_DISK = 'devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda';
const NVME_DISK = 'devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1';
const MMC_DISK = 'devices/platform/soc/fe340000.mmc/mmc_host/mmc0/mmc0:0001/block/mmcblk0';

function w(rel: string, content: string): void {
  const p = path.join(root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
}

/** A block device: sysfs directory, /sys/dev/block link, a node under dev/, blkid output. */
function blockDev(name: string, sysDir: string, dev: string, blkid: string, opts: { removable?: boolean; partition?: boolean } = {}): string {
  w(`sys/${sysDir}/dev`, `${dev}\n`);
  if (opts.partition) w(`sys/${sysDir}/partition`, '1\n');
  else w(`sys/${sysDir}/removable`, opts.removable ? '1\n' : '0\n');
  fs.mkdirSync(path.join(root, 'sys/dev/block'), { recursive: true });
  fs.symlinkSync(path.join('../..', sysDir), path.join(root, 'sys/dev/block', dev));
  const node = path.join(root, 'dev', name);
  w(`dev/${name}`, '');
  devices.set(node, { kind: 'block', device: dev });
  w(`blkid/${name}`, blkid);
  return node;
}

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-facts-'));
  // The stand-in blkid prints blkid/<name> and exits with blkid/<name>.rc (default 0).
  w('bin/blkid', `#!/bin/sh\nf="${root}/blkid/$(basename "$5")"\ncat "$f" 2>/dev/null\nif [ -f "$f.rc" ]; then exit $(cat "$f.rc"); fi\n[ -f "$f" ] || exit 2\nexit 0\n`);
  fs.chmodSync(path.join(root, 'bin/blkid'), 0o755);

  w(`sys/${USB_DISK}/removable`, '1\n');
  blockDev('sdb1', `${USB_DISK}/sdb1`, '8:17', 'DEVNAME=x\nLABEL=MY\\ STICK\nUUID=1234-ABCD\nTYPE=vfat\nUSAGE=filesystem\nPART_ENTRY_UUID=0a1b2c3d-01\nPART_ENTRY_NAME=data\n', { partition: true });
  w(`sys/${SATA_DISK}/removable`, '0\n');
  blockDev('sda2', `${SATA_DISK}/sda2`, '8:2', 'UUID=3f1c9a52-8c1e-4c55-9d0e-2b7a1f0e4d11\nTYPE=ext4\nLABEL=home\n', { partition: true });
  blockDev('nvme0n1', NVME_DISK, '259:0', 'TYPE=xfs\nUUID=aaaa\n');
  blockDev('mmcblk0', MMC_DISK, '179:0', 'TYPE=exfat\nUUID=5555-6666\n');
  // dm-crypt on the USB stick's partition
  blockDev('dm-0', 'devices/virtual/block/dm-0', '254:0', 'TYPE=ext4\nUUID=cafe\n');
  fs.mkdirSync(path.join(root, 'sys/devices/virtual/block/dm-0/slaves'), { recursive: true });
  fs.symlinkSync(path.join(root, 'sys', USB_DISK, 'sdb1'), path.join(root, 'sys/devices/virtual/block/dm-0/slaves/sdb1'));
  // a loop device backed by an image that fstab names
  blockDev('loop3', 'devices/virtual/block/loop3', '7:3', 'TYPE=ext4\nUUID=beef\n');
  w('srv/disk.img', '');
  w('sys/devices/virtual/block/loop3/loop/backing_file', `${root}/srv/disk.img\n`);
  // a device sysfs does not know, which udev says is on ATA
  w('dev/odd', '');
  devices.set(path.join(root, 'dev/odd'), { kind: 'block', device: '8:48' });
  w('blkid/odd', 'TYPE=ext4\n');
  w('udev/b8:48', 'S:disk/by-id/ata-X\nE:ID_BUS=ata\nE:ID_TYPE=disk\n');
  // probe outcomes
  blockDev('poly', 'devices/virtual/block/poly', '7:9', '');
  w('blkid/poly.rc', '8');
  blockDev('blank', 'devices/virtual/block/blank', '7:10', '');
  w('blkid/blank.rc', '2');
  blockDev('disk', 'devices/virtual/block/disk', '7:11', 'PTUUID=x\nPTTYPE=gpt\n');
  w('img/stick.img', '');
  w('blkid/stick.img', 'TYPE=vfat\nLABEL=IMG\n');
  fs.mkdirSync(path.join(root, 'by-label'));
  fs.symlinkSync(path.join(root, 'dev/sda2'), path.join(root, 'by-label/home'));

  w('fstab', [
    '# <file system> <mount point> <type> <options> <dump> <pass>',
    'UUID=3F1C9A52-8C1E-4C55-9D0E-2B7A1F0E4D11 /home ext4 defaults 0 2',
    'LABEL=MY\\040STICK /mnt/my\\040stick vfat noauto 0 0',
    `${root}/srv/disk.img /srv/img ext4 loop 0 0`,
    'PARTUUID=0a1b2c3d-01 /mnt/part vfat noauto 0 0',
    `${root}/by-label/home /mnt/home-by-path ext4 defaults 0 0`,
    'UUID=aaaa none swap sw 0 0',
    '',
  ].join('\n'));
  w('passwd', 'root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n');
  w('group', 'root:x:0:\ndisk:x:6:alice\nalice:x:1000:\n');

  env = {
    sysfs: path.join(root, 'sys'),
    udevData: path.join(root, 'udev'),
    fstab: path.join(root, 'fstab'),
    blkid: path.join(root, 'bin/blkid'),
    passwd: path.join(root, 'passwd'),
    group: path.join(root, 'group'),
    stat: (p) => devices.get(p) ?? (fs.existsSync(p) ? { kind: 'image' } : null),
  };
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function req(source: string, extra: Partial<MountRequest> = {}): MountRequest {
  return { source: path.isAbsolute(source) ? source : path.join(root, source), options: [], caller: { uid: 1000, gid: 1000, groups: [6] }, ...extra };
}

describe('probe facts (blkid -p)', () => {
  it('type, UUID, label (unescaped), partition UUID, each with its source', () => {
    const f = gatherFacts(req('dev/sdb1'), env);
    expect(f.type).toEqual({ value: 'vfat', source: 'blkid -p' });
    expect(f.uuid.value).toBe('1234-ABCD');
    expect(f.label.value).toBe('MY STICK');
    expect(f.partuuid.value).toBe('0a1b2c3d-01');
    expect(f.partlabel.value).toBe('data');
    expect(f.usage.value).toBe('filesystem');
  });

  it('the caller -t is recorded as a request, and a mismatch is noted, never believed', () => {
    const f = gatherFacts(req('dev/sdb1', { requestedType: 'ext4' }), env);
    expect(f.type.value).toBe('vfat');
    expect(f.requestedType).toEqual({ value: 'ext4', source: 'caller -t' });
    expect(f.notes).toContain(`the caller asked for -t ext4 but ${root}/dev/sdb1 holds vfat; the probed type decides`);
    expect(gatherFacts(req('dev/sdb1', { requestedType: 'auto' }), env).notes).toEqual([]);
  });

  it.each([
    ['poly', /more than one filesystem signature found/],
    ['blank', /no filesystem signature found/],
    ['disk', /holds a gpt partition table, not a filesystem/],
  ])('%s: no type, and why', (name, why) => {
    const f = gatherFacts(req(`dev/${name}`), env);
    expect(f.type.value).toBeNull();
    expect(f.type.source).toMatch(why);
    expect(f.notes.join('\n')).toMatch(why);
  });

  it('a missing blkid binary is reported, not thrown', () => {
    const f = gatherFacts(req('dev/sdb1'), { ...env, blkid: path.join(root, 'bin/nope') });
    expect(f.type.value).toBeNull();
    expect(f.type.source).toMatch(/cannot run .*nope: ENOENT/);
  });

  it('a replacement probe is used and named', () => {
    const f = gatherFacts(req('dev/sdb1'), { ...env, probe: () => ({ tags: { TYPE: 'EXFAT' }, problem: null }), probeName: 'libblkid' });
    expect(f.type).toEqual({ value: 'exfat', source: 'libblkid' });
  });

  it('parses blkid export escapes', () => {
    expect(parseExport('LABEL=a\\ b\\$\\"\nTYPE=ext4\nnoise\n')).toEqual({ LABEL: 'a b$"', TYPE: 'ext4' });
  });
});

describe('device facts (sysfs, udev)', () => {
  it.each([
    ['dev/sdb1', 'usb', true, /usb2/],
    ['dev/sda2', 'ata', false, /ata1/],
    ['dev/nvme0n1', 'nvme', false, /nvme0n1/],
    ['dev/mmcblk0', 'mmc', false, /mmc0/],
  ])('%s: bus %s, removable %s', (src, bus, removable, busSource) => {
    const f = gatherFacts(req(src), env);
    expect(f.kind.value).toBe('block');
    expect(f.bus.value).toBe(bus);
    expect(f.bus.source).toMatch(busSource);
    expect(f.removable.value).toBe(removable);
    expect(f.loop.value).toBe(false);
  });

  it('a partition takes the removable flag of its disk', () => {
    const f = gatherFacts(req('dev/sdb1'), env);
    expect(f.removable.source).toBe(`sysfs ${path.join(root, 'sys', USB_DISK, 'removable')}`);
  });

  it('dm-crypt on a USB stick is a USB stick', () => {
    const f = gatherFacts(req('dev/dm-0'), env);
    expect(f.bus.value).toBe('usb');
    expect(f.bus.source).toMatch(/beneath dm-0/);
    expect(f.removable.value).toBe(true);
  });

  it('loop devices: bus virtual, loop true, backing file', () => {
    const f = gatherFacts(req('dev/loop3'), env);
    expect(f.bus.value).toBe('virtual');
    expect(f.loop.value).toBe(true);
    expect(f.backingFile).toEqual({ value: `${root}/srv/disk.img`, source: `sysfs ${path.join(root, 'sys/devices/virtual/block/loop3/loop/backing_file')}` });
  });

  it('udev ID_BUS is used when sysfs does not know the device', () => {
    const f = gatherFacts(req('dev/odd'), env);
    expect(f.bus).toEqual({ value: 'ata', source: `udev ID_BUS (${path.join(root, 'udev/b8:48')})` });
    expect(f.udevBus.value).toBe('ata');
  });

  it('image files: kind image, bus virtual, not removable', () => {
    const f = gatherFacts(req('img/stick.img'), env);
    expect(f).toMatchObject({ kind: { value: 'image' }, bus: { value: 'virtual' }, removable: { value: false }, loop: { value: false }, type: { value: 'vfat' } });
  });

  it('a missing source is kind missing and is not probed', () => {
    const f = gatherFacts(req('dev/none'), env);
    expect(f.kind.value).toBe('missing');
    expect(f.type.value).toBeNull();
    expect(f.path.value).toBeNull();
  });

  it.each([
    ['devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/host3/target3:0:0/3:0:0:0/block/sdc', 'usb'],
    ['devices/pci0000:00/0000:00:01.0/virtio2/block/vda', 'virtio'],
    ['devices/pci0000:00/0000:00:10.0/host2/target2:0:0/2:0:0:0/block/sdd', 'scsi'],
    ['devices/virtual/block/loop0', 'virtual'],
    ['devices/platform/foo/block/bar', 'unknown'],
  ])('bus of %s is %s', (p, bus) => {
    expect(busFromDevPath(p)).toBe(bus);
  });
});

describe('/etc/fstab', () => {
  it.each([
    ['UUID= (case-insensitive)', 'dev/sda2', '/home', 2],
    ['LABEL= with an escaped space', 'dev/sdb1', '/mnt/my stick', 3],
    ['the image file behind a loop device', 'dev/loop3', '/srv/img', 4],
    ['PARTUUID=', 'dev/sdb1', '/mnt/part', 5],
    ['a path through a symlink', 'dev/sda2', '/mnt/home-by-path', 6],
    ['a mountpoint with a trailing slash', 'dev/sda2', '/home/', 2],
  ])('matches by %s', (_how, src, mnt, line) => {
    const f = gatherFacts(req(src, { mountpoint: mnt }), env);
    expect(f.fstab).toEqual({ value: true, source: `${env.fstab} line ${line}`, line });
  });

  it('the mountpoint must match too', () => {
    const f = gatherFacts(req('dev/sda2', { mountpoint: '/mnt/elsewhere' }), env);
    expect(f.fstab.value).toBe(false);
    expect(f.fstab.source).toMatch(/no line names this source and mountpoint/);
  });

  it('without a mountpoint, the source alone is matched and that is said', () => {
    const f = gatherFacts(req('dev/sda2'), env);
    expect(f.fstab).toEqual({ value: true, source: `${env.fstab} line 2 (source only: no mountpoint given)`, line: 2 });
  });

  it('swap lines never match; unknown sources do not match', () => {
    expect(gatherFacts(req('dev/nvme0n1'), env).fstab.value).toBe(false);
    expect(gatherFacts(req('img/stick.img', { mountpoint: '/home' }), env).fstab.value).toBe(false);
  });

  it('an unreadable fstab is "not listed", with the reason', () => {
    const f = gatherFacts(req('dev/sda2', { mountpoint: '/home' }), { ...env, fstab: path.join(root, 'no-fstab') });
    expect(f.fstab.value).toBe(false);
    expect(f.fstab.source).toMatch(/unreadable \(ENOENT\)/);
  });

  it('parses fields, comments and octal escapes', () => {
    expect(parseFstab('# c\n\n/dev/a\t/mnt/a\\040b  ext4 ro 0 0\n/dev/b /b\n')).toEqual([
      { spec: '/dev/a', target: '/mnt/a b', type: 'ext4', options: 'ro', line: 3 },
      { spec: '/dev/b', target: '/b', type: 'auto', options: 'defaults', line: 4 },
    ]);
  });
});

describe('caller facts', () => {
  it('uid, gid and groups with names from passwd and group', () => {
    const f = gatherFacts(req('dev/sdb1'), env);
    expect(f.user.value).toEqual({ id: 1000, name: 'alice' });
    expect(f.groups.value).toEqual([{ id: 1000, name: 'alice' }, { id: 6, name: 'disk' }]);
  });

  it('ids without a name keep their number', () => {
    const f = gatherFacts(req('dev/sdb1', { caller: { uid: 4242, gid: 4242, groups: [] } }), env);
    expect(f.user.value).toEqual({ id: 4242, name: null });
    expect(f.groups.value).toEqual([{ id: 4242, name: null }]);
  });

  it('uhelper= comes from the options, the last one wins', () => {
    const f = gatherFacts(req('dev/sdb1', { options: ['rw', 'uhelper=foo', 'nosuid', 'uhelper=udisks2'] }), env);
    expect(f.uhelper).toEqual({ value: 'udisks2', source: 'caller -o uhelper=' });
    expect(f.options.value).toEqual(['rw', 'uhelper=foo', 'nosuid', 'uhelper=udisks2']);
  });

  it('has_backend says whether a sandboxed backend serves the type', () => {
    expect(gatherFacts(req('dev/sdb1'), env).hasBackend.value).toBe(true);
    expect(gatherFacts(req('dev/nvme0n1'), env).hasBackend.value).toBe(false);
  });
});
