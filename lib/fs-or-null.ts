/**
 * File system reads where "not there" (or not ours to read) is an answer,
 * not an error: null instead of an exception. For status, doctor and the
 * instance lookup, which describe what is there; code that must tell
 * ENOENT from other failures (admin/install-fs.ts) checks the code itself.
 */
import * as fs from 'node:fs';

function orNull<T>(f: () => T): T | null {
  try {
    return f();
  } catch {
    return null;
  }
}

export const statOrNull = (p: string): fs.Stats | null => orNull(() => fs.statSync(p));
export const lstatOrNull = (p: string): fs.Stats | null => orNull(() => fs.lstatSync(p));
export const readOrNull = (p: string): string | null => orNull(() => fs.readFileSync(p, 'utf8'));
export const readlinkOrNull = (p: string): string | null => orNull(() => fs.readlinkSync(p));

/**
 * A sysfs or udev attribute, trimmed; null when absent. Absent files are
 * common there (no udev database, no loop/ for a disk), and existsSync
 * answers without the cost of building an ENOENT error on the mount path.
 */
export function readAttributeOrNull(p: string): string | null {
  if (!fs.existsSync(p)) return null;
  return readOrNull(p)?.trim() ?? null;
}
