/**
 * Facts from plain values, without probing anything: for tests, benchmarks,
 * and callers that learnt the facts some other way. Every fact is marked
 * 'synthetic' so an explanation built from them cannot pass for a real probe.
 */
import { backendsForType } from '../lib/backends';
import type { Bus, Facts, IdName, SourceKind } from './types';

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
  mountpoint?: string | null;
  user?: IdName;
  groups?: IdName[];
  options?: string[];
}

export function syntheticFacts(s: SyntheticFacts = {}): Facts {
  const f = <T>(value: T) => ({ value, source: 'synthetic' });
  const type = s.type === undefined ? 'ext4' : s.type;
  const options = s.options ?? [];
  const uhelper = [...options].reverse().find((o) => o.startsWith('uhelper='));
  const source = s.source ?? '/dev/sdb1';
  return {
    source: f(source),
    path: f(source),
    kind: f(s.kind ?? 'block'),
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
    bus: f(s.bus ?? 'usb'),
    removable: f(s.removable ?? false),
    udevBus: f(null),
    fstab: { value: s.fstab ?? false, source: 'synthetic', line: null },
    mountpoint: f(s.mountpoint ?? null),
    user: f(s.user ?? { id: 1000, name: 'alice' }),
    groups: f(s.groups ?? [{ id: 1000, name: 'alice' }]),
    uhelper: f(uhelper === undefined ? null : uhelper.slice('uhelper='.length)),
    options: f(options),
    hasBackend: f(type !== null && backendsForType(type).length > 0),
    notes: [],
  };
}
