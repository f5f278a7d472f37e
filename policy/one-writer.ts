/**
 * One writer per storage, the judging half: the locks that make
 * it hold are helper/one-writer.ts. Before a mount, find every existing
 * mount of the same storage under any of its names (lib/storage-identity.ts:
 * the same block device, a loop device and its backing file with
 * overlapping ranges, stacked loops, a disk and its partitions, dm/md over
 * any of those) and refuse when the new mount or an existing one writes:
 *
 *   new rw  next to anything      → refused, naming the existing mount
 *   new ro  next to ro            → allowed
 *   new ro  next to rw            → allowed only if the backend follows a
 *                                   changing device (lib/backends.ts), else refused
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { findBackend } from '../lib/backends';
import { readMountinfo, type MountinfoEntry } from '../lib/mountinfo';
import {
  describeExtent, sharedStorage, storageOfPath, storageOfStat, blockStorage,
  type Extent, type ResolveEnv, type StorageIdentity,
} from '../lib/storage-identity';

/** An existing mount and the storage it uses. */
export interface MountedStorage {
  source: string;
  mountpoint: string;
  fsType: string;
  readOnly: boolean;
  storage: StorageIdentity;
}

export interface Conflict {
  existing: MountedStorage;
  /** the extent of the new source and the existing mount's that overlap */
  shared: [Extent, Extent];
}

export type Verdict =
  | { allow: true; conflicts: Conflict[]; note: string | null }
  | { allow: false; conflicts: Conflict[]; what: string; todo: string };

function isReadOnly(e: MountinfoEntry): boolean {
  return e.options.split(',').includes('ro') || e.superOptions.split(',').includes('ro');
}

function isRealBlock(dev: string, sysfs: string): boolean {
  return !dev.startsWith('0:') && fs.existsSync(path.join(sysfs, 'dev', 'block', dev));
}

/**
 * A FUSE mount fusegate's helper made on an image file: `fuse.<backend>`,
 * mounted by root (user_id=0). Only these have their source looked up by
 * path. Any user can mount FUSE (fusermount) with a source string of their
 * choosing, and a stat of that string as root could be sent into a FUSE
 * server that never answers, holding every later mount; a root-made mount's
 * source was chosen by root.
 */
function isFusegateFileMount(e: MountinfoEntry): boolean {
  if (!e.fsType.startsWith('fuse.') || findBackend(e.fsType.slice('fuse.'.length)) === undefined) return false;
  return e.superOptions.split(',').includes('user_id=0');
}

/**
 * The storage every mount in mountinfo uses. Block-backed filesystems (and
 * fuseblk) are known by their superblock's device; fusegate's own FUSE
 * mounts of image files by their source (fusegate shows the command line's
 * source there); other FUSE mounts are not storage fusegate can share. Bind mounts of one superblock count once, writable if any
 * of them is.
 */
export function mountedStorage(entries: readonly MountinfoEntry[], env: ResolveEnv = { sysfs: '/sys', dev: '/dev' }): MountedStorage[] {
  const bySuper = new Map<string, MountedStorage>();
  for (const e of entries) {
    let storage: StorageIdentity | null = null;
    let key: string;
    if (isRealBlock(e.device, env.sysfs)) {
      key = e.device;
      if (!bySuper.has(key)) storage = blockStorage(e.device, env);
    } else if (isFusegateFileMount(e)) {
      key = `${e.device}`;
      if (!bySuper.has(key) && path.isAbsolute(e.source)) storage = storageOfPath(e.source, env);
    } else {
      continue;
    }
    const seen = bySuper.get(key);
    if (seen) {
      if (!isReadOnly(e) && seen.readOnly) seen.readOnly = false;
      continue;
    }
    if (storage === null || storage.extents.length === 0) continue;
    bySuper.set(key, { source: e.source, mountpoint: e.mountpoint, fsType: e.fsType, readOnly: isReadOnly(e), storage });
  }
  return [...bySuper.values()];
}

export function conflictsWith(mine: StorageIdentity, mounted: readonly MountedStorage[]): Conflict[] {
  const out: Conflict[] = [];
  for (const m of mounted) {
    const shared = sharedStorage(mine.extents, m.storage.extents);
    if (shared) out.push({ existing: m, shared });
  }
  return out;
}

export interface Request {
  source: string;
  mountpoint: string;
  readOnly: boolean;
  /** the sandboxed backend, or null for the kernel */
  backend: string | null;
}

function named(m: MountedStorage): string {
  return `${m.source} on ${m.mountpoint} (${m.fsType}, ${m.readOnly ? 'read-only' : 'read-write'})`;
}

/** Pure: the rule in this file's header applied to what was found. */
export function judge(req: Request, conflicts: Conflict[]): Verdict {
  if (conflicts.length === 0) return { allow: true, conflicts, note: null };
  const writer = conflicts.find((c) => !c.existing.readOnly);
  const same = (c: Conflict) => describeExtent(c.shared[1]);
  if (!req.readOnly) {
    const c = writer ?? conflicts[0]!;
    return {
      allow: false,
      conflicts,
      what: `${req.source} is the same storage as ${named(c.existing)}: ${same(c)}; a second writer would corrupt it`,
      todo: c.existing.readOnly
        ? `unmount ${c.existing.mountpoint} first; or mount this one read-only too: mount -o ro ${req.source} ${req.mountpoint}`
        : `for a second view mount it read-only (mount -o ro ${req.source} ${req.mountpoint}) once ${c.existing.mountpoint} is unmounted or remounted read-only; or use ${c.existing.mountpoint}`,
    };
  }
  if (writer === undefined) {
    return { allow: true, conflicts, note: `read-only next to read-only ${conflicts.map((c) => c.existing.mountpoint).join(', ')}: allowed` };
  }
  const backend = req.backend === null ? undefined : findBackend(req.backend);
  if (backend?.followsChangingDevice === true) {
    return { allow: true, conflicts, note: `read-only next to read-write ${writer.existing.mountpoint}: ${backend.name} follows a changing device` };
  }
  const server = req.backend === null ? 'the kernel driver' : req.backend;
  return {
    allow: false,
    conflicts,
    what: `${req.source} is the same storage as ${named(writer.existing)}: ${same(writer)}; ${server} cannot show a filesystem that another mount changes under it`,
    todo: `use ${writer.existing.mountpoint}, or remount it read-only first: mount -o remount,ro ${writer.existing.mountpoint}`,
  };
}


// ------------------------------------------------------------------ explain

/** The same facts for `fusegate policy explain`, as plain strings (JSON-safe). */
export interface StorageExplanation {
  /** how the source reaches its storage, one step a line */
  path: string[];
  /** the storage it is: roots and byte ranges */
  identities: string[];
  /** mounts of overlapping storage now: "SOURCE on DIR (TYPE, ro|rw): shares …" */
  conflicts: string[];
  /** what the helper would say: null when nothing is mounted on the same storage */
  verdict: string | null;
}

export function explainStorage(sourcePath: string | null, req: Request, mountinfo?: readonly MountinfoEntry[]): StorageExplanation | null {
  if (sourcePath === null) return null;
  let st: fs.BigIntStats;
  try {
    st = fs.statSync(sourcePath, { bigint: true });
  } catch {
    return null;
  }
  const storage = storageOfStat(st);
  if (storage === null) return null;
  const conflicts = conflictsWith(storage, mountedStorage(mountinfo ?? readMountinfo()));
  const v = judge(req, conflicts);
  return {
    path: storage.path,
    identities: storage.extents.map(describeExtent),
    conflicts: conflicts.map((c) => `${named(c.existing)}: shares ${describeExtent(c.shared[1])}`),
    verdict: v.allow ? v.note : `refused (${req.readOnly ? 'read-only' : 'read-write'}): ${v.what}; ${v.todo}`,
  };
}
