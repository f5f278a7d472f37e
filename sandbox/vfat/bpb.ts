/**
 * Boot sector (BPB) parsing and validation. Every field that later code
 * computes an offset from is checked here against the device size, so the
 * rest of the engine can trust the geometry. FAT12/16/32 is decided by the
 * count of data clusters, as Microsoft's specification says (fatgen103):
 * < 4085 → FAT12, < 65525 → FAT16, else FAT32; the type string in the boot
 * sector is ignored.
 */
import { MountRefused } from './errors';

export type FatType = 12 | 16 | 32;

export interface Geometry {
  fatType: FatType;
  bytesPerSector: number;
  sectorsPerCluster: number;
  clusterSize: number;
  reservedSectors: number;
  numFats: number;
  /** sectors per FAT */
  fatSectors: number;
  /** FAT12/16 fixed root directory entries (0 on FAT32) */
  rootEntries: number;
  totalSectors: number;
  /** data clusters: valid cluster numbers are 2 .. clusterCount + 1 */
  clusterCount: number;
  maxCluster: number;
  /** byte offset of FAT copy 0 */
  fatOffset: number;
  /** byte offset and length of the fixed root directory (FAT12/16) */
  rootDirOffset: number;
  rootDirBytes: number;
  /** byte offset of cluster 2 */
  dataOffset: number;
  /** FAT32 root directory cluster (0 on FAT12/16) */
  rootCluster: number;
  /** FAT32 FSInfo sector number, 0 when none */
  fsInfoSector: number;
  /** FAT32: FAT mirroring disabled, only `activeFat` is used */
  mirrorDisabled: boolean;
  activeFat: number;
  /** offset in sector 0 of BS_Reserved1 (the "state" byte Linux and Windows use as a dirty flag) */
  stateOffset: number;
  volumeId: number;
  /** label from the boot sector (the root directory's label entry wins when present) */
  bootLabel: string;
}

const pow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

/**
 * Parses sector 0. `deviceSize` bounds every region. Throws MountRefused
 * with a reason for anything that is not a FAT volume we can serve safely.
 */
export function parseBootSector(sector: Buffer, deviceSize: number): Geometry {
  if (sector.length < 512) throw new MountRefused('boot sector shorter than 512 bytes');
  const jmp = sector[0];
  if (!(jmp === 0xeb || jmp === 0xe9 || jmp === 0xe8)) throw new MountRefused(`no x86 jump instruction at the start of the boot sector (0x${jmp.toString(16)})`);
  const bytesPerSector = sector.readUInt16LE(11);
  if (!pow2(bytesPerSector) || bytesPerSector < 512 || bytesPerSector > 4096) throw new MountRefused(`invalid bytes per sector ${bytesPerSector}`);
  const sectorsPerCluster = sector[13];
  if (!pow2(sectorsPerCluster)) throw new MountRefused(`invalid sectors per cluster ${sectorsPerCluster}`);
  const clusterSize = bytesPerSector * sectorsPerCluster;
  if (clusterSize > 64 * 1024) throw new MountRefused(`cluster size ${clusterSize} above 64 KiB`);
  const reservedSectors = sector.readUInt16LE(14);
  if (reservedSectors === 0) throw new MountRefused('zero reserved sectors');
  const numFats = sector[16];
  if (numFats < 1 || numFats > 4) throw new MountRefused(`invalid number of FATs ${numFats}`);
  const rootEntries = sector.readUInt16LE(17);
  const totalSectors16 = sector.readUInt16LE(19);
  const media = sector[21];
  if (!(media === 0xf0 || media >= 0xf8)) throw new MountRefused(`invalid media descriptor 0x${media.toString(16)}`);
  const fatSectors16 = sector.readUInt16LE(22);
  const totalSectors32 = sector.readUInt32LE(32);
  const fatSectors32 = sector.readUInt32LE(36);
  const fatSectors = fatSectors16 !== 0 ? fatSectors16 : fatSectors32;
  if (fatSectors === 0) throw new MountRefused('zero sectors per FAT');
  const totalSectors = totalSectors16 !== 0 ? totalSectors16 : totalSectors32;
  if (totalSectors === 0) throw new MountRefused('zero total sectors');
  if (totalSectors * bytesPerSector > deviceSize) {
    throw new MountRefused(`the file system (${totalSectors * bytesPerSector} bytes) is larger than the device (${deviceSize} bytes)`);
  }
  const rootDirSectors = Math.ceil((rootEntries * 32) / bytesPerSector);
  const firstDataSector = reservedSectors + numFats * fatSectors + rootDirSectors;
  if (firstDataSector >= totalSectors) throw new MountRefused('no room for data after the FATs and the root directory');
  const clusterCount = Math.floor((totalSectors - firstDataSector) / sectorsPerCluster);
  if (clusterCount < 1) throw new MountRefused('no data clusters');
  const fatType: FatType = clusterCount < 4085 ? 12 : clusterCount < 65525 ? 16 : 32;
  const maxCluster = clusterCount + 1;
  // The FAT must hold an entry for every cluster.
  const fatBytesNeeded = fatType === 12 ? Math.ceil(((maxCluster + 1) * 3) / 2) : (maxCluster + 1) * (fatType / 8);
  if (fatSectors * bytesPerSector < fatBytesNeeded) throw new MountRefused(`FAT of ${fatSectors} sectors too small for ${clusterCount} clusters`);
  if (fatSectors * bytesPerSector > 256 * 1024 * 1024) throw new MountRefused('FAT larger than 256 MiB');

  let rootCluster = 0;
  let fsInfoSector = 0;
  let mirrorDisabled = false;
  let activeFat = 0;
  let stateOffset: number;
  let idOffset: number;
  let labelOffset: number;
  let sigOffset: number;
  if (fatType === 32) {
    if (rootEntries !== 0) throw new MountRefused('FAT32 with a fixed root directory size');
    if (fatSectors16 !== 0) throw new MountRefused('FAT32 with a 16-bit FAT size');
    const extFlags = sector.readUInt16LE(40);
    mirrorDisabled = (extFlags & 0x80) !== 0;
    activeFat = extFlags & 0x0f;
    if (mirrorDisabled && activeFat >= numFats) throw new MountRefused(`active FAT ${activeFat} does not exist`);
    const version = sector.readUInt16LE(42);
    if (version !== 0) throw new MountRefused(`unknown FAT32 version ${version}`);
    rootCluster = sector.readUInt32LE(44);
    if (rootCluster < 2 || rootCluster > maxCluster) throw new MountRefused(`root directory cluster ${rootCluster} out of range`);
    fsInfoSector = sector.readUInt16LE(48);
    if (fsInfoSector === 0xffff) fsInfoSector = 0;
    if (fsInfoSector !== 0 && fsInfoSector >= reservedSectors) throw new MountRefused(`FSInfo sector ${fsInfoSector} outside the reserved area`);
    stateOffset = 0x41;
    sigOffset = 0x42;
    idOffset = 0x43;
    labelOffset = 0x47;
  } else {
    if (rootEntries === 0) throw new MountRefused('FAT12/16 without root directory entries');
    if ((rootEntries * 32) % bytesPerSector !== 0 && fatType === 16) {
      // tolerated by Linux; the region is rounded up to whole sectors
    }
    stateOffset = 0x25;
    sigOffset = 0x26;
    idOffset = 0x27;
    labelOffset = 0x2b;
  }
  const hasExtended = sector[sigOffset] === 0x29 || sector[sigOffset] === 0x28;
  const volumeId = hasExtended ? sector.readUInt32LE(idOffset) : 0;
  const bootLabel = sector[sigOffset] === 0x29 ? sector.toString('latin1', labelOffset, labelOffset + 11).replace(/ +$/, '') : '';

  return {
    fatType,
    bytesPerSector,
    sectorsPerCluster,
    clusterSize,
    reservedSectors,
    numFats,
    fatSectors,
    rootEntries,
    totalSectors,
    clusterCount,
    maxCluster,
    fatOffset: reservedSectors * bytesPerSector,
    rootDirOffset: (reservedSectors + numFats * fatSectors) * bytesPerSector,
    rootDirBytes: rootEntries * 32,
    dataOffset: firstDataSector * bytesPerSector,
    rootCluster,
    fsInfoSector,
    mirrorDisabled,
    activeFat,
    stateOffset,
    volumeId,
    bootLabel,
  };
}

export interface FsInfo {
  freeCount: number;
  nextFree: number;
}

/** Parses the FSInfo sector; invalid signatures refuse the mount (Linux only warns; we want a clean state before writing). */
export function parseFsInfo(sector: Buffer, geo: Geometry): FsInfo {
  if (sector.readUInt32LE(0) !== 0x41615252) throw new MountRefused('FSInfo lead signature invalid');
  if (sector.readUInt32LE(484) !== 0x61417272) throw new MountRefused('FSInfo structure signature invalid');
  if (sector.readUInt32LE(508) !== 0xaa550000) throw new MountRefused('FSInfo trail signature invalid');
  let freeCount = sector.readUInt32LE(488);
  let nextFree = sector.readUInt32LE(492);
  if (freeCount > geo.clusterCount) freeCount = 0xffffffff;
  if (nextFree < 2 || nextFree > geo.maxCluster) nextFree = 0xffffffff;
  return { freeCount, nextFree };
}
