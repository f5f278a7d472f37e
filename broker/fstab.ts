/**
 * /etc/fstab entries an administrator opened to ordinary users (`user`,
 * `users`): the helper, which mount(8) runs as the user for them, forwards
 * such a mount to the broker, and the broker reads the entry again itself
 * (the helper's word is not proof). Only /etc/fstab counts: the environment
 * that points root's helper at another file is the user's here.
 */
import * as fs from 'node:fs';
import { canonical, parseFstab, type FstabEntry } from '../policy/etc';

export const FSTAB = '/etc/fstab';

/** Options of an fstab entry that are about who may mount, not about the mount. */
const NOT_MOUNT_OPTIONS = new Set(['user', 'users', 'owner', 'group', 'noauto', 'auto', 'defaults', 'nofail', '_netdev']);

/** The entry for `mountpoint` that lets users mount it, or null. */
export function userEntryFor(mountpoint: string, text: string | null = readFstab()): FstabEntry | null {
  if (text === null) return null;
  const want = canonical(mountpoint);
  const entries = parseFstab(text).filter((e) => canonical(e.target) === want);
  const e = entries[entries.length - 1];
  if (!e) return null;
  const opts = e.options.split(',');
  return opts.includes('user') || opts.includes('users') ? e : null;
}

function readFstab(): string | null {
  try {
    return fs.readFileSync(FSTAB, 'utf8');
  } catch {
    return null;
  }
}

/** The device path an fstab spec names (LABEL=, UUID=, PARTUUID=, PARTLABEL= through udev's links). */
export function specPath(spec: string): string {
  const m = /^(LABEL|UUID|PARTUUID|PARTLABEL)=(.*)$/.exec(spec);
  if (!m) return spec;
  const dir = { LABEL: 'by-label', UUID: 'by-uuid', PARTUUID: 'by-partuuid', PARTLABEL: 'by-partlabel' }[m[1] as 'LABEL'];
  return `/dev/disk/${dir}/${m[2]!.replace(/^"(.*)"$/, '$1').replace(/\//g, '\\x2f')}`;
}

/**
 * The mount options the entry asks for, as a user mount gets them: its own
 * options without the who-may-mount ones, and `noexec` unless it says
 * `exec` (mount(8)'s `user` implies noexec, nosuid, nodev; the broker forces
 * the last two anyway).
 */
export function entryOptions(e: FstabEntry): string[] {
  const opts = e.options.split(',').filter((o) => o !== '' && !NOT_MOUNT_OPTIONS.has(o) && !o.startsWith('x-') && !o.startsWith('comment='));
  return opts.includes('exec') ? opts : [...opts, 'noexec'];
}
