/**
 * What the administrator's files in /etc say about a mount.
 *
 * /etc/fstab: is this a mount the administrator wrote down? The helper is
 * called with a device path while fstab usually names the filesystem by
 * UUID=, LABEL= or PARTUUID=, so tags are compared with what the probe read
 * from the medium and paths are compared after resolving symlinks. For a loop
 * device, fstab's line may name the image file behind it. How the line
 * matched is kept: a tag read from the content proves nothing about where
 * the content came from (see FstabMatch).
 *
 * /etc/passwd and /etc/group: names for the caller's ids, so rules can say
 * `group: disk`. Read directly: spawning getent or loading NSS modules would
 * cost more than the whole policy step may. Users and groups that exist only
 * in LDAP/SSSD have no name here; rules can still match them by number.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { unescapeOctal } from '../lib/mountinfo';
import type { FstabMatch, IdName } from './types';

export type { FstabMatch } from './types';

export interface FstabEntry {
  spec: string;
  target: string;
  type: string;
  options: string;
  line: number;
}


export function parseFstab(text: string): FstabEntry[] {
  const out: FstabEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const f = line.split(/\s+/);
    if (f.length < 2) return;
    out.push({ spec: unescapeOctal(f[0]!), target: unescapeOctal(f[1]!), type: f[2] ?? 'auto', options: f[3] ?? 'defaults', line: i + 1 });
  });
  return out;
}

/** Canonical form of a path, resolving symlinks when it exists. */
export function canonical(p: string): string {
  try {
    return fs.realpathSync.native(p);
  } catch {
    const n = path.posix.normalize(p);
    return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
  }
}

export interface Identity {
  /** the source as given and its canonical path */
  source: string;
  path: string | null;
  backingFile: string | null;
  uuid: string | null;
  label: string | null;
  partuuid: string | null;
  partlabel: string | null;
}

/**
 * How an fstab spec names a device. `uuid`, `label`, `partuuid` and
 * `partlabel` are read from the content (the filesystem or the partition
 * table), whether written as TAG= or as the /dev/disk/by-* link udev makes
 * from them: any image can copy them. `id` is what the device reports
 * (model and serial, WWN) or a dm/md/LVM name. `path` names the node or
 * image file itself.
 */

const BY_LINK: Array<[string, FstabMatch]> = [
  ['/dev/disk/by-uuid/', 'uuid'],
  ['/dev/disk/by-label/', 'label'],
  ['/dev/disk/by-partuuid/', 'partuuid'],
  ['/dev/disk/by-partlabel/', 'partlabel'],
  ['/dev/disk/by-id/', 'id'],
];

/** How `spec` matches this source, or null when it does not. */
export function specMatch(spec: string, id: Identity): FstabMatch | null {
  const eq = spec.indexOf('=');
  if (eq > 0 && !spec.startsWith('/')) {
    const tag = spec.slice(0, eq).toUpperCase();
    const value = spec.slice(eq + 1).replace(/^"(.*)"$/, '$1');
    switch (tag) {
      case 'UUID': return id.uuid !== null && value.toLowerCase() === id.uuid.toLowerCase() ? 'uuid' : null;
      case 'PARTUUID': return id.partuuid !== null && value.toLowerCase() === id.partuuid.toLowerCase() ? 'partuuid' : null;
      case 'LABEL': return id.label !== null && value === id.label ? 'label' : null;
      case 'PARTLABEL': return id.partlabel !== null && value === id.partlabel ? 'partlabel' : null;
      default: return null;
    }
  }
  const how = (): FstabMatch => {
    const n = path.posix.normalize(spec);
    return BY_LINK.find(([prefix]) => n.startsWith(prefix))?.[1] ?? 'path';
  };
  if (spec === id.source) return how();
  if (!spec.startsWith('/')) return null;
  const c = canonical(spec);
  return c === id.path || (id.backingFile !== null && c === canonical(id.backingFile)) ? how() : null;
}

/**
 * The first fstab line naming this source (and this mountpoint, when one is
 * given: the helper always has one, `policy explain` may not).
 */
export function findInFstab(entries: FstabEntry[], id: Identity, mountpoint: string | null): FstabEntry | null {
  return matchInFstab(entries, id, mountpoint)?.entry ?? null;
}

/** findInFstab, and how the line's spec named the source. */
export function matchInFstab(entries: FstabEntry[], id: Identity, mountpoint: string | null): { entry: FstabEntry; how: FstabMatch } | null {
  const target = mountpoint === null ? null : canonical(mountpoint);
  for (const e of entries) {
    if (e.type === 'swap' || e.target === 'none') continue;
    if (target !== null && canonical(e.target) !== target) continue;
    const how = specMatch(e.spec, id);
    if (how !== null) return { entry: e, how };
  }
  return null;
}

/** The colon-separated lines of /etc/passwd or /etc/group that have a numeric third field. */
function colonFile(file: string): string[][] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').map((l) => l.split(':')).filter((f) => f.length >= 4 && f[0] !== '' && /^\d+$/.test(f[2]!));
}

interface User { name: string; uid: number; gid: number }
interface Group { name: string; gid: number; members: string[] }

export class Accounts {
  private passwd: User[] | undefined;
  private group: Group[] | undefined;

  constructor(private readonly passwdFile = '/etc/passwd', private readonly groupFile = '/etc/group') {}

  // name:x:uid:gid:gecos:home:shell
  private users(): User[] {
    return (this.passwd ??= colonFile(this.passwdFile).map((f) => ({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]) })));
  }

  // name:x:gid:member,member
  private groups(): Group[] {
    return (this.group ??= colonFile(this.groupFile).map((f) => ({ name: f[0]!, gid: Number(f[2]), members: f[3]!.split(',').filter(Boolean) })));
  }

  userName(uid: number): string | null {
    return this.users().find((u) => u.uid === uid)?.name ?? null;
  }

  groupName(gid: number): string | null {
    return this.groups().find((g) => g.gid === gid)?.name ?? null;
  }

  /** uid, primary gid and supplementary gids of a user, as `explain --uid` needs them. */
  credentials(uid: number): { uid: number; gid: number; groups: number[] } {
    const u = this.users().find((x) => x.uid === uid);
    if (u === undefined) return { uid, gid: uid, groups: [] };
    const groups = this.groups().filter((g) => g.members.includes(u.name)).map((g) => g.gid);
    return { uid, gid: u.gid, groups };
  }

  groupNames(ids: number[]): IdName[] {
    return ids.map((id) => ({ id, name: this.groupName(id) }));
  }
}
