/**
 * Hostile images: seeded mutations of boot sector, FAT, directory entries
 * and chains. Each must either be refused with a reason (MountRefused) or
 * served: walking the whole tree and reading every file finishes within a
 * deadline, throws nothing but FatError (EIO and friends), and memory stays
 * bounded. A share of them is also written to (create, write, rename,
 * unlink), which must stay inside FatError too, and never write along a
 * corrupt chain.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBootSector } from '../../sandbox/vfat/bpb';
import { FatError, MountRefused } from '../../sandbox/vfat/errors';
import { FatNode, Volume } from '../../sandbox/vfat/volume';
import { rng } from '../support/vfat/model';
import { mkfs, mtools, tmpDir } from '../support/vfat/tools';

const PER_TYPE = 80;
const DEADLINE_MS = 3000;
const work = tmpDir('fusegate-vfat-hostile-');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function populate(image: string): void {
  mtools('mmd', ['-i', image, '::/Dir', '::/Dir/Sub', '::/Ünïcödé']);
  for (let i = 0; i < 12; i++) {
    mtools('mcopy', ['-i', image, '-', `::/Dir/Long File Name Number ${i}.txt`], Buffer.alloc(700 * i + 5, 65 + i));
  }
  mtools('mcopy', ['-i', image, '-', '::/Dir/Sub/deep.bin'], Buffer.alloc(9000, 7));
  mtools('mcopy', ['-i', image, '-', '::/Ünïcödé/número.txt'], Buffer.from('hola'));
  mtools('mcopy', ['-i', image, '-', '::/ROOT.TXT'], Buffer.alloc(3000, 9));
}

interface Outcome {
  refused?: string;
  files: number;
  eio: number;
}

/** Walks and reads everything, with a bounded depth; only FatError may escape an operation. */
function walk(v: Volume, deadline: number): Outcome {
  const out: Outcome = { files: 0, eio: 0 };
  const visit = (dir: FatNode, depth: number) => {
    if (Date.now() > deadline) throw new Error('deadline exceeded');
    if (depth > 40) return;
    let list;
    try {
      list = v.readdir(dir);
    } catch (err) {
      if (!(err instanceof FatError)) throw err;
      out.eio++;
      return;
    }
    for (const e of list) {
      let n: FatNode;
      try {
        n = v.lookup(dir, e.name);
        v.getattr(n);
      } catch (err) {
        if (!(err instanceof FatError)) throw err;
        out.eio++;
        continue;
      }
      try {
        if (n.isDir) visit(n, depth + 1);
        else {
          out.files++;
          for (let off = 0; off < Math.min(n.raw.readUInt32LE(28), 64 * 1024 * 1024); off += 1 << 20) v.read(n, off, 1 << 20);
        }
      } catch (err) {
        if (!(err instanceof FatError)) throw err;
        out.eio++;
      } finally {
        v.release(n);
      }
    }
  };
  visit(v.root, 0);
  return out;
}

function tryWrites(v: Volume, r: () => number): void {
  const attempt = (fn: () => void) => {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof FatError)) throw err;
    }
  };
  attempt(() => v.release(v.create(v.root, `new ${Math.floor(r() * 1000)}.txt`)));
  for (const e of (() => { try { return v.readdir(v.root); } catch { return []; } })()) {
    attempt(() => {
      const n = v.lookup(v.root, e.name);
      try {
        if (!n.isDir) {
          v.write(n, Math.floor(r() * 5000), Buffer.alloc(3000, 1));
          v.truncate(n, Math.floor(r() * 4000));
        } else {
          for (const c of v.readdir(n).slice(0, 3)) {
            attempt(() => v.rename(n, c.name, v.root, `moved ${c.name}`));
          }
        }
      } finally {
        v.release(n);
      }
    });
    if (r() < 0.3) attempt(() => (e.isDir ? v.rmdir(v.root, e.name) : v.unlink(v.root, e.name)));
  }
  attempt(() => v.release(v.mkdir(v.root, 'made dir')));
}

describe('vfat hostile images', () => {
  const bases: Record<number, string> = {};
  beforeAll(() => {
    for (const t of [12, 16, 32] as const) {
      const image = path.join(work, `base${t}.img`);
      mkfs(image, t);
      populate(image);
      bases[t] = image;
    }
  });

  for (const fatType of [12, 16, 32] as const) {
    it(`${PER_TYPE} mutated FAT${fatType} images are refused or served safely`, () => {
      const base = bases[fatType];
      const baseBytes = fs.readFileSync(base);
      const geo = parseBootSector(baseBytes.subarray(0, 512), baseBytes.length);
      const metaEnd = geo.dataOffset + 24 * geo.clusterSize; // directories and early files live here
      const fatEnd = geo.fatOffset + geo.fatSectors * geo.bytesPerSector;
      const image = path.join(work, `m${fatType}.img`);
      const r = rng(1000 + fatType);
      let refused = 0;
      let served = 0;
      let eio = 0;
      const rssStart = process.memoryUsage().rss;
      // every mutation lies below metaEnd: the rest of the image is written once
      fs.writeFileSync(image, baseBytes);
      for (let i = 0; i < PER_TYPE; i++) {
        // only what lies below metaEnd is mutated and written: no copy of the whole (36 MiB for FAT32) image per mutation
        const img = Buffer.from(baseBytes.subarray(0, metaEnd));
        const kind = i % 5;
        const muts = 1 + Math.floor(r() * 8);
        for (let m = 0; m < muts; m++) {
          if (kind === 0) {
            img[Math.floor(r() * 96)] = Math.floor(r() * 256); // boot sector / BPB
          } else if (kind === 1) {
            // FAT entries: random values, self-loops, links into other chains
            const c = 2 + Math.floor(r() * 60);
            const v = r() < 0.3 ? c : r() < 0.6 ? 2 + Math.floor(r() * 60) : Math.floor(r() * 0xffffffff);
            if (fatType === 12) {
              const off = geo.fatOffset + c + (c >> 1);
              img[off] = v & 0xff;
              img[off + 1] = (v >> 8) & 0xff;
            } else if (fatType === 16) img.writeUInt16LE(v & 0xffff, geo.fatOffset + c * 2);
            else img.writeUInt32LE(v >>> 0, geo.fatOffset + c * 4);
          } else if (kind === 2) {
            // directory entry fields: cluster, size, attr, name bytes, LFN ordinals/checksums
            const dirStart = geo.fatType === 32 ? geo.dataOffset : geo.rootDirOffset;
            const region = geo.fatType === 32 ? 24 * geo.clusterSize : geo.rootDirBytes + 24 * geo.clusterSize;
            const slot = dirStart + 32 * Math.floor((r() * region) / 32);
            const field = [0, 11, 12, 13, 20, 26, 28, 1, 30][Math.floor(r() * 9)];
            img[slot + field] = Math.floor(r() * 256);
            if (r() < 0.5) img[slot + field + 1] = Math.floor(r() * 256);
          } else if (kind === 3) {
            img[geo.fatOffset + Math.floor(r() * (fatEnd - geo.fatOffset))] = Math.floor(r() * 256);
          } else {
            img[Math.floor(r() * metaEnd)] = Math.floor(r() * 256);
          }
        }
        const fd = fs.openSync(image, 'r+');
        fs.writeSync(fd, img, 0, metaEnd, 0);
        const started = Date.now();
        try {
          let v: Volume;
          try {
            v = Volume.open({ fd, readOnly: i % 3 !== 0, log: () => {} });
          } catch (err) {
            expect(err, `mutation ${i}: ${(err as Error).stack}`).toBeInstanceOf(FatError);
            expect((err as FatError).reason.length).toBeGreaterThan(5);
            if (err instanceof MountRefused || (err as FatError).code === 'EINVAL') refused++;
            continue;
          }
          served++;
          const res = walk(v, started + DEADLINE_MS);
          eio += res.eio;
          if (!v.readOnly) {
            tryWrites(v, r);
            walk(v, started + DEADLINE_MS * 2);
          }
          v.unmount();
        } catch (err) {
          throw new Error(`FAT${fatType} mutation ${i}: ${(err as Error).stack}`);
        } finally {
          fs.closeSync(fd);
        }
        expect(Date.now() - started, `mutation ${i} took too long`).toBeLessThan(DEADLINE_MS * 2);
      }
      const rssGrowth = process.memoryUsage().rss - rssStart;
      console.log(`FAT${fatType}: ${PER_TYPE} mutated images: ${refused} refused, ${served} served (${eio} EIO answers); RSS growth ${(rssGrowth / 1048576).toFixed(0)} MiB`);
      expect(refused).toBeGreaterThan(0);
      expect(served).toBeGreaterThan(0);
      expect(rssGrowth).toBeLessThan(512 * 1024 * 1024);
    }, 120_000);
  }
});
