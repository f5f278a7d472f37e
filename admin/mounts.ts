/**
 * fusegate's sandboxed mounts as the kernel and libmount record them:
 * /proc/self/mountinfo says what is mounted (type fuse.<backend> or
 * fuseblk.<backend>: the helper mounts with the backend as subtype), and
 * /run/mount/utab adds what the helper recorded there (x-fusegate.rule=,
 * uhelper=). Both readers take file paths so tests can feed synthetic tables.
 */
import * as fs from 'node:fs';
import { BACKENDS } from '../lib/backends';
import { MOUNTINFO, parseMountinfo, unescapeOctal, type MountinfoEntry } from '../lib/mountinfo';

export { MOUNTINFO, parseMountinfo, unescapeOctal, type MountinfoEntry };

export const UTAB = '/run/mount/utab';

export interface UtabEntry {
  id: number | null;
  source: string;
  target: string;
  options: string[];
}

export interface SandboxedMount {
  mountId: number;
  device: string;
  source: string;
  mountpoint: string;
  /** fuse.<backend> or fuseblk.<backend> */
  fsType: string;
  backend: string;
  /** the policy rule that allowed it (x-fusegate.rule= in utab), if recorded */
  rule: string | null;
  /** who asked (uhelper= in utab, e.g. udisks2), if recorded */
  uhelper: string | null;
  readOnly: boolean;
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

function readOrEmpty(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** The backend a mount's type names, if it is one of ours. */
export function backendOfType(fsType: string, backends: readonly string[] = BACKENDS.map((b) => b.name)): string | null {
  const m = /^(?:fuse|fuseblk)\.(.+)$/.exec(fsType);
  return m !== null && backends.includes(m[1]!) ? m[1]! : null;
}

function optionValue(options: readonly string[], key: string): string | null {
  const o = options.find((x) => x.startsWith(`${key}=`));
  return o === undefined ? null : o.slice(key.length + 1);
}

/**
 * Active sandboxed mounts. utab entries are matched by mount ID where libmount
 * wrote one, else by source and target (the helper records its entry with
 * `mount -f`, which knows no ID), as umount(8) matches them.
 */
export function sandboxedMounts(paths: { mountinfo?: string; utab?: string } = {}): SandboxedMount[] {
  const utab = parseUtab(readOrEmpty(paths.utab ?? UTAB));
  const out: SandboxedMount[] = [];
  for (const m of parseMountinfo(readOrEmpty(paths.mountinfo ?? MOUNTINFO))) {
    const backend = backendOfType(m.fsType);
    if (backend === null) continue;
    const u = utab.find((e) => e.id === m.id) ?? utab.find((e) => e.target === m.mountpoint && e.source === m.source);
    const opts = u?.options ?? [];
    out.push({
      mountId: m.id,
      device: m.device,
      source: m.source,
      mountpoint: m.mountpoint,
      fsType: m.fsType,
      backend,
      rule: optionValue(opts, 'x-fusegate.rule'),
      uhelper: optionValue(opts, 'uhelper'),
      readOnly: m.options.split(',').includes('ro'),
    });
  }
  return out;
}
