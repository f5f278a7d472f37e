/**
 * Plain words for what the probe found when it is not what the caller asked
 * for: nothing at all (a zeroed or damaged superblock, a blank medium), more
 * than one thing, or another filesystem than -t named. Each message says
 * what was asked, what was found, that the medium may be damaged, and the
 * read-only command that checks it. Pure: facts in, words out.
 */
import type { Facts } from './types';

/** The type's own checker, in its read-only (no-repair) mode. */
export function checkCommand(fsType: string | null, source: string): string {
  switch (fsType) {
    case 'ext2': case 'ext3': case 'ext4':
      return `fsck.${fsType} -n ${source}`;
    case 'vfat': case 'msdos': case 'fat': case 'fat12': case 'fat16': case 'fat32':
      return `fsck.vfat -n ${source}`;
    case 'exfat':
      return `fsck.exfat -n ${source}`;
    case 'ntfs': case 'ntfs3':
      return `ntfsfix -n ${source}`;
    case 'squashfs':
      return `unsquashfs -stat ${source}`;
    default:
      return `blkid -p ${source}`;
  }
}

/** What the caller asked for, from -t. */
function asked(f: Facts): string | null {
  const t = f.requestedType.value;
  return t === null || t === 'auto' || t.startsWith('fusegate') ? requestedViaFusegate(t) : t;
}

/** mount -t fusegate.ext4 asks for ext4 through fusegate. */
function requestedViaFusegate(t: string | null): string | null {
  if (t === null || t === 'auto') return null;
  const m = /^fusegate\.(.+)$/.exec(t);
  return m ? m[1]! : null;
}

export interface Words {
  /** one line: what happened */
  what: string;
  /** one line: what to do */
  todo: string;
}

/**
 * When the probe found no single filesystem on a device or image: what was
 * asked and what was found. Null when a filesystem was found, or the source
 * is not something a probe can read (missing, a directory).
 */
export function noFilesystemWords(f: Facts): Words | null {
  if (f.type.value !== null || (f.kind.value !== 'block' && f.kind.value !== 'image')) return null;
  const src = f.path.value ?? f.source.value;
  const want = asked(f);
  const i = f.type.source.indexOf(': ');
  const found = i >= 0 ? f.type.source.slice(i + 2) : 'no filesystem signature found';
  const what = want !== null
    ? `asked for ${want}, but no ${want} filesystem was found on ${src} (${found}): the medium may be damaged`
    : `no filesystem was found on ${src} (${found}): the medium may be damaged or blank`;
  const todo = want !== null
    ? `check it without changing it: ${checkCommand(want, src)}`
    : `see what it holds without changing it: ${checkCommand(null, src)}`;
  return { what, todo };
}

/**
 * When -t named one type and the probe found another that is mounted
 * anyway (the probed type decides): one line for stderr and the journal.
 */
export function mismatchWords(f: Facts): string | null {
  const want = asked(f);
  const got = f.type.value;
  if (want === null || got === null || want === got) return null;
  const src = f.path.value ?? f.source.value;
  return `asked for ${want}, but ${src} holds ${got}: mounting it as ${got}, as the probe found it; ` +
    `if it should be ${want}, the medium may be mislabelled or damaged: check it with ${checkCommand(want, src)}`;
}
