/**
 * The fail-closed rule exists twice: in TypeScript (policy/load.ts
 * failClosedPolicy(), what the helper uses when the policy does not load) and
 * in POSIX sh (helper/mount-launcher.sh, what mount(8)'s entry points do when
 * Node cannot run at all). Both are held here to one table of cases, on one
 * made-up machine: a sysfs tree, real device nodes (mknod, root only) with
 * made-up numbers from the experimental range (240-254) so nothing real is
 * ever opened, and an fstab.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decide } from '../../policy/decide';
import { gatherFacts } from '../../policy/facts';
import { failClosedPolicy } from '../../policy/load';

const LAUNCHER = path.resolve(__dirname, '../../helper/mount-launcher.sh');

const SATA = 'devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda';
const USB = 'devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb';
const USB_FIXED = 'devices/pci0000:00/0000:00:14.0/usb3/3-1/3-1:1.0/host7/target7:0:0/7:0:0:0/block/sdc';
const MMC = 'devices/platform/soc/fe340000.mmc/mmc_host/mmc0/mmc0:0001/block/mmcblk0';
const NVME = 'devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1';

interface Case {
  name: string;
  /** the node under dev/ */
  source: string;
  /** where the mount goes; fstab lists each source with /mnt/<source> */
  mountpoint?: string;
  expect: 'kernel' | 'deny';
}

/** The table both copies answer. */
const CASES: Case[] = [
  { name: 'fixed SATA partition listed in fstab', source: 'sda2', expect: 'kernel' },
  { name: 'fixed SATA partition, other mountpoint', source: 'sda2', mountpoint: '/mnt/elsewhere', expect: 'deny' },
  { name: 'fixed SATA partition not in fstab', source: 'sda3', expect: 'deny' },
  { name: 'NVMe disk listed in fstab', source: 'nvme0n1', expect: 'kernel' },
  { name: 'zram (virtual, fixed) listed in fstab', source: 'zram0', expect: 'kernel' },
  { name: 'dm over a fixed disk listed in fstab', source: 'dm-1', expect: 'kernel' },
  { name: 'removable USB stick listed in fstab', source: 'sdb1', expect: 'deny' },
  { name: 'USB disk that says it is not removable', source: 'sdc1', expect: 'deny' },
  { name: 'SD card listed in fstab', source: 'mmcblk0', expect: 'deny' },
  { name: 'loop device listed in fstab', source: 'loop3', expect: 'deny' },
  { name: 'dm over a loop device listed in fstab', source: 'dm-0', expect: 'deny' },
  { name: 'dm over a USB partition listed in fstab', source: 'dm-2', expect: 'deny' },
  { name: 'image file listed in fstab', source: 'disk.img', expect: 'deny' },
];

let root = '';
let n = 0;

function w(rel: string, content: string): void {
  const p = path.join(root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
}

/** A block device: its sysfs directory, the /sys/dev/block link, and a real node under dev/. */
function blockDev(name: string, sysDir: string, opts: { removable?: boolean; partition?: boolean } = {}): void {
  const dev = `${240 + Math.floor(n / 200)}:${n++ % 200}`;
  w(`sys/${sysDir}/dev`, `${dev}\n`);
  if (opts.partition) w(`sys/${sysDir}/partition`, '1\n');
  else w(`sys/${sysDir}/removable`, opts.removable ? '1\n' : '0\n');
  fs.mkdirSync(path.join(root, 'sys/dev/block'), { recursive: true });
  fs.symlinkSync(path.join('../..', sysDir), path.join(root, 'sys/dev/block', dev));
  fs.mkdirSync(path.join(root, 'dev'), { recursive: true });
  const r = spawnSync('mknod', [path.join(root, 'dev', name), 'b', ...dev.split(':')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mknod ${name}: ${r.stderr}`);
}

function stackOn(upper: string, lowerSysDir: string, lowerName: string): void {
  fs.mkdirSync(path.join(root, `sys/devices/virtual/block/${upper}/slaves`), { recursive: true });
  fs.symlinkSync(path.join(root, 'sys', lowerSysDir), path.join(root, `sys/devices/virtual/block/${upper}/slaves/${lowerName}`));
}

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-failclosed-'));
  w(`sys/${SATA}/removable`, '0\n');
  blockDev('sda2', `${SATA}/sda2`, { partition: true });
  blockDev('sda3', `${SATA}/sda3`, { partition: true });
  blockDev('nvme0n1', NVME);
  blockDev('zram0', 'devices/virtual/block/zram0');
  w(`sys/${USB}/removable`, '1\n');
  blockDev('sdb1', `${USB}/sdb1`, { partition: true });
  w(`sys/${USB_FIXED}/removable`, '0\n');
  blockDev('sdc1', `${USB_FIXED}/sdc1`, { partition: true });
  blockDev('mmcblk0', MMC);
  blockDev('loop3', 'devices/virtual/block/loop3');
  blockDev('dm-0', 'devices/virtual/block/dm-0');
  stackOn('dm-0', 'devices/virtual/block/loop3', 'loop3');
  blockDev('dm-1', 'devices/virtual/block/dm-1');
  stackOn('dm-1', `${SATA}/sda2`, 'sda2');
  blockDev('dm-2', 'devices/virtual/block/dm-2');
  stackOn('dm-2', `${USB}/sdb1`, 'sdb1');
  w('dev/disk.img', '');
  const sources = [...new Set(CASES.map((c) => c.source))].filter((s) => s !== 'sda3');
  for (const s of sources) fs.mkdirSync(path.join(root, 'mnt', s), { recursive: true });
  fs.mkdirSync(path.join(root, 'mnt/elsewhere'));
  w('fstab', sources.map((s) => `${root}/dev/${s} ${root}/mnt/${s} ext4 defaults 0 2`).join('\n') + '\n');
});

afterAll(() => {
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

function mountpointOf(c: Case): string {
  return path.join(root, c.mountpoint ?? `/mnt/${c.source}`);
}

/** The TypeScript copy: facts from the made-up machine, decided by the fail-closed policy. */
function tsVerdict(c: Case): { action: string; reason: string } {
  const facts = gatherFacts(
    { source: path.join(root, 'dev', c.source), mountpoint: mountpointOf(c), requestedType: 'ext4', options: [], caller: { uid: 0, gid: 0, groups: [] } },
    {
      sysfs: path.join(root, 'sys'),
      udevData: path.join(root, 'udev'),
      fstab: path.join(root, 'fstab'),
      probe: () => ({ tags: { TYPE: 'ext4' }, problem: null }),
    },
  );
  const d = decide(failClosedPolicy('test: no policy'), facts);
  return { action: d.action, reason: d.reason };
}

/** The sh copy: the launcher in fail-closed mode, with -f (decide, do not mount) and -n. */
function shVerdict(c: Case): { action: string; stderr: string; kmsg: string } {
  const kmsg = path.join(root, `kmsg-${c.source}-${path.basename(mountpointOf(c))}`);
  fs.writeFileSync(kmsg, '');
  const bin = path.join(root, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  const link = path.join(bin, 'mount.ext4');
  if (!fs.existsSync(link)) fs.symlinkSync(LAUNCHER, link);
  const r = spawnSync(link, [path.join(root, 'dev', c.source), mountpointOf(c), '-fn', '-o', 'rw'], {
    encoding: 'utf8',
    env: {
      PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
      FUSEGATE_LAUNCHER_FORCE_FALLBACK: 'node was not found',
      FUSEGATE_SYSFS: path.join(root, 'sys'),
      FUSEGATE_FSTAB: path.join(root, 'fstab'),
      FUSEGATE_KMSG: kmsg,
    },
    timeout: 10_000,
  });
  const action = r.status === 0 ? 'kernel' : r.status === 32 ? 'deny' : `exit ${r.status}: ${r.stderr}`;
  return { action, stderr: r.stderr, kmsg: fs.readFileSync(kmsg, 'utf8') };
}

describe('the fail-closed rule, in TypeScript and in the launcher', () => {
  it.each(CASES)('$name: $expect', (c) => {
    const ts = tsVerdict(c);
    const sh = shVerdict(c);
    expect(ts.action, `TypeScript: ${ts.reason}`).toBe(c.expect);
    expect(sh.action, `launcher: ${sh.stderr}`).toBe(c.expect);
    // One line on stderr that says why and how to repair, and one kernel-log line.
    const lines = sh.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(c.expect === 'kernel' ? /node was not found; .* mounting it with the kernel driver; repair: / : /refused: .*; repair: /);
    expect(sh.kmsg).toMatch(c.expect === 'kernel' ? /^<4>fusegate: launcher fail-closed: .* kernel driver/ : /^<4>fusegate: launcher fail-closed: refused /);
  });

  it('the launcher names the reason it refused', () => {
    expect(shVerdict({ name: '', source: 'loop3', expect: 'deny' }).stderr).toMatch(/loop3 is a loop device/);
    expect(shVerdict({ name: '', source: 'dm-0', expect: 'deny' }).stderr).toMatch(/loop3 is a loop device/);
    expect(shVerdict({ name: '', source: 'sdb1', expect: 'deny' }).stderr).toMatch(/sdb is removable/);
    expect(shVerdict({ name: '', source: 'sdc1', expect: 'deny' }).stderr).toMatch(/sdc is on usb/);
    expect(shVerdict({ name: '', source: 'disk.img', expect: 'deny' }).stderr).toMatch(/is not a block device/);
    expect(shVerdict({ name: '', source: 'sda3', expect: 'deny' }).stderr).toMatch(/is not listed in .*fstab/);
  });
});
