/**
 * Dirty images for the preflight scenarios (docs/preflight.md): the state a
 * stick is in after it was pulled while mounted, set on a clean image.
 * ext4 with e2fsprogs' own debugfs; the others by setting the one flag their
 * own drivers set while mounted (none of their Debian tools can set it):
 *
 * - ext4: s_state "not clean" (debugfs ssv state 0), as after a crash;
 * - vfat: the boot sector's dirty bit (FAT12/16 offset 0x25, FAT32 0x41, bit 0);
 * - exfat: VolumeFlags bit 1, VolumeDirty (offset 106; outside the boot checksum);
 * - ntfs: the VOLUME_IS_DIRTY flag of $Volume's VOLUME_INFORMATION, in $MFT
 *   and $MFTMirr alike (record 3 is mirrored).
 */
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import type { ImageType } from './images';
import { run, runOk } from './host';

function readAt(fd: number, offset: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  readSync(fd, b, 0, length, offset);
  return b;
}

function ntfsDirty(fd: number): void {
  const boot = readAt(fd, 0, 512);
  const cluster = boot.readUInt16LE(0x0b) * boot.readUInt8(0x0d);
  const raw = boot.readInt8(0x40);
  const recordSize = raw < 0 ? 1 << -raw : raw * cluster;
  const mft = Number(boot.readBigInt64LE(0x30)) * cluster + 3 * recordSize;
  const mirror = Number(boot.readBigInt64LE(0x38)) * cluster + 3 * recordSize;
  const rec = readAt(fd, mft, recordSize);
  if (rec.toString('latin1', 0, 4) !== 'FILE') throw new Error('ntfs: MFT record 3 is not a FILE record');
  for (let a = rec.readUInt16LE(0x14); a + 8 <= rec.length; ) {
    const type = rec.readUInt32LE(a);
    if (type === 0xffffffff) break;
    if (type === 0x70) {
      // VOLUME_INFORMATION: 8 reserved bytes, major, minor, then the flags (u16)
      const at = a + rec.readUInt16LE(a + 0x14) + 10;
      if (at % 512 >= 510) throw new Error('ntfs: the flags sit under an update sequence fixup');
      rec.writeUInt16LE(rec.readUInt16LE(at) | 0x0001, at);
      writeSync(fd, rec, 0, rec.length, mft);
      writeSync(fd, rec, 0, rec.length, mirror);
      return;
    }
    a += rec.readUInt32LE(a + 4);
  }
  throw new Error('ntfs: $Volume has no VOLUME_INFORMATION');
}

/** Marks the filesystem in `image` dirty, as an unclean unmount would. */
export async function markDirty(type: ImageType, image: string): Promise<void> {
  if (type === 'ext4') {
    await runOk(['debugfs', '-w', '-R', 'ssv state 0', image], { timeoutMs: 30_000 });
    return;
  }
  const fd = openSync(image, 'r+');
  try {
    if (type === 'vfat') {
      const boot = readAt(fd, 0, 512);
      const at = boot.toString('latin1', 0x52, 0x5a) === 'FAT32   ' ? 0x41 : 0x25;
      writeSync(fd, Buffer.from([boot[at]! | 0x01]), 0, 1, at);
    } else if (type === 'exfat') {
      const flags = readAt(fd, 106, 2);
      writeSync(fd, Buffer.from([flags[0]! | 0x02, flags[1]!]), 0, 2, 106);
    } else if (type === 'ntfs') {
      ntfsDirty(fd);
    } else {
      throw new Error(`no dirty state for ${type}`);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * What the type's own checker says about `image` on the host, outside any
 * sandbox: clean, or the reason it is not.
 */
export async function hostVerdict(type: ImageType, image: string): Promise<string> {
  const checks: Record<string, string[][]> = {
    // -n first: a forced check (-f) does not say why it would have checked
    ext4: [['e2fsck', '-n', image], ['e2fsck', '-fn', image]],
    vfat: [['fsck.fat', '-n', image]],
    exfat: [['fsck.exfat', '-n', image]],
    ntfs: [['ntfsfix', '-n', image], ['ntfsinfo', '-m', image]],
  };
  for (const argv of checks[type]!) {
    const r = await run(argv, { timeoutMs: 60_000 });
    const said = `${r.stdout}\n${r.stderr}`;
    if (r.code !== 0) return `${argv[0]} exited ${r.code}: ${said.trim().split('\n').slice(-3).join(' / ')}`;
    if (/was not cleanly unmounted|skipping journal recovery|Dirty bit is set|scheduled for check/.test(said)) return `${argv[0]}: ${said.trim()}`;
  }
  if (type === 'exfat') {
    const fd = openSync(image, 'r');
    try {
      if ((readAt(fd, 106, 2)[0]! & 0x02) !== 0) return 'the exFAT VolumeDirty flag is still set';
    } finally {
      closeSync(fd);
    }
  }
  return 'clean';
}
