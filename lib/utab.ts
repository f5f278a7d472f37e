/**
 * Reading /run/mount/utab: libmount's table of what mount(8) and mount
 * helpers recorded beside the kernel's mountinfo (userspace options such as
 * uhelper=, helper= and fusegate's x-fusegate.*). The one parser for it;
 * writing goes through libmount (helper/utab.ts), as mount(8) writes it.
 *
 * A line is space-separated KEY=VALUE pairs (ID=, SRC=, TARGET=, ROOT=,
 * OPTS=…), each value escaped as mountinfo escapes (\040 for a space).
 */
import { readOrNull } from './fs-or-null';
import { unescapeOctal } from './mountinfo';

export const UTAB = '/run/mount/utab';

export interface UtabEntry {
  /** the mount ID, where libmount knew it (a `mount -f` record has none) */
  id: number | null;
  source: string;
  target: string;
  options: string[];
}

export function parseUtab(text: string): UtabEntry[] {
  const out: UtabEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const kv = new Map<string, string>();
    for (const tok of line.trim().split(/\s+/)) {
      const eq = tok.indexOf('=');
      if (eq > 0) kv.set(tok.slice(0, eq), unescapeOctal(tok.slice(eq + 1)));
    }
    const id = kv.has('ID') ? Number(kv.get('ID')) : null;
    out.push({
      id: Number.isInteger(id) ? id : null,
      source: kv.get('SRC') ?? '',
      target: kv.get('TARGET') ?? '',
      options: (kv.get('OPTS') ?? '').split(',').filter((o) => o !== ''),
    });
  }
  return out;
}

/** utab's entries; none when it does not exist (nothing was recorded yet). */
export function readUtab(file = UTAB): UtabEntry[] {
  return parseUtab(readOrNull(file) ?? '');
}

/** The value of `key=` among mount options, or null. */
export function optionValue(options: readonly string[], key: string): string | null {
  const o = options.find((x) => x.startsWith(`${key}=`));
  return o === undefined ? null : o.slice(key.length + 1);
}

/**
 * The utab entry of one mount: by mount ID where libmount wrote one (as
 * libmount itself matches), else by target and source (the helper records
 * its entry with `mount -f`, which knows no ID), else by target alone. The
 * last such entry wins: it is the most recent record for a mountpoint
 * mounted over again.
 */
export function utabEntryOf(utab: readonly UtabEntry[], mount: { id: number; mountpoint: string; source: string }): UtabEntry | undefined {
  const byId = utab.find((e) => e.id === mount.id);
  if (byId !== undefined) return byId;
  const latest = (match: (e: UtabEntry) => boolean): UtabEntry | undefined => {
    for (let i = utab.length - 1; i >= 0; i--) if (match(utab[i]!)) return utab[i];
    return undefined;
  };
  // The target alone last: a source that reads differently (a path given
  // another way) must not lose the record; umount.fusegate matched so before.
  return latest((e) => e.target === mount.mountpoint && e.source === mount.source) ?? latest((e) => e.id === null && e.target === mount.mountpoint);
}
