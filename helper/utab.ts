/**
 * Records a FUSE mount in /run/mount/utab the way libfuse does: a fake
 * (`-f`) mount(8) call with only userspace options, so findmnt, umount and
 * udisks2 see the x-fusegate.* and uhelper= options. umount(8) removes the
 * entry again.
 */
import { run } from '../lib/native';
import { MOUNT_BIN } from './kernel-mount';

/** Returns null on success, else what went wrong. */
export async function recordInUtab(source: string, mountpoint: string, fsType: string, options: string[]): Promise<string | null> {
  const status = await run(MOUNT_BIN, ['mount', '--no-canonicalize', '-i', '-f', '-t', fsType, '-o', options.join(','), source, mountpoint]);
  return status.code === 0 ? null : `mount -f exited ${status.code}${status.signal ? ` (signal ${status.signal})` : ''}`;
}

/** The userspace options a requested option list carries into utab. */
export function userspaceOptions(options: readonly string[]): string[] {
  return options.filter((o) => o.startsWith('uhelper=') || o.startsWith('x-'));
}
