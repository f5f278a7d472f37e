/**
 * Records a FUSE mount in /run/mount/utab the way libfuse does: a fake
 * (`mount -f`) mount with only userspace options, so findmnt, umount and
 * udisks2 see the x-fusegate.* and uhelper= options. umount(8) removes the
 * entry again. Done with libmount in-process, as mount(8) would do it.
 */
import { libmountMount } from '../lib/native';
import type { MountOptions } from '../policy/options';
import { UNIT_OPTION } from '../lib/instance';

/** Returns null on success, else what went wrong. */
export async function recordInUtab(source: string, mountpoint: string, fsType: string, options: string[]): Promise<string | null> {
  const r = await libmountMount({ source, target: mountpoint, fsType, options, fake: true, noCanonicalize: true });
  return r.code === 0 ? null : `mount -f failed with exit code ${r.code}${r.message ? `: ${r.message}` : ''}`;
}

export interface SandboxRecord {
  backend: string;
  /** the service instance serving the mount, when known */
  unit: string | null;
  rule: string;
  /** the decision's options: their userspace ones (uhelper=, x-*) are recorded */
  mount: MountOptions;
  /** what the server asked for in MTAB; utabDisabled when it sent -n */
  server: { utabOptions: string[]; utabDisabled: boolean };
}

/**
 * The utab options of a sandboxed mount. fusegate's own come first and are
 * written whatever the server asked (its -n drops only its own options):
 * helper=fusegate makes umount(8) run umount.fusegate, which waits for the
 * server named by x-fusegate.unit= to finish writing. The helper refuses a
 * server's x-fusegate.* in MTAB, so the first match is fusegate's.
 */
export function sandboxUtabOptions(r: SandboxRecord): string[] {
  return [
    'helper=fusegate',
    `x-fusegate.backend=${r.backend}`,
    ...(r.unit ? [`${UNIT_OPTION}=${r.unit}`] : []),
    `x-fusegate.rule=${r.rule}`,
    ...r.mount.userspace,
    ...(r.server.utabDisabled ? [] : r.server.utabOptions.filter((o) => !o.startsWith('x-fusegate.'))),
  ];
}
