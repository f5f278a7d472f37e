/**
 * Filesystem images for the end-to-end scenarios, made on the host with the
 * distribution's own tools, and hostile variants of them.
 *
 * Every image holds the same small tree (sampleFiles()), so a scenario can
 * check what a user reads back byte for byte. Types whose mkfs cannot fill an
 * image (vfat, exfat, ntfs) are filled through their FUSE server on the host,
 * run in the foreground as our child and unmounted before the image is used.
 *
 * corrupt() makes a hostile image from a valid one, deterministically from a
 * seed: bytes flipped or randomised in the superblock / boot sector and in
 * the metadata the driver parses next (inode tables, FATs, directories, the
 * MFT, squashfs tables, ISO 9660 volume descriptors, path tables and
 * directory records with their Rock Ridge fields), located by parsing the
 * valid image (layoutOf()).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CLEAN_ENV, mountsUnder, run, runOk, sleep } from './host';
import { attachLoop, makeSparseFile } from './loop';

export type ImageType = 'ext4' | 'vfat' | 'exfat' | 'ntfs' | 'squashfs' | 'iso9660';
export const IMAGE_TYPES: readonly ImageType[] = ['ext4', 'vfat', 'exfat', 'ntfs', 'squashfs', 'iso9660'];

/** A small deterministic PRNG (mulberry32): the same seed gives the same bytes on every machine. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBytes(seed: number, size: number): Buffer {
  const r = prng(seed);
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = Math.floor(r() * 256);
  return b;
}

/**
 * The tree every image holds: path (relative, '/'-separated) → content.
 * Upper-case 8.3 names plus one long name, so FAT needs both kinds of entry.
 */
export function sampleFiles(): Map<string, Buffer> {
  return new Map<string, Buffer>([
    ['README.TXT', Buffer.from('fusegate end-to-end sample: if you can read this, the sandbox served it.\n')],
    ['A long file name.txt', Buffer.from('long names work\n')],
    ['DOCS/NOTES.TXT', Buffer.from(Array.from({ length: 40 }, (_, i) => `note ${i}: nothing to see here\n`).join(''))],
    ['DOCS/DEEP/LEAF.TXT', Buffer.from('the deepest file\n')],
    ['PHOTOS/IMG0001.JPG', randomBytes(1, 64 * 1024)],
    ['DATA.BIN', randomBytes(2, 200 * 1024)],
  ]);
}

/**
 * What disc images hold on top of sampleFiles(): names outside ASCII, which
 * Rock Ridge stores as bytes (UTF-8) and Joliet as UCS-2, in a directory
 * whose name is not ASCII either.
 */
export function discFiles(): Map<string, Buffer> {
  return new Map<string, Buffer>([
    ...sampleFiles(),
    ['Grüße aus Köln/日本語のファイル.txt', Buffer.from('ünïcødé inside, too: ✓\n')],
    ['Ελληνικά.bin', randomBytes(3, 3000)],
  ]);
}

export function writeSampleTree(dir: string, files = sampleFiles()): void {
  for (const [rel, data] of files) {
    const p = join(dir, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, data);
  }
}

export interface MakeImageOptions {
  sizeMiB?: number;
  label?: string;
  /** A scratch directory for the sample tree and temporary mountpoints. */
  scratch: string;
  /** ext4: without metadata_csum; squashfs: metadata and data uncompressed. */
  plain?: boolean;
  /** Leave the image empty (only mkfs). */
  empty?: boolean;
}

/** Makes an image of `type` at `path` holding sampleFiles() (unless `empty`). */
export async function makeImage(type: ImageType, path: string, opts: MakeImageOptions): Promise<void> {
  const label = opts.label ?? 'FGE2E';
  const tree = join(opts.scratch, `tree-${type}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(tree, { recursive: true });
  if (!opts.empty) writeSampleTree(tree);
  const size = opts.sizeMiB ?? 16;
  switch (type) {
    case 'ext4': {
      makeSparseFile(path, size);
      const features = opts.plain ? ['-O', '^metadata_csum,^metadata_csum_seed'] : [];
      await runOk(['mkfs.ext4', '-q', '-F', '-L', label, ...features, '-d', tree, path], { timeoutMs: 60_000 });
      break;
    }
    case 'squashfs': {
      const plain = opts.plain ? ['-noI', '-noD', '-noF', '-noX'] : [];
      await runOk(['mksquashfs', tree, path, '-quiet', '-no-progress', '-noappend', '-all-root', ...plain], { timeoutMs: 60_000 });
      break;
    }
    case 'iso9660':
      // Joliet and Rock Ridge, as distribution images have them, with non-ASCII names too.
      if (!opts.empty) writeSampleTree(tree, discFiles());
      await runOk(['genisoimage', '-quiet', '-J', '-R', '-input-charset', 'utf-8', '-V', label, '-o', path, tree], { timeoutMs: 60_000 });
      break;
    case 'vfat':
      makeSparseFile(path, size);
      await runOk(['mkfs.vfat', '-F', '16', '-n', label, path], { timeoutMs: 60_000 });
      if (!opts.empty) await fillThroughFuse(['fusefat', '-f', '-o', 'rw+'], path, tree, opts.scratch);
      await runOk(['fsck.vfat', '-n', path], { timeoutMs: 60_000 });
      break;
    case 'exfat':
      makeSparseFile(path, size);
      await runOk(['mkfs.exfat', '-L', label, path], { timeoutMs: 60_000 });
      if (!opts.empty) {
        // exfat-fuse run by root asks for a fuseblk mount, which needs a block device.
        const loop = await attachLoop(path);
        try {
          // -d: libfuse's debug mode, which keeps the server in the foreground.
          await fillThroughFuse(['mount.exfat-fuse', '-d'], loop.path, tree, opts.scratch);
        } finally {
          await loop.detach();
        }
      }
      break;
    case 'ntfs':
      makeSparseFile(path, size);
      await runOk(['mkntfs', '-q', '-F', '-f', '-L', label, path], { timeoutMs: 60_000 });
      if (!opts.empty) await fillThroughFuse(['ntfs-3g', '-o', 'no_detach'], path, tree, opts.scratch);
      break;
  }
  await run(['rm', '-rf', '--one-file-system', '--', tree], { timeoutMs: 30_000 });
}

/**
 * Mounts `image` on the host with a FUSE server run in the foreground as our
 * child (`server` IMAGE DIR), copies `tree` in, unmounts, and waits for the
 * server to exit: only then has it written everything back to the image.
 */
async function fillThroughFuse(server: string[], image: string, tree: string, scratch: string): Promise<void> {
  const mnt = join(scratch, `fill-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(mnt);
  const child: ChildProcess = spawn(server[0]!, [...server.slice(1), image, mnt], { env: CLEAN_ENV, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(-1));
  });
  let mounted = false;
  try {
    for (let i = 0; i < 200 && !mounted; i++) {
      if (child.exitCode !== null || child.signalCode !== null) break;
      mounted = mountsUnder(mnt).includes(mnt);
      if (!mounted) await sleep(25);
    }
    if (!mounted) throw new Error(`${server[0]} did not mount ${image}: ${stderr}`);
    await runOk(['cp', '-r', '--', `${tree}/.`, `${mnt}/`], { timeoutMs: 60_000 });
    await runOk(['sync', '-f', mnt], { timeoutMs: 60_000 });
  } finally {
    if (mountsUnder(mnt).includes(mnt)) await run(['umount', mnt], { timeoutMs: 30_000 });
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([exited, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), 20_000)))]);
    clearTimeout(timer);
    if (code === 'timeout' && child.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      await exited;
    }
    if (mountsUnder(mnt).includes(mnt)) await run(['umount', '-l', mnt], { timeoutMs: 30_000 });
    await run(['rmdir', mnt], { timeoutMs: 10_000 });
  }
}

// ------------------------------------------------------------ hostile images

export interface Region {
  name: string;
  offset: number;
  length: number;
}

/** Where the metadata of a valid image lies, and how to re-seal checksums after corrupting it. */
export interface Layout {
  type: ImageType;
  /** The superblock / boot sector. */
  header: Region[];
  /** Tables and directories the driver parses after the header. */
  metadata: Region[];
  /** Recomputes a checksum over the header, so corruption gets past the first check. */
  reseal?: (image: Buffer) => void;
}

export interface Change {
  offset: number;
  from: number;
  to: number;
  region: string;
}

export interface Corruption {
  seed: number;
  strategy: 'header' | 'metadata' | 'header+metadata' | 'blast';
  resealed: boolean;
  changes: Change[];
}

const STRATEGIES: readonly Corruption['strategy'][] = ['header', 'metadata', 'header+metadata', 'blast'];

/**
 * Corrupts a copy of `base` from `seed`: seed % 4 picks the strategy, and
 * when the layout can re-seal a header checksum, seeds 0-3, 8-11, 16-19, …
 * re-seal it (so the corrupted header is believed) and the others do not.
 */
export function corrupt(base: Buffer, layout: Layout, seed: number): { image: Buffer; corruption: Corruption } {
  const image = Buffer.from(base);
  const r = prng(0x9e3779b9 ^ seed);
  const int = (n: number) => Math.floor(r() * n);
  const strategy = STRATEGIES[seed % 4]!;
  const changes: Change[] = [];
  const mutate = (regions: Region[], count: number) => {
    const usable = regions.filter((g) => g.length > 0 && g.offset + g.length <= image.length);
    if (usable.length === 0) return;
    for (let i = 0; i < count; i++) {
      const g = usable[int(usable.length)]!;
      const offset = g.offset + int(g.length);
      const from = image[offset]!;
      const k = r();
      // Random bytes, single bit flips, and the boundary values sizes and counts hate.
      const to = k < 0.5 ? int(256) : k < 0.8 ? from ^ (1 << int(8)) : r() < 0.5 ? 0x00 : 0xff;
      image[offset] = to;
      changes.push({ offset, from, to, region: g.name });
    }
  };
  switch (strategy) {
    case 'header':
      mutate(layout.header, 1 + int(8));
      break;
    case 'metadata':
      mutate(layout.metadata, 8 + int(56));
      break;
    case 'header+metadata':
      mutate(layout.header, 1 + int(4));
      mutate(layout.metadata, 8 + int(24));
      break;
    case 'blast':
      mutate([{ name: 'first 64 KiB', offset: 0, length: Math.min(65536, image.length) }], 256);
      mutate(layout.metadata, 16);
      break;
  }
  const resealed = layout.reseal !== undefined && Math.floor(seed / 4) % 2 === 0;
  if (resealed) layout.reseal!(image);
  return { image, corruption: { seed, strategy, resealed, changes: changes.filter((c) => c.from !== c.to) } };
}

/** Overwrites the contents of `file` in place (same size: a loop device over it keeps working). */
export function overwriteInPlace(file: string, data: Buffer): void {
  const fd = openSync(file, 'r+');
  try {
    let done = 0;
    while (done < data.length) done += writeSync(fd, data, done, data.length - done, done);
  } finally {
    closeSync(fd);
  }
}

/** Finds the metadata of a valid image of `type`. */
export async function layoutOf(type: ImageType, path: string): Promise<Layout> {
  const img = readFileSync(path);
  switch (type) {
    case 'ext4':
      return ext4Layout(path, img);
    case 'vfat':
      return vfatLayout(img);
    case 'exfat':
      return exfatLayout(img);
    case 'ntfs':
      return ntfsLayout(img);
    case 'squashfs':
      return squashfsLayout(img);
    case 'iso9660':
      return isoLayout(img);
  }
}

async function ext4Layout(path: string, img: Buffer): Promise<Layout> {
  const dump = (await runOk(['dumpe2fs', path], { timeoutMs: 30_000 })).stdout;
  const num = (re: RegExp): number => {
    const m = re.exec(dump);
    if (!m) throw new Error(`dumpe2fs ${path}: no match for ${re}`);
    return Number(m[1]);
  };
  const bs = num(/^Block size:\s+(\d+)/m);
  const inodeSize = num(/^Inode size:\s+(\d+)/m);
  const block = (n: number, name: string, count = 1): Region => ({ name, offset: n * bs, length: count * bs });
  const metadata: Region[] = [];
  const gd = /Group descriptors at (\d+)-(\d+)/.exec(dump);
  if (gd) metadata.push(block(Number(gd[1]), 'group descriptors', Number(gd[2]) - Number(gd[1]) + 1));
  const bb = /Block bitmap at (\d+)/.exec(dump);
  if (bb) metadata.push(block(Number(bb[1]), 'block bitmap'));
  const ib = /Inode bitmap at (\d+)/.exec(dump);
  if (ib) metadata.push(block(Number(ib[1]), 'inode bitmap'));
  const it = /Inode table at (\d+)-(\d+)/.exec(dump);
  // The first 32 inodes of group 0: the root, the journal, lost+found and the sample files.
  if (it) metadata.push({ name: 'inode table', offset: Number(it[1]) * bs, length: 32 * inodeSize });
  // Directory blocks of the root and the sample directories, and the journal superblock.
  for (const [spec, name] of [['/', 'root directory'], ['/DOCS', 'DOCS directory'], ['/DOCS/DEEP', 'DEEP directory'], ['<8>', 'journal superblock']] as const) {
    const r = await run(['debugfs', '-R', `blocks ${spec}`, path], { timeoutMs: 30_000 });
    const first = Number(r.stdout.trim().split(/\s+/)[0]);
    if (Number.isInteger(first) && first > 0) metadata.push(block(first, name));
  }
  const hasCsum = /^Filesystem features:.*\bmetadata_csum\b/m.test(dump);
  void img;
  return {
    type: 'ext4',
    header: [{ name: 'superblock', offset: 1024, length: 1024 }],
    metadata,
    // The superblock's crc32c (metadata_csum), so a corrupted superblock is believed.
    reseal: hasCsum ? (b) => b.writeUInt32LE(crc32c(b.subarray(1024, 1024 + 1020)), 1024 + 1020) : undefined,
  };
}

function vfatLayout(img: Buffer): Layout {
  const bps = img.readUInt16LE(11);
  const spc = img[13]!;
  const reserved = img.readUInt16LE(14);
  const fats = img[16]!;
  const rootEntries = img.readUInt16LE(17);
  const fatSize = img.readUInt16LE(22);
  const fatStart = reserved * bps;
  const rootStart = fatStart + fats * fatSize * bps;
  const dataStart = rootStart + rootEntries * 32;
  const cluster = spc * bps;
  const metadata: Region[] = [
    { name: 'FAT 1', offset: fatStart, length: Math.min(fatSize * bps, 2048) },
    { name: 'FAT 2', offset: fatStart + fatSize * bps, length: Math.min(fatSize * bps, 2048) },
    { name: 'root directory', offset: rootStart, length: Math.min(rootEntries * 32, 1024) },
  ];
  // The first cluster of each subdirectory in the root.
  for (let o = rootStart; o < rootStart + rootEntries * 32; o += 32) {
    if (img[o] === 0) break;
    if (img[o] === 0xe5 || img[o + 11] === 0x0f) continue;
    if ((img[o + 11]! & 0x10) !== 0) {
      const first = img.readUInt16LE(o + 26);
      if (first >= 2) metadata.push({ name: 'subdirectory', offset: dataStart + (first - 2) * cluster, length: Math.min(cluster, 1024) });
    }
  }
  return { type: 'vfat', header: [{ name: 'boot sector', offset: 0, length: 512 }], metadata };
}

function exfatLayout(img: Buffer): Layout {
  const bps = 1 << img[108]!;
  const cluster = bps << img[109]!;
  const fatStart = img.readUInt32LE(80) * bps;
  const heap = img.readUInt32LE(88) * bps;
  const rootCluster = img.readUInt32LE(96);
  const clusterAt = (n: number) => heap + (n - 2) * cluster;
  const root = clusterAt(rootCluster);
  const metadata: Region[] = [
    { name: 'FAT', offset: fatStart, length: 1024 },
    { name: 'root directory', offset: root, length: Math.min(cluster, 4096) },
  ];
  // Entries of the root: allocation bitmap (0x81), up-case table (0x82), and
  // the stream extension (0xC0) of each subdirectory's file entry (0x85).
  let dirAttr = false;
  for (let o = root; o < root + Math.min(cluster, 4096); o += 32) {
    const t = img[o]!;
    if (t === 0) break;
    if (t === 0x81) metadata.push({ name: 'allocation bitmap', offset: clusterAt(img.readUInt32LE(o + 20)), length: 512 });
    if (t === 0x82) metadata.push({ name: 'up-case table', offset: clusterAt(img.readUInt32LE(o + 20)), length: 512 });
    if (t === 0x85) dirAttr = (img.readUInt16LE(o + 4) & 0x10) !== 0;
    if (t === 0xc0 && dirAttr) {
      metadata.push({ name: 'subdirectory', offset: clusterAt(img.readUInt32LE(o + 20)), length: Math.min(cluster, 1024) });
      dirAttr = false;
    }
  }
  return {
    type: 'exfat',
    header: [{ name: 'boot sector', offset: 0, length: 512 }],
    metadata,
    // The boot checksum sector (sector 11) over sectors 0-10, so a corrupted boot sector is believed.
    reseal: (b) => {
      const size = 1 << b[108]!;
      if (size < 512 || size > 4096) return;
      let sum = 0;
      for (let i = 0; i < 11 * size; i++) {
        if (i === 106 || i === 107 || i === 112) continue;
        sum = (((sum & 1) << 31) | (sum >>> 1)) + b[i]!;
        sum >>>= 0;
      }
      for (let i = 11 * size; i < 12 * size; i += 4) b.writeUInt32LE(sum, i);
    },
  };
}

function ntfsLayout(img: Buffer): Layout {
  const bps = img.readUInt16LE(11);
  const cluster = bps * img[13]!;
  const mft = Number(img.readBigUInt64LE(48)) * cluster;
  const mirr = Number(img.readBigUInt64LE(56)) * cluster;
  const perRecord = img.readInt8(64);
  const record = perRecord < 0 ? 1 << -perRecord : perRecord * cluster;
  return {
    type: 'ntfs',
    header: [{ name: 'boot sector', offset: 0, length: 512 }],
    metadata: [
      // $MFT, $MFTMirr, $LogFile, $Volume, $AttrDef, the root directory, $Bitmap, … and the first user files.
      { name: 'MFT records 0-31', offset: mft, length: 32 * record },
      { name: 'MFT mirror', offset: mirr, length: 4 * record },
    ],
  };
}

function squashfsLayout(img: Buffer): Layout {
  const u64 = (o: number) => Number(img.readBigUInt64LE(o));
  const bytesUsed = u64(40);
  const idTable = u64(48);
  const inodeTable = u64(64);
  const dirTable = u64(72);
  const fragTable = u64(80);
  const ends = [fragTable, idTable, u64(88), bytesUsed].filter((x) => x > dirTable && x <= bytesUsed);
  const dirEnd = Math.min(...ends);
  return {
    type: 'squashfs',
    header: [{ name: 'superblock', offset: 0, length: 96 }],
    metadata: [
      { name: 'inode table', offset: inodeTable, length: Math.min(dirTable - inodeTable, 8192) },
      { name: 'directory table', offset: dirTable, length: Math.min(dirEnd - dirTable, 8192) },
      { name: 'id table', offset: idTable, length: 16 },
      ...(fragTable < bytesUsed ? [{ name: 'fragment table', offset: fragTable, length: 16 }] : []),
    ],
  };
}

const ISO_SECTOR = 2048;

/**
 * ISO 9660 (ECMA-119): the volume descriptors from sector 16 on (the primary
 * one, Joliet's supplementary one, the terminator), and what a reader parses
 * from them: the path tables, and the directory extents of the primary tree
 * (whose records carry the Rock Ridge fields in their system use area) and of
 * the Joliet tree (UCS-2 names), the root's and one level below.
 */
function isoLayout(img: Buffer): Layout {
  const header: Region[] = [];
  const metadata: Region[] = [];
  const dirs = (extent: number, size: number, tree: string, depth: number) => {
    const start = extent * ISO_SECTOR;
    if (start <= 0 || start + size > img.length) return;
    metadata.push({ name: `${tree} directory`, offset: start, length: Math.min(size, 4096) });
    if (depth > 0) return;
    for (let o = start; o < start + Math.min(size, ISO_SECTOR); ) {
      const len = img[o]!;
      if (len === 0) break;
      const nameLen = img[o + 32]!;
      const isDir = (img[o + 25]! & 0x02) !== 0;
      const self = nameLen === 1 && (img[o + 33] === 0 || img[o + 33] === 1);
      if (isDir && !self) dirs(img.readUInt32LE(o + 2), img.readUInt32LE(o + 10), tree, depth + 1);
      o += len;
    }
  };
  for (let s = 16; s < 32 && (s + 1) * ISO_SECTOR <= img.length; s++) {
    const vd = s * ISO_SECTOR;
    const type = img[vd]!;
    if (img.toString('latin1', vd + 1, vd + 6) !== 'CD001') break;
    const what = type === 1 ? 'primary' : type === 2 ? 'Joliet' : type === 255 ? 'terminator' : `type ${type}`;
    // Up to the end of the root directory record: the sizes, path table
    // locations, Joliet's escape sequences and the root record itself.
    header.push({ name: `${what} volume descriptor`, offset: vd, length: type === 255 ? 7 : 190 });
    if (type === 255) break;
    if (type !== 1 && type !== 2) continue;
    const ptSize = img.readUInt32LE(vd + 132);
    for (const [field, le] of [[140, true], [148, false]] as const) {
      const at = (le ? img.readUInt32LE(vd + field) : img.readUInt32BE(vd + field)) * ISO_SECTOR;
      if (at > 0 && at + ptSize <= img.length) metadata.push({ name: `${what} ${le ? 'L' : 'M'} path table`, offset: at, length: Math.min(ptSize, 2048) });
    }
    dirs(img.readUInt32LE(vd + 156 + 2), img.readUInt32LE(vd + 156 + 10), what, 0);
  }
  if (header.length === 0) throw new Error('not an ISO 9660 image: no volume descriptor at sector 16');
  return { type: 'iso9660', header, metadata };
}

let crcTable: Uint32Array | undefined;

/** CRC-32C (Castagnoli) as ext4 uses it: seed ~0, no final inversion. */
export function crc32c(data: Uint8Array, seed = 0xffffffff): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = seed >>> 0;
  for (const byte of data) crc = (crcTable[(crc ^ byte) & 0xff]! ^ (crc >>> 8)) >>> 0;
  return crc >>> 0;
}
