/**
 * The policy format's vocabulary: versions, keys, value sets. validate.ts
 * checks files against it, match.ts evaluates it, explain/README describe it;
 * keeping the tables here means a new key cannot be accepted by one and
 * unknown to another.
 */
import type { Action, Bus, Defaults, Fallback, FstabMatch, MatchKey, OnRefused, PreflightMode, SessionState, SourceKind } from './types';

export const POLICY_VERSION = 1;
export const DEFAULT_POLICY_PATH = '/etc/fusegate/policy.yaml';

export const ACTIONS: readonly Action[] = ['kernel', 'fuse', 'deny'];
export const FALLBACKS: readonly Fallback[] = ['deny', 'kernel'];
export const ON_REFUSED: readonly OnRefused[] = ['deny', 'strip'];
export const PREFLIGHT_MODES: readonly PreflightMode[] = ['none', 'check', 'repair'];
/** The keys of the long form `preflight: { mode: check, force: true }`. */
export const PREFLIGHT_KEYS = ['mode', 'force'] as const;
export const BUSES: readonly Bus[] = [
  'usb', 'mmc', 'memstick', 'ieee1394', 'thunderbolt',
  'nvme', 'ata', 'virtio', 'xen', 'scsi', 'virtual', 'unknown',
];
export const KINDS: readonly SourceKind[] = ['block', 'image', 'other', 'missing'];
export const SESSIONS: readonly SessionState[] = ['active', 'inactive', 'remote', 'none'];
export const FSTAB_MATCHES: readonly FstabMatch[] = ['path', 'uuid', 'label', 'partuuid', 'partlabel', 'id'];

/**
 * How a match key's values are written and compared.
 * - bool: true/false
 * - enum: fixed words (bus, kind)
 * - glob: strings with * and ?; `fold` ones are compared case-insensitively
 * - ids: user/group names or numeric ids
 * - options: mount option patterns; `name` matches name and name=anything
 */
export type KeyKind = 'bool' | 'enum' | 'glob' | 'ids' | 'options';

export interface MatchKeySpec {
  kind: KeyKind;
  /** compare case-insensitively (UUIDs, filesystem types) */
  fold?: boolean;
  values?: readonly string[];
  /** what the key tests, for explain and errors */
  about: string;
}

export const MATCH_KEYS: Readonly<Record<MatchKey, MatchKeySpec>> = {
  type: { kind: 'glob', fold: true, about: 'filesystem type probed by blkid -p (never the caller\'s -t)' },
  requested_type: { kind: 'glob', fold: true, about: 'the type the caller asked for with -t (may be auto)' },
  uuid: { kind: 'glob', fold: true, about: 'filesystem UUID (spoofable)' },
  partuuid: { kind: 'glob', fold: true, about: 'partition UUID (spoofable)' },
  label: { kind: 'glob', about: 'filesystem label (spoofable)' },
  kind: { kind: 'enum', values: KINDS, about: 'block device or image file' },
  loop: { kind: 'bool', about: 'the source is a loop device, or a dm/md device over one' },
  backing_file: { kind: 'glob', about: 'the file behind a loop device' },
  source: { kind: 'glob', about: 'canonical path of the source' },
  mountpoint: { kind: 'glob', about: 'canonical mountpoint' },
  bus: { kind: 'enum', values: BUSES, about: 'bus the device is attached to' },
  removable: { kind: 'bool', about: 'the kernel says the medium is removable' },
  fstab: { kind: 'bool', about: 'source and mountpoint are listed in /etc/fstab' },
  has_backend: { kind: 'bool', about: 'fusegate has a sandboxed backend for the filesystem type' },
  uhelper: { kind: 'glob', about: 'uhelper= option (udisks2 sets uhelper=udisks2)' },
  user: { kind: 'ids', about: 'calling user, by name or uid' },
  group: { kind: 'ids', about: 'calling user\'s primary or supplementary group, by name or gid' },
  options: { kind: 'options', about: 'requested mount options (any listed one requested)' },
  fstab_match: { kind: 'enum', values: FSTAB_MATCHES, about: 'how the fstab line named the source (uuid, label, partuuid, partlabel: copied from the content, spoofable)' },
  fixed_disk: { kind: 'bool', about: 'a fixed internal disk: not removable, hot-plug, Thunderbolt, loop or stacked on any of them' },
  image_owner: { kind: 'ids', about: 'owner of the image file (or of the file behind a loop device), by name or uid' },
  image_mode: { kind: 'glob', about: 'permission bits of the image file in octal, e.g. "0644"' },
  image_root_only: { kind: 'bool', about: 'only root can write the image file (owner root, no group/other write, root-only directories)' },
  session: { kind: 'enum', values: SESSIONS, about: "the caller's logind session as polkit sees it (broker requests only; unknown for mount(8), udisks2, fstab)" },
};

export const TOP_KEYS = ['version', 'intercept', 'defaults', 'rules'] as const;

export const DEFAULTS_KEYS = [
  'action', 'reason', 'fallback', 'force_options', 'refuse_options', 'on_refused',
  'read_only', 'allow_unsafe_write', 'backends', 'preflight',
] as const;

export const RULE_KEYS = [
  'name', 'match', 'unless', 'action', 'reason', 'backends', 'force_options',
  'refuse_options', 'on_refused', 'read_only', 'allow_unsafe_write', 'fallback', 'preflight',
] as const;

/** Rule names are logged to the journal and typed on command lines. */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
/** Filesystem type names as mount(8) accepts them after -t. */
export const FSTYPE_RE = /^[a-z0-9][a-z0-9._-]*$/;
/** One mount option (a comma would make it two). */
export const OPTION_RE = /^[^,\s]+$/;

/** Edit distance, for "did you mean" hints on misspelt keys and values. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDist = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c);
    if (d < bestDist) { bestDist = d; best = c; }
  }
  return bestDist <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** What a policy without a `defaults` section (or a key of it) gets. */
export const BUILTIN_DEFAULTS: Defaults = {
  action: 'deny',
  reason: 'no policy rule matched this mount',
  fallback: 'deny',
  forceOptions: [],
  refuseOptions: [],
  onRefused: 'deny',
  readOnly: false,
  allowUnsafeWrite: false,
  backends: {},
  preflight: { mode: 'none', force: false },
};
