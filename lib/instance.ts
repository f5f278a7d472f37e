/**
 * Which systemd service instance serves a sandboxed mount: the one answer
 * umount.fusegate, `fusegate status`, the helper's journal entry and the
 * benchmarks all use.
 *
 * systemd names Accept=yes instances `<backend>@<n>-<client pid>-<client
 * uid>.service`, the client being the helper. Instance numbers say nothing
 * about mounts (systemd numbers connections), so the name is learnt where it
 * is certain:
 *
 * 1. The helper's record: right after the mount it finds its own connection's
 *    instance in the cgroup tree (instanceForClient: no D-Bus on the mount
 *    path) and records it in utab as x-fusegate.unit=.
 * 2. Without a record (mounted with -n, or utab lost): the instance whose
 *    FUSE server holds the mount's source on fd 4 (sandbox/launch.ts
 *    SOURCE_FD): the same block device (st_rdev) or the same inode (st_dev,
 *    st_ino), with the path as a last resort. A /dev/fuse fd does not reveal
 *    its connection, so the source is the one reliable link. The candidates
 *    are the backend's instances in the cgroup tree, or whatever list the
 *    caller already has (status passes systemd's, over D-Bus).
 */
import * as fs from 'node:fs';
import { backendOfType, findBackend } from './backends';
import { readlinkOrNull, statOrNull } from './fs-or-null';
import type { MountinfoEntry } from './mountinfo';
import { readUtab, optionValue, utabEntryOf, type UtabEntry } from './utab';

/** The utab option the helper records the instance in. */
export const UNIT_OPTION = 'x-fusegate.unit';

/** The FUSE server's copy of the mount source (sandbox/launch.ts SOURCE_FD). */
export const SERVER_SOURCE_FD = 4;

// ------------------------------------------------------------- cgroup tree

/**
 * system.slice in the unified hierarchy, the hybrid one, and cgroup v1's
 * name=systemd tree; FUSEGATE_CGROUP_SYSTEM_SLICE stands in for it in tests.
 */
function systemSlices(): string[] {
  const fake = process.env.FUSEGATE_CGROUP_SYSTEM_SLICE;
  return fake ? [fake] : ['/sys/fs/cgroup/system.slice', '/sys/fs/cgroup/unified/system.slice', '/sys/fs/cgroup/systemd/system.slice'];
}

/** The first system.slice that exists here, or null outside systemd. */
export function systemSlice(): string | null {
  return systemSlices().find((s) => fs.existsSync(s)) ?? null;
}

/**
 * The slice directories an instance of `backend` can be in, that exist here:
 * fusegate.slice (the units' Slice=, admin/units.ts), beside system.slice,
 * then the template's default slice inside system.slice (units from before
 * the slice); systemd escapes '-' in slice names as \x2d.
 */
function templateSlices(backend: string): string[] {
  const fusegate = systemSlices().map((s) => `${s.slice(0, s.lastIndexOf('/'))}/fusegate.slice`);
  const template = systemSlices().map((s) => `${s}/system-${backend.replace(/-/g, '\\x2d')}.slice`);
  return [...fusegate, ...template].filter((d) => fs.existsSync(d));
}

function backendOfUnit(unit: string): string {
  return unit.slice(0, unit.indexOf('@'));
}

/** The backend's instances that have a cgroup now (running, or not yet collected). */
export function backendInstances(backend: string): string[] {
  const found = new Set<string>();
  for (const slice of templateSlices(backend)) {
    for (const d of fs.readdirSync(slice)) if (d.startsWith(`${backend}@`) && d.endsWith('.service')) found.add(d);
  }
  return [...found];
}

/** The instance started for this client's connection to `backend`, or null outside systemd. */
export function instanceForClient(backend: string, clientPid: number, clientUid: number): string | null {
  const suffix = `-${clientPid}-${clientUid}.service`;
  return backendInstances(backend).find((d) => d.endsWith(suffix)) ?? null;
}

/** The instance's cgroup directory, or null when it has none (gone, or not in this hierarchy). */
export function instanceCgroup(unit: string): string | null {
  for (const slice of templateSlices(backendOfUnit(unit))) {
    const dir = `${slice}/${unit}`;
    if (fs.existsSync(dir)) return dir;
  }
  return null;
}

/** Pids in the instance's cgroup: the FUSE server (the adapter exec'd into it) first. Empty once it is gone. */
export function instanceProcesses(unit: string): number[] {
  const dir = instanceCgroup(unit);
  if (dir === null) return [];
  try {
    return fs.readFileSync(`${dir}/cgroup.procs`, 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return []; // removed meanwhile
  }
}

// ------------------------------------------------------------- mount → instance

/** One mount, as mountinfo states it. */
export interface MountRef {
  id: number;
  mountpoint: string;
  source: string;
  backend: string;
}

/** A running instance and its FUSE server. */
export interface Candidate {
  unit: string;
  pid: number;
}

export interface ServingInstance {
  unit: string;
  /** how it was found: the helper's utab record, or the server holding the source */
  from: 'utab' | 'server-source';
}

export interface InstanceSources {
  /** utab's entries, or the file to read them from (default /run/mount/utab) */
  utab?: readonly UtabEntry[] | string;
  /** the running instances of a backend with their servers (default: the cgroup tree's) */
  candidates?: (backend: string) => Candidate[];
  /** /proc, for the servers' fds */
  proc?: string;
}

/** The backend's instances in the cgroup tree, each with its first process (the server). */
function cgroupCandidates(backend: string): Candidate[] {
  const out: Candidate[] = [];
  for (const unit of backendInstances(backend)) {
    const pid = instanceProcesses(unit)[0];
    if (pid !== undefined) out.push({ unit, pid });
  }
  return out;
}

/** A file's identity, comparable across paths: the device for block devices, the inode otherwise. */
function identity(st: fs.Stats): string {
  return st.isBlockDevice() ? `blk:${st.rdev}` : `ino:${st.dev}:${st.ino}`;
}

/** The fd numbers a process holds (empty when it is gone or not ours to read). */
function serverFds(proc: string, pid: number): string[] {
  try {
    return fs.readdirSync(`${proc}/${pid}/fd`);
  } catch {
    return [];
  }
}

/**
 * The instance serving each mount (null where none is known), in order. An
 * instance serves one mount, so a candidate paired by its source is not
 * paired again.
 */
export function instancesServing(mounts: readonly MountRef[], src: InstanceSources = {}): Array<ServingInstance | null> {
  const utab = typeof src.utab === 'object' ? src.utab : readUtab(src.utab);
  const proc = src.proc ?? '/proc';
  const listCandidates = src.candidates ?? cgroupCandidates;
  const byBackend = new Map<string, Array<Candidate & { ids: string[]; paths: string[] }>>();
  const used = new Set<string>();
  const recorded = mounts.map((m) => {
    const entry = utabEntryOf(utab, m);
    return entry ? optionValue(entry.options, UNIT_OPTION) : null;
  });
  for (const u of recorded) if (u !== null) used.add(u);
  return mounts.map((m, i) => {
    const unit = recorded[i];
    if (unit) return { unit, from: 'utab' };
    let candidates = byBackend.get(m.backend);
    if (candidates === undefined) {
      candidates = listCandidates(m.backend)
        .filter((c) => c.unit.startsWith(`${m.backend}@`))
        .map((c) => {
          // An exec'd server holds the source on fd 4; an in-process one
          // (fusegate-vfat) on whichever fd the adapter received it as.
          const fds = findBackend(m.backend)?.delivery === 'in-process' ? serverFds(proc, c.pid) : [String(SERVER_SOURCE_FD)];
          const files = fds.map((n) => `${proc}/${c.pid}/fd/${n}`);
          return {
            ...c,
            ids: files.flatMap((f) => {
              const st = statOrNull(f);
              return st ? [identity(st)] : [];
            }),
            paths: files.flatMap((f) => readlinkOrNull(f) ?? []),
          };
        });
      byBackend.set(m.backend, candidates);
    }
    const st = statOrNull(m.source);
    const id = st ? identity(st) : null;
    const free = candidates.filter((c) => !used.has(c.unit));
    const match = free.find((c) => id !== null && c.ids.includes(id)) ?? free.find((c) => c.paths.includes(m.source));
    if (match === undefined) return null;
    used.add(match.unit);
    return { unit: match.unit, from: 'server-source' };
  });
}

/** The instance serving one mount, or null. */
export function instanceServing(mount: MountRef, src: InstanceSources = {}): ServingInstance | null {
  return instancesServing([mount], src)[0] ?? null;
}

/** The instance serving a mount as mountinfo lists it; null for a mount that is not one of fusegate's sandboxed mounts. */
export function instanceOfMount(mount: MountinfoEntry, src: InstanceSources = {}): ServingInstance | null {
  const backend = backendOfType(mount.fsType);
  return backend === null ? null : instanceServing({ ...mount, backend }, src);
}
