/**
 * Records a FUSE mount in /run/mount/utab the way libfuse does: a fake
 * (`mount -f`) mount with only userspace options, so findmnt, umount and
 * udisks2 see the x-fusegate.* and uhelper= options. umount(8) removes the
 * entry again. Done with libmount in-process, as mount(8) would do it.
 */
import { libmountMount } from '../lib/native';

/** Returns null on success, else what went wrong. */
export async function recordInUtab(source: string, mountpoint: string, fsType: string, options: string[]): Promise<string | null> {
  const r = await libmountMount({ source, target: mountpoint, fsType, options, fake: true, noCanonicalize: true });
  return r.code === 0 ? null : `mount -f failed with exit code ${r.code}${r.message ? `: ${r.message}` : ''}`;
}

/** The userspace options a requested option list carries into utab. */
export function userspaceOptions(options: readonly string[]): string[] {
  return options.filter((o) => o.startsWith('uhelper=') || o.startsWith('x-'));
}
