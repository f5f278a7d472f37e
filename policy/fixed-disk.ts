/**
 * Is a block device a fixed internal disk? The kernel driver is only as safe
 * as the bytes it parses, and on a fixed internal disk those bytes were put
 * there by the administrator. Everything else can hold content a user chose:
 * a loop device (udisks2 lets an active local user set one up on any image),
 * a device-mapper or md device stacked on one, a USB stick, an SD card, an
 * NVMe drive in a Thunderbolt/USB4 enclosure. A LABEL= or UUID= in fstab
 * proves nothing about them: both are copied from the content.
 *
 * Everything here is read from sysfs under a root the caller gives (tests
 * point it at a synthetic tree), and every answer says which sysfs path
 * decided it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Bus } from './types';
import { readAttributeOrNull } from '../lib/fs-or-null';

export interface FixedDisk {
  fixed: boolean;
  /** the sysfs path(s) that decided, and why */
  why: string;
}

/** Buses a device can be unplugged from (or plugged into) while the system runs. */
export const HOTPLUG_BUSES: readonly Bus[] = ['usb', 'mmc', 'memstick', 'ieee1394', 'thunderbolt'];
/** Buses of internal disks, once hot-plug ancestry has been ruled out. */
const INTERNAL_BUSES: readonly Bus[] = ['nvme', 'ata', 'scsi', 'virtio', 'xen'];

/*
 * Names in sysfs paths are told apart with plain string tests, not regular
 * expressions: this runs on every mount, and V8 compiles each regular
 * expression the helper meets (measured with callgrind: the tables below
 * as regular expressions cost the helper ~1 million instructions a mount).
 */

/** `name` is `prefix` and one or more decimal digits ("usb3" for "usb"). */
export function numbered(name: string, prefix: string): boolean {
  if (name.length <= prefix.length || !name.startsWith(prefix)) return false;
  for (let i = prefix.length; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** A sysfs name pattern: 'usb#' is "usb" and digits (numbered); anything else the exact name. */
function nameIs(name: string, pattern: string): boolean {
  return pattern.endsWith('#') ? numbered(name, pattern.slice(0, -1)) : name === pattern;
}

function isHex(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

/** A PCI function's directory name: domain:bus:device.function, as 0000:00:1f.2 */
export function isPciFunction(name: string): boolean {
  if (name.length !== 12 || name[4] !== ':' || name[7] !== ':' || name[10] !== '.') return false;
  const fn = name.charCodeAt(11);
  return isHex(name.slice(0, 4)) && isHex(name.slice(5, 7)) && isHex(name.slice(8, 10)) && fn >= 48 && fn <= 55;
}
/** Stacks deeper than this are refused rather than walked (and a slaves/ loop cannot hang us). */
const MAX_DEPTH = 8;

const read = readAttributeOrNull;

function list(dir: string): string[] {
  // Absent directories are the common case (no slaves/, no Thunderbolt):
  // existsSync answers without the cost of building an ENOENT error.
  if (!fs.existsSync(dir)) return [];
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

function resolve(p: string): string | null {
  try {
    return fs.realpathSync.native(p);
  } catch {
    return null;
  }
}

/** A partition's sysfs directory lives inside its disk's; the disk is what the rest is about. */
export function wholeDisk(dir: string): string {
  return fs.existsSync(path.join(dir, 'partition')) ? path.dirname(dir) : dir;
}

/** The devices directly beneath a stacked device (dm, md, bcache), each resolved. */
export function slavesOf(dir: string): string[] {
  return list(path.join(dir, 'slaves')).flatMap((n) => {
    const d = resolve(path.join(dir, 'slaves', n));
    return d === null ? [] : [d];
  });
}

/**
 * With native NVMe multipath the block device sits under
 * virtual/nvme-subsystem/nvme-subsysN, away from the PCI tree; its
 * controllers (nvme-subsysN/nvmeM) lead back to the hardware.
 */
function nvmeControllers(dir: string): string[] {
  const segs = dir.split('/');
  const i = segs.findIndex((s) => numbered(s, 'nvme-subsys'));
  if (i < 0) return [];
  const subsys = segs.slice(0, i + 1).join('/');
  return list(subsys).filter((n) => numbered(n, 'nvme')).flatMap((n) => {
    const d = resolve(path.join(subsys, n));
    return d === null ? [] : [d];
  });
}

/** The thunderbolt domains this machine has, as their sysfs directories. */
function thunderboltDomains(sysfs: string): string[] {
  const dir = path.join(sysfs, 'bus', 'thunderbolt', 'devices');
  return list(dir).filter((n) => numbered(n, 'domain')).flatMap((n) => {
    const d = resolve(path.join(dir, n));
    return d === null ? [] : [d];
  });
}

/**
 * Why a device hangs off an external PCIe link (a Thunderbolt or USB4 port),
 * or null. The PCIe devices a Thunderbolt tunnel brings in do not appear
 * under the thunderbolt domain in sysfs, but beside it, so the domain's name
 * never shows in the device's own path. Three signs, each the kernel's:
 * 1. the `removable` attribute of a PCI function reads "removable": the
 *    kernel marks everything behind a firmware-declared external-facing
 *    port so (the same flag that makes it distrust the device for DMA);
 * 2. a PCIe port in the path has a device link (`supplier:pci:NHI`) to the
 *    USB4 host interface that owns a thunderbolt domain: the port carries
 *    that router's PCIe tunnels (integrated USB4/Thunderbolt 4 controllers);
 * 3. the path shares a PCIe switch port with a thunderbolt host interface
 *    (discrete Thunderbolt 3 controllers, whose upstream port carries both
 *    the host interface and the tunnels). A shared non-Thunderbolt switch
 *    errs on the safe side: the disk is then treated as external.
 */
export function externalPcie(sysfs: string, devDir: string): string | null {
  for (const dir of [devDir, ...nvmeControllers(devDir)]) {
    const why = externalPcieOf(sysfs, dir);
    if (why !== null) return why;
  }
  return null;
}

function externalPcieOf(sysfs: string, devDir: string): string | null {
  const segs = devDir.split('/');
  const functions: string[] = [];
  segs.forEach((s, i) => { if (isPciFunction(s)) functions.push(segs.slice(0, i + 1).join('/')); });
  if (functions.length === 0) return null;

  for (const fn of functions) {
    if (read(path.join(fn, 'removable')) === 'removable') {
      return `sysfs ${path.join(fn, 'removable')}: removable (behind an external-facing PCIe port: Thunderbolt/USB4)`;
    }
  }
  // Without a thunderbolt domain on the machine, neither of the next two signs can hold.
  for (const domain of thunderboltDomains(sysfs)) {
    const nhi = path.dirname(domain);
    // A device link's sysfs name: supplier:<bus>:<device>.
    const link = `supplier:pci:${path.basename(nhi)}`;
    const port = functions.find((fn) => fs.existsSync(path.join(fn, link)));
    if (port !== undefined) {
      return `sysfs ${path.join(port, link)}: PCIe port tunnelled by the Thunderbolt/USB4 host interface ${path.basename(nhi)} (${path.basename(domain)})`;
    }
    const shared = [...functions].reverse().find((fn) => nhi === fn || nhi.startsWith(fn + '/'));
    if (shared !== undefined) {
      return `sysfs ${shared}: PCIe switch port shared with the Thunderbolt host interface of ${path.basename(domain)} (${nhi})`;
    }
  }
  return null;
}

/** The bus named by the device's sysfs path, outermost hot-plug bus first. */
const BUS_SEGMENTS: Array<[Bus, string[]]> = [
  ['usb', ['usb#']],
  ['mmc', ['mmc#', 'mmc_host', 'mmcblk#']],
  ['memstick', ['memstick#']],
  ['ieee1394', ['fw#', 'firewire']],
  ['thunderbolt', ['thunderbolt', 'domain#']],
  ['nvme', ['nvme#', 'nvme-subsys#', 'nvme']],
  ['ata', ['ata#']],
  ['virtio', ['virtio#']],
  ['xen', ['vbd-#', 'xen']],
  ['scsi', ['host#']],
];

export function busFromDevPath(devPath: string): Bus {
  const segs = devPath.split('/');
  for (const [bus, names] of BUS_SEGMENTS) if (segs.some((s) => names.some((n) => nameIs(s, n)))) return bus;
  return segs.includes('virtual') ? 'virtual' : 'unknown';
}

/** Virtual devices only root can create and fill. Anything else virtual is not a fixed disk. */
const ROOT_ONLY_VIRTUAL: Array<[string, string]> = [
  ['zram#', 'a zram device (only root creates and fills one)'],
  ['ram#', 'a RAM disk (brd; only root creates one)'],
];
const UNTRUSTED_VIRTUAL: Array<[string, string]> = [
  ['loop#', 'a loop device: its content is whatever file was attached, and udisks2 lets local users attach their own'],
  ['nbd#', 'a network block device: its content comes from a server'],
  ['ublkb#', 'a ublk device: its content comes from a userspace server'],
];

/**
 * Whether block device `dev` ("major:minor") is a fixed internal disk: a
 * partition is judged by its disk, a stacked device (dm, md) by every device
 * beneath it (slaves/, recursively), and each real device by its sysfs
 * path: not removable, not on a hot-plug bus, not behind a Thunderbolt/USB4
 * port, not a loop/nbd/ublk device, on a bus known to be internal.
 */
export function fixedDisk(sysfs: string, dev: string): FixedDisk {
  const link = path.join(sysfs, 'dev', 'block', dev);
  const devDir = resolve(link);
  if (devDir === null) return { fixed: false, why: `${link} (absent): sysfs does not know the device` };
  return classify(sysfs, wholeDisk(devDir), 0);
}

function classify(sysfs: string, disk: string, depth: number): FixedDisk {
  const name = path.basename(disk);
  if (depth > MAX_DEPTH) return { fixed: false, why: `sysfs ${disk}: stacked more than ${MAX_DEPTH} devices deep` };
  const removable = path.join(disk, 'removable');
  if (read(removable) === '1') return { fixed: false, why: `sysfs ${removable}: 1 (removable medium)` };

  const lower = slavesOf(disk);
  if (lower.length > 0) {
    const parts: string[] = [];
    for (const l of lower) {
      const r = classify(sysfs, wholeDisk(l), depth + 1);
      if (!r.fixed) return { fixed: false, why: `${name} is stacked on ${path.basename(l)}: ${r.why}` };
      parts.push(`${path.basename(l)} (${r.why})`);
    }
    return { fixed: true, why: `${name} is stacked on fixed disks only: ${parts.join('; ')}` };
  }

  const rel = path.relative(path.join(sysfs, 'devices'), disk);
  if (rel.split('/')[0] === 'virtual' && nvmeControllers(disk).length === 0) {
    for (const [pattern, what] of UNTRUSTED_VIRTUAL) if (nameIs(name, pattern)) return { fixed: false, why: `sysfs ${disk}: ${what}` };
    for (const [pattern, what] of ROOT_ONLY_VIRTUAL) if (nameIs(name, pattern)) return { fixed: true, why: `sysfs ${disk}: ${what}` };
    return { fixed: false, why: `sysfs ${disk}: a virtual device with nothing beneath it that fusegate does not know to be fixed` };
  }
  const bus = busFromDevPath(rel);
  if (HOTPLUG_BUSES.includes(bus)) return { fixed: false, why: `sysfs ${disk}: on ${bus}, a hot-plug bus` };
  const external = externalPcie(sysfs, disk);
  if (external !== null) return { fixed: false, why: external };
  if (!INTERNAL_BUSES.includes(bus)) return { fixed: false, why: `sysfs ${disk}: on no bus fusegate knows to be internal (${bus})` };
  return { fixed: true, why: `sysfs ${disk}: ${bus}, not removable` };
}
