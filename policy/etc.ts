/**
 * What the administrator's files in /etc say about a mount.
 *
 * /etc/fstab: is this a mount the administrator wrote down? The helper is
 * called with a device path while fstab usually names the filesystem by
 * UUID=, LABEL= or PARTUUID=, so tags are compared with what the probe read
 * from the medium and paths are compared after resolving symlinks. For a loop
 * device, fstab's line may name the image file behind it.
 *
 * /etc/passwd and /etc/group: names for the caller's ids, so rules can say
 * `group: disk`. Read directly: spawning getent or loading NSS modules would
 * cost more than the whole policy step may. Users and groups that exist only
 * in LDAP/SSSD have no name here; rules can still match them by number.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { unescapeOctal } from '../lib/mountinfo';
import type { IdName } from './types';

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

function specMatches(spec: string, id: Identity): boolean {
  const eq = spec.indexOf('=');
  if (eq > 0 && !spec.startsWith('/')) {
    const tag = spec.slice(0, eq).toUpperCase();
    const value = spec.slice(eq + 1).replace(/^"(.*)"$/, '$1');
    switch (tag) {
      case 'UUID': return id.uuid !== null && value.toLowerCase() === id.uuid.toLowerCase();
      case 'PARTUUID': return id.partuuid !== null && value.toLowerCase() === id.partuuid.toLowerCase();
      case 'LABEL': return id.label !== null && value === id.label;
      case 'PARTLABEL': return id.partlabel !== null && value === id.partlabel;
      default: return false;
    }
  }
  if (spec === id.source) return true;
  if (!spec.startsWith('/')) return false;
  const c = canonical(spec);
  return c === id.path || (id.backingFile !== null && c === canonical(id.backingFile));
}

/**
 * The first fstab line naming this source (and this mountpoint, when one is
 * given: the helper always has one, `policy explain` may not).
 */
export function findInFstab(entries: FstabEntry[], id: Identity, mountpoint: string | null): FstabEntry | null {
  const target = mountpoint === null ? null : canonical(mountpoint);
  for (const e of entries) {
    if (e.type === 'swap' || e.target === 'none') continue;
    if (target !== null && canonical(e.target) !== target) continue;
    if (specMatches(e.spec, id)) return e;
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
