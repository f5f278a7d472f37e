/**
 * The FUSE control filesystem (fusectl): one directory per FUSE connection
 * under /sys/fs/fuse/connections, whose `abort` file ends every request of a
 * hung server at once. Many systems never mount it (systemd mounts it only
 * through sys-fs-fuse-connections.mount, which not every image has), and an
 * abort written to a missing file does nothing, so whoever must abort mounts
 * it first.
 */
import * as fs from 'node:fs';
import * as native from '../lib/native';

/** Where fusectl is (to be) mounted. */
export const FUSECTL_DIR = '/sys/fs/fuse/connections';

/**
 * The abort file of the FUSE connection of a mount whose mountinfo device is
 * `device` ("major:minor"). Connections are named by the kernel's dev_t of
 * the superblock, (major << 20) | minor: major 0 for `fuse`, and for
 * `fuseblk` the block device's own numbers.
 */
export function fusectlAbortFile(device: string | null): string | null {
  if (device === null) return null;
  const m = /^(\d+):(\d+)$/.exec(device);
  if (!m) return null;
  return `${FUSECTL_DIR}/${(Number(m[1]) << 20) | Number(m[2])}/abort`;
}

/** Mounts fusectl at FUSECTL_DIR unless it is there already; true when it is there after. */
export function ensureFusectl(): boolean {
  if (isFusectl()) return true;
  try {
    native.mount('fusectl', FUSECTL_DIR, 'fusectl', native.MS.NOSUID | native.MS.NODEV | native.MS.NOEXEC, null);
  } catch (err) {
    // EBUSY: someone mounted it meanwhile
    if (!(err instanceof native.SyscallError && err.code === 'EBUSY')) return false;
  }
  return isFusectl();
}

/** fusectl's magic number, as statfs reports it. */
const FUSECTL_SUPER_MAGIC = 0x65735543;

function isFusectl(): boolean {
  try {
    return fs.statfsSync(FUSECTL_DIR).type === FUSECTL_SUPER_MAGIC;
  } catch {
    return false;
  }
}

/**
 * Aborts the FUSE connection of the mount with mountinfo device `device`,
 * mounting fusectl first when it is absent: every pending and future request
 * fails with ENOTCONN, so a umount waiting for a DESTROY reply returns.
 * Returns what happened, for the caller's message.
 */
export function abortConnection(device: string): 'aborted' | 'no-fusectl' | 'gone' {
  const file = fusectlAbortFile(device);
  if (file === null) return 'gone';
  if (!ensureFusectl()) return 'no-fusectl';
  try {
    fs.writeFileSync(file, '1');
    return 'aborted';
  } catch {
    return 'gone'; // the connection ended on its own meanwhile
  }
}
