/**
 * Facts about the source device itself, read from the kernel rather than
 * from anything the caller said:
 * - what is on it, from libblkid's low-level probe (`blkid -p`), which reads
 *   the content instead of the blkid cache or udev;
 * - where it is attached, from the device tree in sysfs (and the udev
 *   database), whose path names every bus between the device and the CPU
 *   (…/usb2/2-1/…/host6/…/block/sdb), which neither the caller nor the
 *   medium can influence.
 */
import type * as ChildProcess from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { blkidProbe } from '../lib/native';
import { busFromDevPath, externalPcie, HOTPLUG_BUSES, numbered } from './fixed-disk';
import { TIMEOUTS } from '../lib/timeouts';
import type { Bus } from './types';
import { readAttributeOrNull } from '../lib/fs-or-null';

export interface ProbeResult {
  /** KEY=value pairs from `blkid -p -o export` (TYPE, UUID, LABEL, USAGE, PART_ENTRY_UUID, PTTYPE, …) */
  tags: Record<string, string>;
  /** set when the probe found nothing usable, saying why */
  problem: string | null;
}

/**
 * `blkid -o export` escapes shell-special characters with a backslash
 * (LABEL=MY\ STICK); undo that so labels compare as written on the medium.
 */
export function parseExport(out: string): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    tags[line.slice(0, eq)] = line.slice(eq + 1).replace(/\\(.)/g, '$1');
  }
  return tags;
}

/**
 * Runs `blkid -p`. child_process is required here rather than at the top:
 * loading it costs ~3 ms, wasted when the caller brings its own probe.
 */
export function probe(blkid: string, path: string): ProbeResult {
  const { spawnSync } = require('node:child_process') as typeof ChildProcess;
  const r = spawnSync(blkid, ['-p', '-o', 'export', '--', path], { encoding: 'utf8', timeout: TIMEOUTS.blkid.defaultMs, env: {} });
  if (r.error !== undefined) {
    return { tags: {}, problem: `cannot run ${blkid}: ${(r.error as NodeJS.ErrnoException).code ?? r.error.message}` };
  }
  const tags = parseExport(r.stdout);
  // Exit codes from blkid(8): 2 nothing found (or unreadable), 8 ambivalent probe.
  switch (r.status) {
    case 0:
      if (tags.TYPE === undefined) {
        return { tags, problem: tags.PTTYPE !== undefined ? `it holds a ${tags.PTTYPE} partition table, not a filesystem: mount a partition` : 'no filesystem signature found' };
      }
      return { tags, problem: null };
    case 2:
      return { tags, problem: r.stderr.trim() !== '' ? r.stderr.trim() : 'no filesystem signature found' };
    case 8:
      return { tags: {}, problem: 'more than one filesystem signature found (ambivalent probe; see wipefs(8)); a polyglot image is refused' };
    default:
      return { tags: {}, problem: `blkid failed (exit ${r.status ?? r.signal}): ${r.stderr.trim()}` };
  }
}

/**
 * The same probe in-process, through libblkid in fusegate's addon: what
 * `blkid -p` reports, without the ~7 ms of starting it (and of loading
 * child_process) on every mount.
 */
export function probeWithLibblkid(path: string): ProbeResult {
  let r;
  try {
    r = blkidProbe(path);
  } catch (err) {
    return { tags: {}, problem: `cannot probe ${path}: ${(err as Error).message}` };
  }
  const tags = r.tags;
  switch (r.status) {
    case 'found':
      if (tags.TYPE === undefined) {
        return { tags, problem: tags.PTTYPE !== undefined ? `it holds a ${tags.PTTYPE} partition table, not a filesystem: mount a partition` : 'no filesystem signature found' };
      }
      return { tags, problem: null };
    case 'nothing':
      return { tags: {}, problem: 'no filesystem signature found' };
    case 'ambivalent':
      return { tags: {}, problem: 'more than one filesystem signature found (ambivalent probe; see wipefs(8)); a polyglot image is refused' };
  }
}

export interface BlockInfo {
  bus: Bus;
  busSource: string;
  removable: boolean;
  removableSource: string;
  loop: boolean;
  loopSource: string;
  backingFile: string | null;
  backingSource: string;
  udevBus: string | null;
  udevSource: string;
}

/** Untrustworthiness order used when a device sits on several (dm, md). */
const RANK: Bus[] = ['usb', 'mmc', 'memstick', 'ieee1394', 'thunderbolt', 'unknown', 'virtual', 'scsi', 'xen', 'virtio', 'ata', 'nvme'];

export { busFromDevPath } from './fixed-disk';

/**
 * The bus of one device from its sysfs path; a disk behind a Thunderbolt or
 * USB4 port is on thunderbolt (and removable) even though that word never
 * appears in its path: the tunnelled PCIe devices sit beside the domain.
 */
function busOf(sysfs: string, dir: string, beneath: string): { bus: Bus; source: string; external: string | null } {
  const bus = busFromDevPath(path.relative(sysfs, dir));
  const source = `sysfs ${dir}${beneath}`;
  if (HOTPLUG_BUSES.includes(bus)) return { bus, source, external: null };
  const external = externalPcie(sysfs, dir);
  return external === null ? { bus, source, external: null } : { bus: 'thunderbolt', source: external + beneath, external: external + beneath };
}

const read = readAttributeOrNull;

function udevBusOf(udevData: string, dev: string): [string | null, string] {
  const file = path.join(udevData, `b${dev}`);
  const text = read(file);
  if (text === null) return [null, `${file} (absent)`];
  const line = text.split('\n').find((l) => l.startsWith('E:ID_BUS='));
  return [line === undefined ? null : line.slice('E:ID_BUS='.length), `udev ID_BUS (${file})`];
}

/**
 * Facts for block device `dev` ("major:minor"). Devices stacked on others
 * (dm-crypt, LVM, md) take the least trustworthy bus and the removable flag
 * of what lies beneath: a LUKS volume on a USB stick is still a USB stick.
 */
export function blockInfo(sysfs: string, udevData: string, dev: string): BlockInfo {
  const link = path.join(sysfs, 'dev', 'block', dev);
  let devDir: string;
  try {
    devDir = fs.realpathSync.native(link);
  } catch {
    const [udevBus, udevSource] = udevBusOf(udevData, dev);
    const known = udevBus !== null && (RANK as string[]).includes(udevBus);
    return {
      bus: known ? udevBus as Bus : 'unknown', busSource: known ? udevSource : `${link} (absent)`,
      removable: false, removableSource: `${link} (absent)`,
      loop: false, loopSource: `${link} (absent)`, backingFile: null, backingSource: `${link} (absent)`,
      udevBus, udevSource,
    };
  }
  const diskDir = fs.existsSync(path.join(devDir, 'partition')) ? path.dirname(devDir) : devDir;
  const own = busOf(sysfs, devDir, '');
  let bus = own.bus;
  let busSource = own.source;
  const removableFile = path.join(diskDir, 'removable');
  let removable = read(removableFile) === '1' || own.external !== null;
  let removableSource = own.external ?? `sysfs ${removableFile}`;

  const backingFile = read(path.join(diskDir, 'loop', 'backing_file'));
  let loop = numbered(path.basename(diskDir), 'loop');
  let loopSource = `sysfs ${diskDir} (device name)`;

  for (const lower of slaves(devDir, 0)) {
    const l = busOf(sysfs, lower, ` (beneath ${path.basename(devDir)})`);
    if (RANK.indexOf(l.bus) < RANK.indexOf(bus)) { bus = l.bus; busSource = l.source; }
    const ldisk = fs.existsSync(path.join(lower, 'partition')) ? path.dirname(lower) : lower;
    // dm or md over a loop device: as much an image as the loop device itself.
    if (!loop && numbered(path.basename(ldisk), 'loop')) {
      loop = true;
      loopSource = `sysfs ${ldisk} (beneath ${path.basename(devDir)})`;
    }
    if (!removable && read(path.join(ldisk, 'removable')) === '1') {
      removable = true;
      removableSource = `sysfs ${path.join(ldisk, 'removable')} (beneath ${path.basename(devDir)})`;
    } else if (!removable && l.external !== null) {
      removable = true;
      removableSource = l.external;
    }
  }
  const [udevBus, udevSource] = udevBusOf(udevData, dev);
  if (bus === 'unknown' && udevBus !== null && (RANK as string[]).includes(udevBus)) {
    bus = udevBus as Bus;
    busSource = udevSource;
  }
  return {
    bus, busSource, removable, removableSource,
    loop, loopSource, backingFile: loop ? backingFile : null,
    backingSource: `sysfs ${path.join(diskDir, 'loop', 'backing_file')}`,
    udevBus, udevSource,
  };
}

/** Every device beneath `dir` through slaves/ links, deepest included. */
function slaves(dir: string, depth: number): string[] {
  if (depth > 8) return [];
  let names: string[];
  try {
    names = fs.readdirSync(path.join(dir, 'slaves'));
  } catch {
    return [];
  }
  return names.flatMap((n) => {
    try {
      const d = fs.realpathSync.native(path.join(dir, 'slaves', n));
      return [d, ...slaves(d, depth + 1)];
    } catch {
      return [];
    }
  });
}
