/**
 * /proc/self/mountinfo, as the helper (to find the mount it just made
 * without touching it) and `fusegate status` read it.
 */
import * as fs from 'node:fs';

export const MOUNTINFO = '/proc/self/mountinfo';

export interface MountinfoEntry {
  id: number;
  /** "major:minor"; for FUSE the minor is the connection number in /sys/fs/fuse/connections */
  device: string;
  mountpoint: string;
  fsType: string;
  source: string;
  options: string;
  superOptions: string;
}

/** mountinfo, utab and fstab escape space, tab, newline and backslash as \ooo. */
export function unescapeOctal(s: string): string {
  // Most fields have no escape: skip the regex, which V8 would compile for the helper's every run.
  if (!s.includes('\\')) return s;
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function parseMountinfo(text: string): MountinfoEntry[] {
  const out: MountinfoEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const fields = line.split(' ');
    // Optional fields (shared:N, master:N) end at a lone '-'.
    const sep = fields.indexOf('-', 6);
    if (sep < 0 || fields.length < sep + 3) continue;
    out.push({
      id: Number(fields[0]),
      device: fields[2]!,
      mountpoint: unescapeOctal(fields[4]!),
      options: fields[5]!,
      fsType: fields[sep + 1]!,
      source: unescapeOctal(fields[sep + 2]!),
      superOptions: fields[sep + 3] ?? '',
    });
  }
  return out;
}

/** The mount on top at `mountpoint` (the last one listed there), or null. */
export function mountAt(entries: readonly MountinfoEntry[], mountpoint: string): MountinfoEntry | null {
  for (let i = entries.length - 1; i >= 0; i--) if (entries[i]!.mountpoint === mountpoint) return entries[i]!;
  return null;
}

export function readMountinfo(file = MOUNTINFO): MountinfoEntry[] {
  return parseMountinfo(fs.readFileSync(file, 'utf8'));
}
