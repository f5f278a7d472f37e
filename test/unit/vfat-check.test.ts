/**
 * checkVolume against fsck.fat -n: images made by mkfs.vfat and filled by
 * mtools, then corrupted on purpose in one way each (cross-link, loop,
 * out-of-range link, a link into a free cluster, size/chain mismatch, lost
 * clusters, a directory pointing into a file). For every image both must
 * agree on clean / not clean, and checkVolume must name the problem.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkVolume, type ProblemKind } from '../../sandbox/vfat/check';
import { Volume } from '../../sandbox/vfat/volume';
import { fsck, mkfs, mtools, tmpDir } from '../support/vfat/tools';

let work: string;
let base16: Buffer;
let base32: Buffer;

beforeAll(() => {
  work = tmpDir('fusegate-vfat-check-');
  for (const t of [16, 32] as const) {
    const img = path.join(work, `base${t}.img`);
    mkfs(img, t);
    mtools('mcopy', ['-i', img, '-', '::/a.txt'], Buffer.alloc(3000, 'a'));
    mtools('mcopy', ['-i', img, '-', '::/b.txt'], Buffer.alloc(2500, 'b'));
    mtools('mmd', ['-i', img, '::/Sub']);
    mtools('mcopy', ['-i', img, '-', '::/Sub/c.txt'], Buffer.alloc(700, 'c'));
    if (t === 16) base16 = fs.readFileSync(img);
    else base32 = fs.readFileSync(img);
  }
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** An image with one corruption applied by `edit`, which gets the layout from the engine itself. */
function corrupted(fatType: 16 | 32, name: string, edit: (img: Buffer, at: Layout) => void): string {
  const img = Buffer.from(fatType === 16 ? base16 : base32);
  const file = path.join(work, `${name}-${fatType}.img`);
  fs.writeFileSync(file, img);
  const fd = fs.openSync(file, 'r');
  try {
    edit(img, layout(fd));
  } finally {
    fs.closeSync(fd);
  }
  fs.writeFileSync(file, img);
  return file;
}

interface Layout {
  fatType: 16 | 32;
  maxCluster: number;
  /** FAT entry writer for every copy */
  setFat(img: Buffer, cluster: number, value: number): void;
  /** device offset of a root entry's short slot, its first cluster and chain */
  entry(name: string, dir?: string): { offset: number; cluster: number; chain: number[] };
  freeCluster: number;
}

/** The layout of the image open on `fd`, read by the engine (the fd stays open while it is used). */
function layout(fd: number): Layout {
  const v = Volume.open({ fd, readOnly: true });
  const g = v.geo;
  const fatType = g.fatType as 16 | 32;
  const entry = (name: string, dir?: string) => {
    const parent = dir ? v.lookup(v.root, dir) : v.root;
    const n = v.lookup(parent, name);
    const cluster = fatType === 32 ? ((n.raw.readUInt16LE(20) << 16) | n.raw.readUInt16LE(26)) >>> 0 : n.raw.readUInt16LE(26);
    const chain = v.fat.chain(cluster, name);
    const dirStart = parent.isRoot
      ? fatType === 32 ? g.dataOffset + (g.rootCluster - 2) * g.clusterSize : g.rootDirOffset
      : g.dataOffset + (v.fat.chain(parent.raw.readUInt16LE(26) | (fatType === 32 ? parent.raw.readUInt16LE(20) << 16 : 0), dir!)[0] - 2) * g.clusterSize;
    return { offset: dirStart + n.offset, cluster, chain };
  };
  return {
    fatType,
    maxCluster: g.maxCluster,
    setFat(img, c, value) {
      for (let copy = 0; copy < g.numFats; copy++) {
        const at = g.fatOffset + copy * g.fatSectors * g.bytesPerSector;
        if (fatType === 16) img.writeUInt16LE(value, at + c * 2);
        else img.writeUInt32LE(value, at + c * 4);
      }
    },
    entry,
    freeCluster: v.fat.findFree(1)[0] + 50,
  };
}

function check(file: string) {
  const fd = fs.openSync(file, 'r');
  try {
    return checkVolume(Volume.open({ fd, readOnly: true }));
  } finally {
    fs.closeSync(fd);
  }
}

const EOC = { 16: 0xffff, 32: 0x0fffffff } as const;

const CASES: Array<[string, ProblemKind, (img: Buffer, at: Layout) => void]> = [
  ['cross-link: b.txt starts in a.txt', 'cross-link', (img, at) => {
    const a = at.entry('a.txt');
    const b = at.entry('b.txt');
    img.writeUInt16LE(a.chain[1] & 0xffff, b.offset + 26);
    img.writeUInt16LE(at.fatType === 32 ? a.chain[1] >>> 16 : 0, b.offset + 20);
  }],
  ['loop: the last cluster of a.txt links to its first', 'loop', (img, at) => {
    const a = at.entry('a.txt');
    at.setFat(img, a.chain[a.chain.length - 1], a.chain[0]);
  }],
  ['out-of-range link', 'out-of-range', (img, at) => {
    const a = at.entry('a.txt');
    at.setFat(img, a.chain[0], at.maxCluster + 3);
  }],
  ['link into a free cluster', 'bad-link', (img, at) => {
    const a = at.entry('a.txt');
    at.setFat(img, a.chain[1], at.freeCluster);
  }],
  ['size larger than the chain', 'size-mismatch', (img, at) => {
    const a = at.entry('a.txt');
    img.writeUInt32LE(100_000, a.offset + 28);
  }],
  ['chain longer than the size', 'size-mismatch', (img, at) => {
    const c = at.entry('c.txt', 'Sub');
    img.writeUInt32LE(0, c.offset + 28);
  }],
  ['lost clusters', 'lost-clusters', (img, at) => {
    at.setFat(img, at.freeCluster, EOC[at.fatType]);
  }],
];

describe('checkVolume agrees with fsck.fat -n', () => {
  for (const fatType of [16, 32] as const) {
    it(`FAT${fatType}: an image written by mtools is clean for both`, () => {
      const file = path.join(work, `clean-${fatType}.img`);
      fs.writeFileSync(file, fatType === 16 ? base16 : base32);
      const r = check(file);
      expect(r.problems).toEqual([]);
      expect(r).toMatchObject({ ok: true, files: 3, directories: 2, lostClusters: 0 });
      expect(fsck(file).ok).toBe(true);
    });

    for (const [name, kind, edit] of CASES) {
      it(`FAT${fatType}: ${name} → ${kind}, and fsck.fat -n finds it too`, () => {
        const file = corrupted(fatType, name.replace(/\W+/g, '-'), edit);
        const r = check(file);
        expect(r.ok).toBe(false);
        expect(r.problems.map((p) => p.kind)).toContain(kind);
        const f = fsck(file);
        expect(f.ok, f.output).toBe(false);
      });
    }
  }

  it('a directory whose chain is broken is reported, not followed', () => {
    const file = corrupted(16, 'dir-broken', (img, at) => {
      const sub = at.entry('Sub');
      at.setFat(img, sub.chain[0], 0);
    });
    const r = check(file);
    expect(r.problems.map((p) => `${p.kind} ${p.path}`)).toEqual(expect.arrayContaining(['bad-link /Sub', 'bad-directory /Sub']));
    expect(fsck(file).ok).toBe(false);
  });
});
