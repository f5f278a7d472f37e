/**
 * Types shared by the policy modules and their callers (the mount helper,
 * `fusegate policy explain`). Facts, policies and decisions are plain
 * JSON-serialisable data: the helper logs them, explain prints them as JSON,
 * and a compiled policy is cached as JSON between mounts.
 */

import type { MountOptions } from './options';

/** A value together with where it came from, so explain can show provenance. */
export interface Fact<T> {
  value: T;
  /** e.g. 'blkid -p', 'sysfs /sys/block/loop0/removable', '/etc/fstab line 7' */
  source: string;
}

/** What the source of a mount is, from stat(2) of its canonical path. */
export type SourceKind = 'block' | 'image' | 'other' | 'missing';

/** Transport a block device hangs off, outermost first (a USB-SATA disk is usb). */
export type Bus =
  | 'usb' | 'mmc' | 'memstick' | 'ieee1394' | 'thunderbolt'
  | 'nvme' | 'ata' | 'virtio' | 'xen' | 'scsi' | 'virtual' | 'unknown';

/** How an fstab line named the source (policy/etc.ts). */
export type FstabMatch = 'path' | 'uuid' | 'label' | 'partuuid' | 'partlabel' | 'id';

export interface MountRequest {
  source: string;
  /**
   * the source pinned by the helper (an O_PATH fd): when given, stat, probe
   * and the canonical path come from the fd (/proc/self/fd/N), not from
   * looking `source` up again
   */
  sourceFd?: number;
  mountpoint?: string;
  /** from -t; a request, never a fact; may be 'auto' or undefined */
  requestedType?: string;
  /** -o split on commas, raw */
  options: string[];
  caller: { uid: number; gid: number; groups: number[] };
  /** the caller's logind session as polkit sees it: known only for the broker's requests */
  session?: SessionState;
}

/**
 * A caller's logind session as polkit judges it: on a seat and active or
 * inactive, remote (or without a seat: polkit's allow_any), or none at all.
 */
export type SessionState = 'active' | 'inactive' | 'remote' | 'none';

export interface IdName {
  id: number;
  /** from /etc/passwd or /etc/group; null when the id has no entry there */
  name: string | null;
}

export interface Facts {
  /** the source as the caller gave it */
  source: Fact<string>;
  /** canonical path (symlinks such as /dev/disk/by-id resolved) */
  path: Fact<string | null>;
  kind: Fact<SourceKind>;
  /** "major:minor" of a block device */
  device: Fact<string | null>;
  /** filesystem type probed from the content; null when nothing (or more than one thing) was found */
  type: Fact<string | null>;
  requestedType: Fact<string | null>;
  /** blkid USAGE: filesystem, crypto, raid, other */
  usage: Fact<string | null>;
  uuid: Fact<string | null>;
  label: Fact<string | null>;
  partuuid: Fact<string | null>;
  partlabel: Fact<string | null>;
  loop: Fact<boolean>;
  backingFile: Fact<string | null>;
  bus: Fact<Bus>;
  removable: Fact<boolean>;
  /** the udev database's ID_BUS, kept for explain even when sysfs decided the bus */
  udevBus: Fact<string | null>;
  fstab: Fact<boolean> & { line: number | null };
  /**
   * how the fstab line named the source; null when no line did. uuid,
   * label, partuuid and partlabel are read from the content and prove
   * nothing about where the content came from.
   */
  fstabMatch: Fact<FstabMatch | null>;
  /**
   * the source is a fixed internal disk (or sits only on such disks):
   * not removable, not on a hot-plug bus or behind a Thunderbolt/USB4 port,
   * not a loop/nbd/ublk device nor stacked on one; never an image file
   */
  fixedDisk: Fact<boolean>;
  /** owner of the image file (the source, or the file behind a loop device); null for other sources */
  imageOwner: Fact<IdName | null>;
  /** its permission bits in octal, e.g. "0644"; null for other sources */
  imageMode: Fact<string | null>;
  /** only root can write the image: owned by root, no group/other write, every directory above root's alone */
  imageRootOnly: Fact<boolean>;
  mountpoint: Fact<string | null>;
  user: Fact<IdName>;
  /** primary group first, then supplementary groups */
  groups: Fact<IdName[]>;
  uhelper: Fact<string | null>;
  /** the caller's session (broker requests); null when not known: mount(8), udisks2 and fstab mounts */
  session: Fact<SessionState | null>;
  options: Fact<string[]>;
  /** a backend in lib/backends.ts serves the probed type */
  hasBackend: Fact<boolean>;
  /** things explain should point out (type mismatch, ambivalent probe, …) */
  notes: string[];
}

export type Action = 'kernel' | 'fuse' | 'deny';
/** The sandboxed check before a read-write mount (docs/preflight.md): none, check (dirty → read-only or refused), repair. */
export type PreflightMode = 'none' | 'check' | 'repair';
export interface Preflight {
  mode: PreflightMode;
  /** check a volume marked clean in full too (e2fsck -f) */
  force: boolean;
}
export type Fallback = 'deny' | 'kernel';
export type OnRefused = 'deny' | 'strip';

/** Match keys as written in the policy file. */
export type MatchKey =
  | 'type' | 'requested_type' | 'uuid' | 'partuuid' | 'label' | 'kind' | 'loop'
  | 'backing_file' | 'source' | 'mountpoint' | 'bus' | 'removable' | 'fstab'
  | 'has_backend' | 'uhelper' | 'user' | 'group' | 'options'
  | 'fstab_match' | 'fixed_disk' | 'image_owner' | 'image_mode' | 'image_root_only'
  | 'session';

/**
 * One condition: every key must hold (AND). Booleans for flag keys, lists for
 * the rest (any item may match: OR). Numbers only appear for user/group ids.
 */
export type Condition = Partial<Record<MatchKey, boolean | Array<string | number>>>;

/** A rule's backends: one list for any type, or a list per filesystem type. */
export type BackendPrefs = string[] | Record<string, string[]>;

export interface Rule {
  name: string;
  /** line in the policy file, for explain and the journal */
  line: number;
  /** any one condition must hold (OR); empty means the rule matches everything */
  match: Condition[];
  /** the rule is skipped when any of these conditions holds */
  unless: Condition[];
  action: Action;
  reason?: string;
  backends?: BackendPrefs;
  forceOptions?: string[];
  refuseOptions?: string[];
  onRefused?: OnRefused;
  readOnly?: boolean;
  allowUnsafeWrite?: boolean;
  fallback?: Fallback;
  preflight?: Preflight;
}

export interface Defaults {
  /** what happens when no rule matches */
  action: Action;
  reason: string;
  fallback: Fallback;
  forceOptions: string[];
  refuseOptions: string[];
  onRefused: OnRefused;
  readOnly: boolean;
  allowUnsafeWrite: boolean;
  /** preference list per filesystem type for fuse rules that name none */
  backends: Record<string, string[]>;
  preflight: Preflight;
}

export interface Policy {
  version: 1;
  /** where it was loaded from; '(built-in fail-closed policy)' for the fallback */
  file: string;
  /** filesystem types the install step makes /sbin/mount.<type> links for */
  intercept: string[];
  defaults: Defaults;
  rules: Rule[];
  /** set on the policy used when the real one could not be loaded */
  failClosed?: { reason: string };
}

export type Severity = 'error' | 'warning';

export interface Diagnostic {
  file: string;
  /** 1-based; 0 when the problem is with the file as a whole (unreadable) */
  line: number;
  column: number;
  severity: Severity;
  message: string;
  /** one line saying what to do about it */
  hint: string;
}

export interface TraceEntry {
  rule: string;
  line: number;
  matched: boolean;
  why: string[];
}

/** What mounting through one driver would look like. */
export interface MountPlan {
  readOnly: boolean;
  /** null when the mount stays writable */
  readOnlyWhy: string | null;
  finalOptions: string[];
  /** requested options a forced option replaced (suid by nosuid, rw by ro) */
  overriddenOptions: string[];
}

export interface BackendPlan extends MountPlan {
  backend: string;
}

export interface RefusedOptions {
  /**
   * the rule's refuse_options (globs, as written): the helper refuses a
   * server's OPTS against these with the same matcher (policy/match.ts)
   */
  patterns: string[];
  /** requested options that the rule refuses */
  options: string[];
  /** deny: the request was denied; strip: they were removed; none: nothing requested was refused */
  handling: 'deny' | 'strip' | 'none';
}

export interface Decision {
  action: Action;
  /** rule name, or 'default' when no rule matched */
  rule: string;
  /** line of the rule in the policy file; null for 'default' */
  ruleLine: number | null;
  reason: string;
  fsType: string | null;
  /** backend preference order, only for fuse */
  backends: string[];
  /** per backend (same order): what mounting through it would look like */
  backendPlans: BackendPlan[];
  /** the backend the helper picked, set by resolveFallback */
  backend: string | null;
  forcedOptions: string[];
  refusedOptions: RefusedOptions;
  /** requested options replaced by a forced one (suid by nosuid, uid=0 by uid=1000) */
  overriddenOptions: string[];
  /** for the preferred backend (fuse) or the kernel */
  readOnly: boolean;
  readOnlyWhy: string | null;
  fallback: Fallback;
  /** set when the fallback replaced the rule's action; the helper must log it */
  fallbackApplied: { from: Action; why: string } | null;
  /** options the helper should mount with */
  finalOptions: string[];
  /** the same options in the form the mount mechanisms take (policy/options.ts) */
  mountOptions: MountOptions;
  requestedOptions: string[];
  /** the mount on the kernel driver, for a kernel fallback; null when denied */
  kernelPlan: MountPlan | null;
  /**
   * the preflight the helper runs before a read-write sandboxed mount
   * (mode 'none' for kernel and deny); `by` names who set it
   */
  preflight: Preflight & { by: string };
  trace: TraceEntry[];
  notes: string[];
}
