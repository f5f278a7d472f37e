/**
 * Records a FUSE mount in /run/mount/utab the way libfuse does: a fake
 * (`-f`) mount(8) call with only userspace options, so findmnt, umount and
 * udisks2 see the x-fusegate.* and uhelper= options. umount(8) removes the
 * entry again.
 */
import { spawnSync } from 'node:child_process';
import { MOUNT_BIN } from './kernel-mount';

export function recordInUtab(source: string, mountpoint: string, fsType: string, options: string[]): string | null {
  const r = spawnSync(
    MOUNT_BIN,
    ['--no-canonicalize', '-i', '-f', '-t', fsType, '-o', options.join(','), source, mountpoint],
    { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' },
  );
  if (r.error) return r.error.message;
  return r.status === 0 ? null : (r.stderr ?? '').trim() || `mount -f exited ${r.status}`;
}

/** The userspace options a requested option list carries into utab. */
export function userspaceOptions(options: readonly string[]): string[] {
  return options.filter((o) => o.startsWith('uhelper=') || o.startsWith('x-'));
}
