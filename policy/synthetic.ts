/**
 * Facts from plain values, without probing anything: for tests, benchmarks,
 * and callers that learnt the facts some other way. Every fact is marked
 * 'synthetic' so an explanation built from them cannot pass for a real probe.
 */
import { backendsForType } from '../lib/backends';
import type { Bus, Facts, FstabMatch, IdName, SessionState, SourceKind } from './types';

export interface SyntheticFacts {
  source?: string;
  kind?: SourceKind;
  type?: string | null;
  requestedType?: string | null;
  uuid?: string | null;
  label?: string | null;
  partuuid?: string | null;
  loop?: boolean;
  backingFile?: string | null;
  bus?: Bus;
  removable?: boolean;
  fstab?: boolean;
  /** default: 'path' when fstab is true */
  fstabMatch?: FstabMatch | null;
  /** default: a block device, not loop, not removable, on an internal bus (nvme, ata, scsi, virtio, xen) */
  fixedDisk?: boolean;
  imageOwner?: IdName | null;
  imageMode?: string | null;
  imageRootOnly?: boolean;
  mountpoint?: string | null;
  user?: IdName;
  groups?: IdName[];
  options?: string[];
  session?: SessionState | null;
}

export function syntheticFacts(s: SyntheticFacts = {}): Facts {
  const f = <T>(value: T) => ({ value, source: 'synthetic' });
  const type = s.type === undefined ? 'ext4' : s.type;
  const options = s.options ?? [];
  const uhelper = [...options].reverse().find((o) => o.startsWith('uhelper='));
  const source = s.source ?? '/dev/sdb1';
  const kind = s.kind ?? 'block';
  const bus = s.bus ?? 'usb';
  const fixedDisk = s.fixedDisk ?? (kind === 'block' && !(s.loop ?? false) && !(s.removable ?? false)
    && (['nvme', 'ata', 'scsi', 'virtio', 'xen'] as Bus[]).includes(bus));
  return {
    source: f(source),
    path: f(source),
    kind: f(kind),
    device: f(null),
    type: f(type),
    requestedType: f(s.requestedType ?? null),
    usage: f(type === null ? null : 'filesystem'),
    uuid: f(s.uuid ?? null),
    label: f(s.label ?? null),
    partuuid: f(s.partuuid ?? null),
    partlabel: f(null),
    loop: f(s.loop ?? false),
    backingFile: f(s.backingFile ?? null),
    bus: f(bus),
    removable: f(s.removable ?? false),
    udevBus: f(null),
    fstab: { value: s.fstab ?? false, source: 'synthetic', line: null },
    fstabMatch: f(s.fstabMatch !== undefined ? s.fstabMatch : s.fstab ? 'path' : null),
    fixedDisk: f(fixedDisk),
    imageOwner: f(s.imageOwner ?? null),
    imageMode: f(s.imageMode ?? null),
    imageRootOnly: f(s.imageRootOnly ?? false),
    mountpoint: f(s.mountpoint ?? null),
    user: f(s.user ?? { id: 1000, name: 'alice' }),
    groups: f(s.groups ?? [{ id: 1000, name: 'alice' }]),
    uhelper: f(uhelper === undefined ? null : uhelper.slice('uhelper='.length)),
    session: f(s.session ?? null),
    options: f(options),
    hasBackend: f(type !== null && backendsForType(type).length > 0),
    notes: [],
  };
}
