/**
 * Which block devices are fixed internal disks, on a made-up machine: a
 * synthetic sysfs tree in a temp dir with loop devices, dm and md stacked on
 * them, a USB disk, NVMe drives behind Thunderbolt/USB4 (each way the kernel
 * shows that), fixed SATA and NVMe disks, zram, and a partition of each.
 * Also how an fstab line matched, and who can write an image.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { specMatch, type Identity } from '../../policy/etc';
import { validatePolicyText } from '../../policy/validate';
import { decide } from '../../policy/decide';
import { parsePolicy } from '../../policy/load';
import { syntheticFacts } from '../../policy/synthetic';
import { gatherFacts, type FactEnv, type SourceStat } from '../../policy/facts';
import { fixedDisk, isPciFunction, numbered } from '../../policy/fixed-disk';
import { devString } from '../../policy/image-owner';
import type { MountRequest } from '../../policy/types';

let root: string;
let sys: string;
const devices = new Map<string, SourceStat>();

const PCI = 'devices/pci0000:00';
const SATA = `${PCI}/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda`;
const NVME = `${PCI}/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1`;
const USB = `${PCI}/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb`;
// Thunderbolt, as firmware declares it: the root port is external-facing, so
// the kernel marks what is behind it removable.
const TB_REMOVABLE = `${PCI}/0000:00:07.0/0000:05:00.0/nvme/nvme1/nvme1n1`;
// USB4 with the software connection manager: the root port carrying the
// tunnels has a device link to the host interface (NHI) that owns domain0.
const TB_LINKED = `${PCI}/0000:00:07.2/0000:06:00.0/nvme/nvme2/nvme2n1`;
const NHI_INTEGRATED = `${PCI}/0000:00:0d.2`;
// A discrete Thunderbolt 3 controller: its upstream port 02:00.0 carries
// both the host interface (03:00.0 → 07:00.0, domain1) and the tunnels.
const TB_DISCRETE = `${PCI}/0000:00:1c.4/0000:02:00.0/0000:03:01.0/0000:04:00.0/nvme/nvme3/nvme3n1`;
const NHI_DISCRETE = `${PCI}/0000:00:1c.4/0000:02:00.0/0000:03:00.0/0000:07:00.0`;

function w(rel: string, content: string): void {
  const p = path.join(root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
}

function link(target: string, at: string): void {
  fs.mkdirSync(path.dirname(path.join(root, at)), { recursive: true });
  fs.symlinkSync(path.relative(path.dirname(path.join(root, at)), path.join(root, target)), path.join(root, at));
}

/** A block device: sysfs directory, /sys/dev/block link, and a node the stat hook calls a block device. */
function blockDev(sysDir: string, dev: string, opts: { removable?: boolean; partition?: boolean } = {}): void {
  w(`sys/${sysDir}/dev`, `${dev}\n`);
  if (opts.partition) w(`sys/${sysDir}/partition`, '1\n');
  else w(`sys/${sysDir}/removable`, opts.removable ? '1\n' : '0\n');
  link(`sys/${sysDir}`, `sys/dev/block/${dev}`);
  const name = path.basename(sysDir);
  w(`dev/${name}`, '');
  devices.set(path.join(root, 'dev', name), { kind: 'block', device: dev });
}

function slave(holder: string, lower: string): void {
  link(`sys/${lower}`, `sys/${holder}/slaves/${path.basename(lower)}`);
}

const V = 'devices/virtual/block';

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-fixed-'));
  sys = path.join(root, 'sys');
  blockDev(SATA, '8:0');
  blockDev(`${SATA}/sda1`, '8:1', { partition: true });
  blockDev(NVME, '259:0');
  blockDev(`${NVME}/nvme0n1p1`, '259:1', { partition: true });
  blockDev(USB, '8:16');
  blockDev(`${USB}/sdb1`, '8:17', { partition: true });
  blockDev(TB_REMOVABLE, '259:2');
  blockDev(`${TB_REMOVABLE}/nvme1n1p1`, '259:3', { partition: true });
  w(`sys/${PCI}/0000:00:07.0/0000:05:00.0/removable`, 'removable\n');
  w(`sys/${PCI}/0000:00:1d.0/0000:3d:00.0/removable`, 'fixed\n');
  blockDev(TB_LINKED, '259:4');
  blockDev(`${TB_LINKED}/nvme2n1p1`, '259:5', { partition: true });
  fs.mkdirSync(path.join(root, 'sys', NHI_INTEGRATED, 'domain0'), { recursive: true });
  link(`sys/${NHI_INTEGRATED}/domain0`, 'sys/bus/thunderbolt/devices/domain0');
  link(`sys/${NHI_INTEGRATED}`, 'sys/devices/virtual/devlink/pci:0000:00:0d.2--pci:0000:00:07.2/supplier');
  link(`sys/${PCI}/0000:00:07.2`, 'sys/devices/virtual/devlink/pci:0000:00:0d.2--pci:0000:00:07.2/consumer');
  link('sys/devices/virtual/devlink/pci:0000:00:0d.2--pci:0000:00:07.2', `sys/${PCI}/0000:00:07.2/supplier:pci:0000:00:0d.2`);
  blockDev(TB_DISCRETE, '259:6');
  blockDev(`${TB_DISCRETE}/nvme3n1p1`, '259:7', { partition: true });
  fs.mkdirSync(path.join(root, 'sys', NHI_DISCRETE, 'domain1'), { recursive: true });
  link(`sys/${NHI_DISCRETE}/domain1`, 'sys/bus/thunderbolt/devices/domain1');
  // NVMe native multipath: the block device sits under nvme-subsystem, its controller behind Thunderbolt
  blockDev('devices/virtual/nvme-subsystem/nvme-subsys4/nvme4n1', '259:8');
  fs.mkdirSync(path.join(root, 'sys', PCI, '0000:00:07.0/0000:05:00.0/nvme/nvme4'), { recursive: true });
  link(`sys/${PCI}/0000:00:07.0/0000:05:00.0/nvme/nvme4`, 'sys/devices/virtual/nvme-subsystem/nvme-subsys4/nvme4');
  // …and one whose controller is the fixed NVMe's
  blockDev('devices/virtual/nvme-subsystem/nvme-subsys5/nvme5n1', '259:9');
  fs.mkdirSync(path.join(root, 'sys', PCI, '0000:00:1d.0/0000:3d:00.0/nvme/nvme5'), { recursive: true });
  link(`sys/${PCI}/0000:00:1d.0/0000:3d:00.0/nvme/nvme5`, 'sys/devices/virtual/nvme-subsystem/nvme-subsys5/nvme5');

  blockDev(`${V}/loop0`, '7:0');
  blockDev(`${V}/loop0/loop0p1`, '259:20', { partition: true });
  blockDev(`${V}/loop1`, '7:1');
  blockDev(`${V}/dm-1`, '254:1');
  slave(`${V}/dm-1`, `${V}/loop0`);
  blockDev(`${V}/dm-2`, '254:2');
  slave(`${V}/dm-2`, `${V}/loop0/loop0p1`);
  blockDev(`${V}/md0`, '9:0');
  slave(`${V}/md0`, `${SATA}/sda1`);
  slave(`${V}/md0`, `${V}/loop1`);
  blockDev(`${V}/md1`, '9:1');
  slave(`${V}/md1`, `${SATA}/sda1`);
  slave(`${V}/md1`, `${NVME}/nvme0n1p1`);
  blockDev(`${V}/dm-3`, '254:3'); // LUKS on the fixed NVMe's partition
  slave(`${V}/dm-3`, `${NVME}/nvme0n1p1`);
  blockDev(`${V}/dm-4`, '254:4'); // LVM on LUKS on the USB disk
  blockDev(`${V}/dm-5`, '254:5');
  slave(`${V}/dm-5`, `${USB}/sdb1`);
  slave(`${V}/dm-4`, `${V}/dm-5`);
  blockDev(`${V}/dm-8`, '254:8'); // a slaves/ cycle sysfs never shows, which must not hang us
  blockDev(`${V}/dm-9`, '254:9');
  slave(`${V}/dm-8`, `${V}/dm-9`);
  slave(`${V}/dm-9`, `${V}/dm-8`);
  blockDev(`${V}/zram0`, '252:0');
  blockDev(`${V}/nbd0`, '43:0');
  blockDev(`${V}/ublkb0`, '259:30');
  blockDev(`${V}/weird0`, '240:0');
  blockDev(`${SATA.replace('sda', 'sdc').replace('0:0:0:0', '0:0:1:0')}`, '8:32', { removable: true });
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describe('fixed internal disks (synthetic sysfs)', () => {
  it.each([
    ['8:0', 'a SATA disk', /ata, not removable/],
    ['8:1', 'a SATA partition', /block\/sda: ata, not removable/],
    ['259:0', 'an NVMe disk', /nvme0n1: nvme, not removable/],
    ['259:1', 'an NVMe partition', /nvme0n1: nvme, not removable/],
    ['259:9', 'a multipath NVMe namespace on an internal controller', /nvme5n1: nvme, not removable/],
    ['9:1', 'md RAID1 over a SATA and an NVMe partition', /^md1 is stacked on fixed disks only: (sda1|nvme0n1p1) .*; (sda1|nvme0n1p1) /],
    ['254:3', 'LUKS on an NVMe partition', /dm-3 is stacked on fixed disks only: nvme0n1p1/],
    ['252:0', 'zram', /a zram device \(only root creates and fills one\)/],
  ])('%s is fixed (%s)', (dev, _what, why) => {
    const r = fixedDisk(sys, dev);
    expect(r.fixed).toBe(true);
    expect(r.why).toMatch(why);
  });

  it.each([
    ['7:0', 'a loop device', /loop0: a loop device/],
    ['259:20', 'a partition of a loop device', /loop0: a loop device/],
    ['254:1', 'dm on a loop device', /^dm-1 is stacked on loop0: sysfs .*loop0: a loop device/],
    ['254:2', 'dm on a loop device partition', /^dm-2 is stacked on loop0p1: sysfs .*loop0: a loop device/],
    ['9:0', 'md over a SATA partition and a loop device', /^md0 is stacked on loop1: .*a loop device/],
    ['254:4', 'LVM on LUKS on a USB disk', /^dm-4 is stacked on dm-5: dm-5 is stacked on sdb1: .*on usb, a hot-plug bus/],
    ['8:16', 'a USB disk (removable=0)', /on usb, a hot-plug bus/],
    ['8:17', 'a USB disk partition', /block\/sdb: on usb, a hot-plug bus/],
    ['8:32', 'a removable SCSI medium', /sdc\/removable: 1 \(removable medium\)/],
    ['259:2', 'NVMe behind an external-facing port', /0000:05:00\.0\/removable: removable \(behind an external-facing PCIe port: Thunderbolt\/USB4\)/],
    ['259:3', 'its partition', /0000:05:00\.0\/removable: removable/],
    ['259:4', 'NVMe on a USB4 root port (device link)', /supplier:pci:0000:00:0d\.2: PCIe port tunnelled by the Thunderbolt\/USB4 host interface 0000:00:0d\.2 \(domain0\)/],
    ['259:5', 'its partition', /tunnelled by the Thunderbolt\/USB4 host interface/],
    ['259:6', 'NVMe behind a discrete Thunderbolt 3 controller', /0000:02:00\.0: PCIe switch port shared with the Thunderbolt host interface of domain1/],
    ['259:7', 'its partition', /shared with the Thunderbolt host interface of domain1/],
    ['259:8', 'a multipath NVMe namespace on a Thunderbolt controller', /0000:05:00\.0\/removable: removable/],
    ['43:0', 'a network block device', /nbd0: a network block device/],
    ['259:30', 'a ublk device', /ublkb0: a ublk device/],
    ['240:0', 'an unknown virtual device', /weird0: a virtual device with nothing beneath it that fusegate does not know to be fixed/],
    ['254:8', 'a slaves/ cycle', /stacked more than 8 devices deep/],
    ['1:99', 'a device sysfs does not know', /\(absent\): sysfs does not know the device/],
  ])('%s is not fixed (%s)', (dev, _what, why) => {
    const r = fixedDisk(sys, dev);
    expect(r.fixed).toBe(false);
    expect(r.why).toMatch(why);
  });
});

function req(source: string, extra: Partial<MountRequest> = {}): MountRequest {
  return { source: path.isAbsolute(source) ? source : path.join(root, source), options: [], caller: { uid: 0, gid: 0, groups: [] }, ...extra };
}

function env(extra: Partial<FactEnv> = {}): FactEnv {
  return {
    sysfs: sys,
    udevData: path.join(root, 'udev'),
    fstab: path.join(root, 'fstab'),
    passwd: path.join(root, 'passwd'),
    group: path.join(root, 'group'),
    stat: (p) => devices.get(p) ?? null,
    probe: () => ({ tags: { TYPE: 'ext4', LABEL: 'backup', UUID: 'c0ffee00-0000-4000-8000-000000000001' }, problem: null }),
    probeName: 'test probe',
    ...extra,
  };
}

describe('bus, removable and fixed_disk facts', () => {
  it.each([
    ['dev/nvme1n1', 'NVMe behind an external-facing port', /removable \(behind an external-facing PCIe port/],
    ['dev/nvme2n1p1', 'NVMe on a USB4 root port', /tunnelled by the Thunderbolt\/USB4 host interface/],
    ['dev/nvme3n1', 'NVMe behind a discrete controller', /shared with the Thunderbolt host interface of domain1/],
    ['dev/nvme4n1', 'a multipath namespace behind Thunderbolt', /removable \(behind an external-facing PCIe port/],
  ])('%s: bus thunderbolt, removable, not fixed (%s)', (src, _what, why) => {
    const f = gatherFacts(req(src), env());
    expect(f.bus.value).toBe('thunderbolt');
    expect(f.bus.source).toMatch(why);
    expect(f.removable).toMatchObject({ value: true, source: expect.stringMatching(why) });
    expect(f.fixedDisk).toMatchObject({ value: false, source: expect.stringMatching(why) });
  });

  it('dm on a Thunderbolt NVMe is on thunderbolt too', () => {
    fs.mkdirSync(path.join(sys, V, 'dm-6'), { recursive: true });
    blockDev(`${V}/dm-6`, '254:6');
    slave(`${V}/dm-6`, `${TB_LINKED}/nvme2n1p1`);
    const f = gatherFacts(req('dev/dm-6'), env());
    expect(f.bus.value).toBe('thunderbolt');
    expect(f.bus.source).toMatch(/\(beneath dm-6\)$/);
    expect(f.removable.value).toBe(true);
    expect(f.fixedDisk.value).toBe(false);
  });

  it.each([
    ['dev/sda1', 'ata'],
    ['dev/nvme0n1p1', 'nvme'],
    ['dev/zram0', 'virtual'],
  ])('%s: a fixed disk on %s', (src, bus) => {
    const f = gatherFacts(req(src), env());
    expect(f.bus.value).toBe(bus);
    expect(f.removable.value).toBe(false);
    expect(f.fixedDisk.value).toBe(true);
  });

  it('a loop device is never fixed, and the fact says so', () => {
    expect(gatherFacts(req('dev/loop0'), env()).fixedDisk).toEqual({
      value: false,
      source: `sysfs ${sys}/devices/virtual/block/loop0: a loop device: its content is whatever file was attached, and udisks2 lets local users attach their own`,
    });
    expect(gatherFacts(req('dev/dm-1'), env()).fixedDisk.source).toMatch(/^dm-1 is stacked on loop0/);
  });
});

describe('fstab_match: how the fstab line named the source', () => {
  const id: Identity = {
    source: '/dev/sda1', path: '/dev/sda1', backingFile: null,
    uuid: 'c0ffee00-0000-4000-8000-000000000001', label: 'backup', partuuid: '0a1b2c3d-01', partlabel: 'data',
  };
  it.each([
    ['UUID=C0FFEE00-0000-4000-8000-000000000001', 'uuid'],
    ['LABEL=backup', 'label'],
    ['LABEL="backup"', 'label'],
    ['PARTUUID=0a1b2c3d-01', 'partuuid'],
    ['PARTLABEL=data', 'partlabel'],
    ['/dev/sda1', 'path'],
    ['LABEL=other', null],
    ['/dev/sdz9', null],
  ])('%s → %s', (spec, how) => {
    expect(specMatch(spec, id)).toBe(how);
  });

  it.each([
    ['/dev/disk/by-label/backup', 'label'],
    ['/dev/disk/by-uuid/c0ffee00', 'uuid'],
    ['/dev/disk/by-partuuid/0a1b2c3d-01', 'partuuid'],
    ['/dev/disk/by-partlabel/data', 'partlabel'],
    ['/dev/disk/by-id/ata-DISK_SERIAL-part1', 'id'],
    ['/dev/disk/by-path/pci-0000:00:17.0-ata-1-part1', 'path'],
  ])('the udev link %s counts as %s', (spec, how) => {
    expect(specMatch(spec, { ...id, source: spec })).toBe(how);
  });

  it('the fact names the fstab line and its spec; an image behind a loop device matches by path', () => {
    w('fstab', [
      'LABEL=backup /mnt/backup ext4 defaults 0 2',
      `${root}/img/disk.img /srv/img ext4 loop 0 0`,
      '',
    ].join('\n'));
    w('img/disk.img', '');
    w(`sys/${V}/loop0/loop/backing_file`, `${root}/img/disk.img\n`);
    const byLabel = gatherFacts(req('dev/loop0', { mountpoint: '/mnt/backup' }), env());
    expect(byLabel.fstab.value).toBe(true);
    expect(byLabel.fstabMatch).toEqual({ value: 'label', source: `${root}/fstab line 1: LABEL=backup` });
    const byPath = gatherFacts(req('dev/loop0', { mountpoint: '/srv/img' }), env());
    expect(byPath.fstabMatch).toEqual({ value: 'path', source: `${root}/fstab line 2: ${root}/img/disk.img` });
    const none = gatherFacts(req('dev/loop0', { mountpoint: '/elsewhere' }), env());
    expect(none.fstabMatch).toEqual({ value: null, source: `${root}/fstab: no line names this source and mountpoint` });
  });
});

describe('image_owner, image_mode, image_root_only', () => {
  let dir: string;
  let img: string;
  const identity = (p: string) => {
    const st = fs.statSync(p, { bigint: true });
    return { device: devString(st.dev), inode: st.ino };
  };

  beforeAll(() => {
    w('passwd', 'root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n');
    // A directory only root can change, under the test root (mkdtemp: 0700).
    dir = path.join(root, 'images');
    fs.mkdirSync(dir, { mode: 0o755 });
    img = path.join(dir, 'backup.img');
    fs.writeFileSync(img, 'x', { mode: 0o644 });
    fs.chmodSync(img, 0o644);
  });

  const asRoot = process.getuid?.() === 0;

  it.skipIf(!asRoot)('an image root owns and only root can write: root-only, from the very inode stat(2) saw', () => {
    const f = gatherFacts(req(img), env({ stat: undefined }));
    expect(f.kind.value).toBe('image');
    expect(f.imageOwner.value).toEqual({ id: 0, name: 'root' });
    expect(f.imageOwner.source).toBe(`fstat(2) of ${img} (the inode stat(2) of the source reports), name from ${root}/passwd`);
    expect(f.imageMode.value).toBe('0644');
    expect(f.imageRootOnly.value).toBe(true);
    expect(f.imageRootOnly.source).toMatch(/owner root, mode 0644, every directory above root's alone$/);
  });

  it.skipIf(!asRoot)('group or other write, another owner, or a directory others can write: not root-only', () => {
    fs.chmodSync(img, 0o664);
    expect(gatherFacts(req(img), env({ stat: undefined })).imageRootOnly).toMatchObject({ value: false, source: `${img} has mode 0664: writable by group or others` });
    fs.chmodSync(img, 0o644);
    fs.chownSync(img, 1000, 1000);
    const f = gatherFacts(req(img), env({ stat: undefined }));
    expect(f.imageOwner.value).toEqual({ id: 1000, name: 'alice' });
    expect(f.imageRootOnly).toMatchObject({ value: false, source: `${img} is owned by uid 1000` });
    fs.chownSync(img, 0, 0);
    fs.chmodSync(dir, 0o777);
    expect(gatherFacts(req(img), env({ stat: undefined })).imageRootOnly.source).toBe(`a directory above ${img} is not root's alone: ${dir} (mode 0777: writable by others)`);
    // Sticky, as /tmp: nobody else can rename or remove root's file.
    fs.chmodSync(dir, 0o1777);
    expect(gatherFacts(req(img), env({ stat: undefined })).imageRootOnly.value).toBe(true);
    fs.chmodSync(dir, 0o755);
  });

  it.skipIf(!asRoot)('the file behind a loop device, proved by the inode the loop device reports', () => {
    w(`sys/${V}/loop1/loop/backing_file`, `${img}\n`);
    const good = gatherFacts(req('dev/loop1'), env({ loopBacking: () => identity(img) }));
    expect(good.backingFile.value).toBe(img);
    expect(good.imageOwner.value).toEqual({ id: 0, name: 'root' });
    expect(good.imageRootOnly).toMatchObject({ value: true, source: expect.stringContaining(`fstat(2) of ${img} (the inode the test loop status reports)`) });
    // The path now names another file than the one attached.
    const other = path.join(dir, 'other.img');
    fs.writeFileSync(other, 'y', { mode: 0o644 });
    const swapped = gatherFacts(req('dev/loop1'), env({ loopBacking: () => identity(other) }));
    expect(swapped.imageRootOnly.value).toBe(false);
    expect(swapped.imageRootOnly.source).toMatch(/but the test loop status is inode \d+ on \d+:\d+: the file was replaced$/);
    const unknown = gatherFacts(req('dev/loop1'), env({ loopBacking: () => null }));
    expect(unknown.imageRootOnly).toEqual({ value: false, source: `cannot ask ${root}/dev/loop1 which file it serves (LOOP_GET_STATUS64)` });
  });

  it('a symlink where the backing file was is not the file', () => {
    const target = path.join(dir, 'target.img');
    fs.writeFileSync(target, 'z');
    fs.symlinkSync(target, path.join(dir, 'link.img'));
    w(`sys/${V}/loop1/loop/backing_file`, `${path.join(dir, 'link.img')}\n`);
    const f = gatherFacts(req('dev/loop1'), env({ loopBacking: () => identity(target) }));
    expect(f.imageRootOnly).toEqual({ value: false, source: `cannot open ${path.join(dir, 'link.img')}: ELOOP` });
    expect(f.imageOwner.value).toBeNull();
  });

  it('a block device that is not a loop device has no image', () => {
    const f = gatherFacts(req('dev/sda1'), env());
    expect(f.imageOwner).toEqual({ value: null, source: 'not a loop device: no image file' });
    expect(f.imageRootOnly.value).toBe(false);
  });
});

describe('policy check: kernel rules that trust what the content says', () => {
  const warnings = (rule: string) => validatePolicyText(`version: 1\nrules:\n  - name: t\n${rule.replace(/^/gm, '    ')}\n    action: kernel\n`, 'p.yaml')
    .diagnostics.map((d) => `${d.severity}: ${d.message}`);
  const WARN = "warning: rule 't' trusts the kernel driver on UUID or label alone; a USB stick can copy both";

  it.each([
    ['fstab alone (the rule finding 2 exploited)', 'match: { fstab: true }\nunless:\n  - removable: true\n  - bus: [usb, mmc, memstick, ieee1394, thunderbolt]'],
    ['fstab by label', 'match: { fstab: true, fstab_match: [label, path] }'],
    ['fstab with removable: false (loop devices are not removable)', 'match: { fstab: true, removable: false }'],
    ['a UUID on the virtual bus (loop devices are virtual)', 'match: { uuid: 1234-abcd, bus: [nvme, virtual] }'],
  ])('warns: %s', (_what, rule) => {
    expect(warnings(rule)).toEqual([WARN]);
  });

  it.each([
    ['fstab on a fixed disk', 'match: { fstab: true, fixed_disk: true }'],
    ['fstab by path on a root-only image', 'match: { fstab: true, fstab_match: [path], image_root_only: true }'],
    ['fstab by path or by-id', 'match: { fstab: true, fstab_match: [path, id] }'],
    ['a UUID on internal buses', 'match: { uuid: 1234-abcd, bus: [nvme, ata] }'],
    ['a label, unless not a fixed disk', 'match: { label: DATA }\nunless: { fixed_disk: false }'],
  ])('does not warn: %s', (_what, rule) => {
    expect(warnings(rule)).toEqual([]);
  });

  it('accepts the new keys with their values, and rejects unknown fstab_match values', () => {
    expect(warnings('match: { fstab: true, fixed_disk: true, image_owner: [root, 0], image_mode: ["0?44"], image_root_only: true }')).toEqual([]);
    const r = validatePolicyText('version: 1\nrules:\n  - name: t\n    match: { fstab_match: lable }\n    action: fuse\n', 'p.yaml');
    expect(r.diagnostics.map((d) => `${d.message} (${d.hint})`)).toEqual([
      "unknown fstab_match 'lable' (did you mean 'label'? known: path, uuid, label, partuuid, partlabel, id)",
    ]);
  });
});

describe('rules on the new facts', () => {
  const policy = parsePolicy(`version: 1
rules:
  - name: admins-images
    match: { kind: image, image_owner: [root], image_mode: ["0?00", "0?44"] }
    action: fuse
  - name: fixed-by-uuid
    match: { fixed_disk: true, fstab_match: [uuid] }
    action: kernel
`);
  it('image_owner matches by name or uid, image_mode by glob', () => {
    const img = { kind: 'image' as const, bus: 'virtual' as const, type: 'ext4' };
    expect(decide(policy, syntheticFacts({ ...img, imageOwner: { id: 0, name: 'root' }, imageMode: '0644' })).rule).toBe('admins-images');
    expect(decide(policy, syntheticFacts({ ...img, imageOwner: { id: 0, name: null }, imageMode: '0600' })).rule).toBe('default');
    expect(decide(policy, syntheticFacts({ ...img, imageOwner: { id: 1000, name: 'alice' }, imageMode: '0644' })).rule).toBe('default');
    expect(decide(policy, syntheticFacts({ ...img, imageOwner: { id: 0, name: 'root' }, imageMode: '0666' })).rule).toBe('default');
    const t = decide(policy, syntheticFacts({ ...img, imageOwner: null })).trace[0]!;
    expect(t.why).toContain('image_owner: (none) does not match root');
  });

  it('fixed_disk and fstab_match are shown in the trace', () => {
    const d = decide(policy, syntheticFacts({ bus: 'nvme', type: 'ext4', fstab: true, fstabMatch: 'uuid' }));
    expect(d).toMatchObject({ action: 'kernel', rule: 'fixed-by-uuid' });
    expect(d.trace[1]!.why).toEqual(['fixed_disk: true matches true', 'fstab_match: uuid matches uuid']);
  });
});

// The sysfs name tests that replaced regular expressions (policy/fixed-disk.ts):
// the exact edges the expressions had.
describe('sysfs name tests', () => {
  it('numbered: the prefix and one or more digits, nothing else', () => {
    expect(['usb1', 'usb12', 'loop0', 'nvme-subsys3'].map((n) => numbered(n, n.replace(/\d+$/, '')))).toEqual([true, true, true, true]);
    expect(numbered('usb', 'usb')).toBe(false);
    expect(numbered('usb1a', 'usb')).toBe(false);
    expect(numbered('xusb1', 'usb')).toBe(false);
    expect(numbered('loop-1', 'loop')).toBe(false);
    expect(numbered('nvme-subsys1', 'nvme')).toBe(false);
  });

  it('isPciFunction: domain:bus:device.function in lower-case hex, function 0-7', () => {
    expect(isPciFunction('0000:00:1f.2')).toBe(true);
    expect(isPciFunction('10de:af:00.7')).toBe(true);
    expect(isPciFunction('0000:00:1f.8')).toBe(false);
    expect(isPciFunction('0000:00:1F.2')).toBe(false);
    expect(isPciFunction('0000:00:1f')).toBe(false);
    expect(isPciFunction('0000:00:1f.2x')).toBe(false);
    expect(isPciFunction('pci0000:00')).toBe(false);
  });
});
