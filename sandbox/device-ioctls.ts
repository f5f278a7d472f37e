/**
 * Which block-device ioctls a FUSE server may make on its source fd. The
 * server holds an fd to the user's device, and an fd is all some ioctls ask
 * for: LOOP_CLR_FD detaches a loop device through a read-only fd, BLKRRPART
 * rereads its partition table. The unit's SystemCallFilter cannot tell ioctl
 * commands apart, so the adapter adds a seccomp filter (lib/native:
 * restrictDeviceIoctls) just before execve: every block (0x12xx), loop
 * (0x4Cxx) and SCSI generic (0x22xx, SG_IO) command fails with EPERM unless
 * listed here. Other ioctls pass untouched: /dev/fuse's (FUSE_DEV_IOC_CLONE)
 * and the tty ones libc makes are in other ranges.
 *
 * The list is what the five Debian servers ask (strace -f -e trace=ioctl on
 * real mounts: fuse2fs, fusefat, exfat-fuse, ntfs-3g, squashfuse) plus the
 * other queries that only read the device's geometry.
 */

/** Read-only queries of the device's size and geometry. */
export const BLOCK_QUERY_IOCTLS = {
  BLKROGET: 0x125e,
  BLKGETSIZE: 0x1260,
  BLKRAGET: 0x1263,
  BLKSSZGET: 0x1268,
  BLKBSZGET: 0x80081270,
  BLKGETSIZE64: 0x80081272,
  BLKIOMIN: 0x1278,
  BLKIOOPT: 0x1279,
  BLKALIGNOFF: 0x127a,
  BLKPBSZGET: 0x127b,
  BLKDISCARDZEROES: 0x127c,
  BLKROTATIONAL: 0x127e,
  BLKGETDISKSEQ: 0x80081280,
} as const;

/** Writes to the filesystem's own blocks: only where the mount may write. */
export const BLOCK_WRITE_IOCTLS = {
  BLKDISCARD: 0x1277,
  BLKZEROOUT: 0x127f,
} as const;

/** The ioctl commands in the filtered ranges that a server may make. */
export function allowedDeviceIoctls(readOnly: boolean): number[] {
  return [...Object.values(BLOCK_QUERY_IOCTLS), ...(readOnly ? [] : Object.values(BLOCK_WRITE_IOCTLS))];
}
