/**
 * Facts about a mount request, gathered without trusting the caller: the
 * filesystem type comes from probing the content, the bus from the kernel's
 * device tree, fstab membership from /etc/fstab. What the caller said (-t,
 * -o, uid) is recorded as a request, with that provenance.
 *
 * Synchronous on purpose: the helper runs this once per mount in a fresh
 * process, where an event-loop round trip buys nothing.
 */
import * as fs from 'node:fs';
import { backendsForType } from '../lib/backends';
import { blockInfo, probe, probeWithLibblkid, type ProbeResult } from './device';
import { Accounts, canonical, matchInFstab, parseFstab, type Identity } from './etc';
import { fixedDisk } from './fixed-disk';
import { devString, imageOwnership, loopBackingIdentity, modeString, type FileIdentity } from './image-owner';
import type { Fact, Facts, FstabMatch, MountRequest, SourceKind } from './types';

export type { MountRequest } from './types';
export type { ProbeResult } from './device';

export interface SourceStat {
  kind: Exclude<SourceKind, 'missing'>;
  /** "major:minor" for block devices */
  device?: string;
  /** the inode stat(2) saw, so the image's owner is read from that very file */
  identity?: FileIdentity;
}

/** Where facts come from; tests point these at fixtures. */
export interface FactEnv {
  fstab?: string;
  sysfs?: string;
  udevData?: string;
  blkid?: string;
  passwd?: string;
  group?: string;
  /** replaces stat(2) of the source, for tests that stand in for block devices */
  stat?: (path: string) => SourceStat | null;
  /**
   * replaces running `blkid -p` (e.g. with a libblkid binding, which saves
   * the exec); must probe the content the same low-level way
   */
  probe?: (path: string) => ProbeResult;
  /** how the replacement probe is named in fact sources */
  probeName?: string;
  /** replaces LOOP_GET_STATUS64 on a loop device: the inode behind it, or null */
  loopBacking?: (devPath: string, rdev: string) => FileIdentity | null;
}

const DEFAULT_ENV: Required<Omit<FactEnv, 'stat' | 'probe' | 'probeName' | 'loopBacking'>> = {
  fstab: '/etc/fstab',
  sysfs: '/sys',
  udevData: '/run/udev/data',
  blkid: '/usr/sbin/blkid',
  passwd: '/etc/passwd',
  group: '/etc/group',
};

function fact<T>(value: T, source: string): Fact<T> {
  return { value, source };
}

export function statSource(p: string): SourceStat | null {
  let st: fs.BigIntStats;
  try {
    st = fs.statSync(p, { bigint: true });
  } catch {
    return null;
  }
  if (st.isBlockDevice()) {
    // glibc's dev_t split (gnu_dev_major/minor): 12+20 bits of major, 8+24 of minor.
    const rdev = st.rdev;
    const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
    const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
    return { kind: 'block', device: `${major}:${minor}` };
  }
  if (!st.isFile()) return { kind: 'other' };
  return { kind: 'image', identity: { device: devString(st.dev), inode: st.ino } };
}

export function gatherFacts(req: MountRequest, envIn: FactEnv = {}): Facts {
  const env = { ...DEFAULT_ENV, ...envIn };
  const notes: string[] = [];
  const given = req.source;

  // A pinned source is looked at through its fd: the inode the helper holds.
  const viaFd = req.sourceFd === undefined ? null : `/proc/self/fd/${req.sourceFd}`;
  let real: string | null = null;
  try {
    real = viaFd !== null ? fs.readlinkSync(viaFd) : fs.realpathSync.native(given);
  } catch {
    if (/^(UUID|LABEL|PARTUUID|PARTLABEL)=/i.test(given)) notes.push(`${given} is a tag: give the device path (mount(8) resolves tags before calling the helper)`);
  }
  const st = real === null ? null : (envIn.stat ?? statSource)(viaFd ?? real);
  const kind: SourceKind = st === null ? 'missing' : st.kind;
  if (kind === 'missing') notes.push(`${given} does not exist`);
  if (kind === 'other') notes.push(`${given} is neither a block device nor a regular file`);
  const statFrom = envIn.stat !== undefined ? 'test stat' : 'stat(2)';

  const blk = st?.kind === 'block' && st.device !== undefined ? blockInfo(env.sysfs, env.udevData, st.device) : null;
  // libblkid in-process unless a test names another blkid binary or probe.
  const probeFn = envIn.probe ?? (envIn.blkid !== undefined ? (p: string) => probe(env.blkid, p) : probeWithLibblkid);
  const probeName = envIn.probe !== undefined ? envIn.probeName ?? 'probe' : envIn.blkid !== undefined ? 'blkid -p' : 'libblkid -p';
  const probed = kind === 'block' || kind === 'image' ? probeFn(viaFd ?? real!) : null;
  const tags = probed?.tags ?? {};
  const tag = (k: string): Fact<string | null> => fact(tags[k] ?? null, probed === null ? `not probed (${kind})` : probeName);

  const type = fact(probed !== null && probed.problem === null ? tags.TYPE!.toLowerCase() : null,
    probed === null ? `not probed: source is ${kind === 'missing' ? 'missing' : 'not a block device or file'}`
      : probed.problem === null ? probeName : `${probeName}: ${probed.problem}`);
  if (probed?.problem) notes.push(`probe of ${given}: ${probed.problem}`);

  const requested = req.requestedType === undefined || req.requestedType === '' ? null : req.requestedType;
  if (requested !== null && requested !== 'auto' && type.value !== null && requested !== type.value) {
    notes.push(`the caller asked for -t ${requested} but ${given} holds ${type.value}; the probed type decides`);
  }

  const uuid = tag('UUID');
  const label = tag('LABEL');
  const partuuid = tag('PART_ENTRY_UUID');
  const partlabel = tag('PART_ENTRY_NAME');
  const backingFile = blk?.backingFile ?? null;

  const mountpoint = req.mountpoint === undefined ? null : canonical(req.mountpoint);
  const { fstab, fstabMatch } = fstabFacts(env.fstab, {
    source: given, path: real, backingFile,
    uuid: uuid.value, label: label.value, partuuid: partuuid.value, partlabel: partlabel.value,
  }, req.mountpoint ?? null);

  const accounts = new Accounts(env.passwd, env.group);
  const uhelperOpt = [...req.options].reverse().find((o) => o.startsWith('uhelper='));
  const hasBackend = type.value !== null && backendsForType(type.value).length > 0;
  const image = kind === 'image';

  return {
    source: fact(given, 'caller'),
    path: fact(real, real === null ? 'realpath(3): does not resolve' : viaFd !== null ? 'the pinned fd' : 'realpath(3)'),
    kind: fact(kind, real === null ? 'realpath(3)' : statFrom),
    device: fact(st?.device ?? null, statFrom),
    type,
    requestedType: fact(requested, 'caller -t'),
    usage: tag('USAGE'),
    uuid, label, partuuid, partlabel,
    loop: fact(blk?.loop ?? false, blk !== null ? blk.loopSource : `${kind}: not a block device`),
    backingFile: fact(backingFile, blk !== null ? blk.backingSource : `${kind}: not a block device`),
    bus: blk !== null ? fact(blk.bus, blk.busSource)
      : fact(image ? 'virtual' : 'unknown', image ? 'regular file: an image has no bus' : `${kind}: not a block device`),
    removable: blk !== null ? fact(blk.removable, blk.removableSource) : fact(false, `${kind}: not a block device`),
    udevBus: blk !== null ? fact(blk.udevBus, blk.udevSource) : fact(null, `${kind}: not a block device`),
    fstab,
    fstabMatch,
    fixedDisk: fixedDiskFact(env.sysfs, kind, st?.device ?? null),
    ...imageFacts(env, accounts, kind, real, st, backingFile),
    mountpoint: fact(mountpoint, req.mountpoint === undefined ? 'not given' : 'caller (canonical)'),
    user: fact({ id: req.caller.uid, name: accounts.userName(req.caller.uid) }, `caller uid, name from ${env.passwd}`),
    groups: fact(accounts.groupNames([req.caller.gid, ...req.caller.groups.filter((g) => g !== req.caller.gid)]),
      `caller gid and groups, names from ${env.group}`),
    uhelper: fact(uhelperOpt === undefined ? null : uhelperOpt.slice('uhelper='.length), 'caller -o uhelper='),
    session: fact(req.session ?? null, req.session === undefined ? 'not known: not a broker request' : 'logind, asked by the broker'),
    options: fact([...req.options], 'caller -o'),
    hasBackend: fact(hasBackend, 'lib/backends.ts'),
    notes,
  };
}

function fstabFacts(file: string, id: Identity, mountpoint: string | null): Pick<Facts, 'fstab' | 'fstabMatch'> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const why = `${file}: unreadable (${(e as NodeJS.ErrnoException).code})`;
    return { fstab: { value: false, source: why, line: null }, fstabMatch: fact(null, why) };
  }
  const hit = matchInFstab(parseFstab(text), id, mountpoint);
  if (hit === null) {
    const why = `${file}: no line names this ${mountpoint === null ? 'source' : 'source and mountpoint'}`;
    return { fstab: { value: false, source: why, line: null }, fstabMatch: fact(null, why) };
  }
  return {
    fstab: {
      value: true,
      source: `${file} line ${hit.entry.line}${mountpoint === null ? ' (source only: no mountpoint given)' : ''}`,
      line: hit.entry.line,
    },
    fstabMatch: fact<FstabMatch | null>(hit.how, `${file} line ${hit.entry.line}: ${hit.entry.spec}`),
  };
}

/** Whether the source is a fixed internal disk: only block devices can be (policy/fixed-disk.ts). */
function fixedDiskFact(sysfs: string, kind: SourceKind, device: string | null): Fact<boolean> {
  if (kind !== 'block' || device === null) return fact(false, kind === 'image' ? 'an image file is not a disk' : `${kind}: not a block device`);
  // Not answered from the loop fact: it is also true for dm/md stacked on a
  // loop device, and fixedDisk() names the whole stack from sysfs.
  const r = fixedDisk(sysfs, device);
  return fact(r.fixed, r.why);
}

/**
 * Owner and mode of the image behind the source: the file itself, or the
 * file a loop device serves (proved by inode, policy/image-owner.ts).
 */
function imageFacts(env: FactEnv & typeof DEFAULT_ENV, accounts: Accounts, kind: SourceKind, real: string | null, st: SourceStat | null,
  backingFile: string | null): Pick<Facts, 'imageOwner' | 'imageMode' | 'imageRootOnly'> {
  let file: string;
  let expected: FileIdentity | null;
  let how: string;
  if (kind === 'image' && real !== null) {
    file = real;
    expected = st?.identity ?? null;
    how = 'stat(2) of the source';
  } else if (kind === 'block' && backingFile !== null && real !== null && st?.device !== undefined) {
    file = backingFile;
    expected = (env.loopBacking ?? loopBackingIdentity)(real, st.device);
    how = env.loopBacking !== undefined ? 'the test loop status' : 'LOOP_GET_STATUS64';
    if (expected === null) {
      const why = `cannot ask ${real} which file it serves (LOOP_GET_STATUS64)`;
      return { imageOwner: fact(null, why), imageMode: fact(null, why), imageRootOnly: fact(false, why) };
    }
  } else {
    const why = kind === 'block' ? 'not a loop device: no image file' : `${kind}: no image file`;
    return { imageOwner: fact(null, why), imageMode: fact(null, why), imageRootOnly: fact(false, why) };
  }
  const o = imageOwnership(file, expected, how);
  return {
    imageOwner: fact(o.uid === null ? null : { id: o.uid, name: accounts.userName(o.uid) }, o.uid === null ? o.source : `${o.source}, name from ${env.passwd}`),
    imageMode: fact(o.mode === null ? null : modeString(o.mode), o.source),
    imageRootOnly: fact(o.rootOnly, o.why),
  };
}
