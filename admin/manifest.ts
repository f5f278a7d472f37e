/**
 * The install manifest (/usr/lib/fusegate/install-manifest.json): every
 * path install created, as runtime paths, so uninstall removes exactly those
 * and puts diverted distribution helpers back. A re-install merges with the
 * previous manifest: directories made by the first run, and originals it
 * diverted, stay on record although the second run finds them existing.
 */
import * as fs from 'node:fs';
import { FusegateError, MountExit } from '../lib/errors';
import { MANIFEST_FILE, type Layout } from './paths';

export const MANIFEST_FORMAT = 1;

export interface SymlinkEntry {
  path: string;
  target: string;
}

export interface Diversion {
  /** where the distribution's helper was (e.g. /usr/sbin/mount.ntfs) */
  path: string;
  /** where install moved it */
  divertedTo: string;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  /** the fusegate version that wrote it */
  version: string;
  /** regular files install wrote (program, units) */
  files: string[];
  symlinks: SymlinkEntry[];
  /** directories install created; removed by uninstall when empty */
  dirs: string[];
  diversions: Diversion[];
  /** configuration install created; uninstall keeps it unless --purge */
  config: string[];
}

export function emptyManifest(version: string): Manifest {
  return { format: MANIFEST_FORMAT, version, files: [], symlinks: [], dirs: [], diversions: [], config: [] };
}

/** The manifest of an existing install, or null when there is none. */
export function readManifest(layout: Layout): Manifest | null {
  const file = layout.host(MANIFEST_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  let m: Partial<Manifest>;
  try {
    m = JSON.parse(text) as Partial<Manifest>;
  } catch (e) {
    throw new FusegateError(`${layout.show(MANIFEST_FILE)} is not valid JSON: ${(e as Error).message}`, {
      hint: 'restore it from a backup, or remove the files fusegate installed by hand (see README.md)',
      exitCode: MountExit.SYSTEM,
    });
  }
  if (m.format !== MANIFEST_FORMAT) {
    throw new FusegateError(`${layout.show(MANIFEST_FILE)} has format ${String(m.format)}, this fusegate reads ${MANIFEST_FORMAT}`, {
      hint: 'uninstall with the fusegate version that installed it',
      exitCode: MountExit.SYSTEM,
    });
  }
  return {
    format: MANIFEST_FORMAT,
    version: String(m.version ?? '?'),
    files: m.files ?? [],
    symlinks: m.symlinks ?? [],
    dirs: m.dirs ?? [],
    diversions: m.diversions ?? [],
    config: m.config ?? [],
  };
}

/** Sorted and de-duplicated, so installing twice writes the same bytes. */
export function serializeManifest(m: Manifest): Buffer {
  const uniq = (xs: string[]) => [...new Set(xs)].sort();
  const byPath = <T extends { path: string }>(xs: T[]) => [...new Map(xs.map((x) => [x.path, x])).values()].sort((a, b) => a.path.localeCompare(b.path));
  const out: Manifest = {
    format: MANIFEST_FORMAT,
    version: m.version,
    files: uniq(m.files),
    symlinks: byPath(m.symlinks),
    dirs: uniq(m.dirs),
    diversions: byPath(m.diversions),
    config: uniq(m.config),
  };
  return Buffer.from(JSON.stringify(out, null, 2) + '\n');
}
