/**
 * fusegate's sandboxed mounts as the kernel and libmount record them:
 * /proc/self/mountinfo says what is mounted (type fuse.<backend> or
 * fuseblk.<backend>: the helper mounts with the backend as subtype), and
 * /run/mount/utab adds what the helper recorded there (x-fusegate.rule=,
 * uhelper=). Both readers take file paths so tests can feed synthetic tables.
 */
import { backendOfType } from '../lib/backends';
import { readOrNull } from '../lib/fs-or-null';
import { MOUNTINFO, parseMountinfo, unescapeOctal, type MountinfoEntry } from '../lib/mountinfo';
import { optionValue, parseUtab, readUtab, utabEntryOf, UTAB, type UtabEntry } from '../lib/utab';

export { MOUNTINFO, parseMountinfo, unescapeOctal, type MountinfoEntry };
export { backendOfType, parseUtab, UTAB, type UtabEntry };

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

/** Active sandboxed mounts, each with what its utab entry (lib/utab.ts utabEntryOf) adds. */
export function sandboxedMounts(paths: { mountinfo?: string; utab?: string | readonly UtabEntry[] } = {}): SandboxedMount[] {
  const utab = typeof paths.utab === 'object' ? paths.utab : readUtab(paths.utab);
  const out: SandboxedMount[] = [];
  for (const m of parseMountinfo(readOrNull(paths.mountinfo ?? MOUNTINFO) ?? '')) {
    const backend = backendOfType(m.fsType);
    if (backend === null) continue;
    const u = utabEntryOf(utab, m);
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
