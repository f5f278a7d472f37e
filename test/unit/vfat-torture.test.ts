/**
 * Differential torture test: seeded random workloads on FAT12/16/32 driven
 * through the engine, against an in-memory model. After each "unmount"
 * fsck.fat -n must be clean and mtools must see exactly the model's names
 * and bytes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FatError } from '../../sandbox/vfat/errors';
import { FatNode, Volume } from '../../sandbox/vfat/volume';
import { allDirs, isAncestor, key, MDir, MFile, MNode, newDir, rng } from '../support/vfat/model';
import { fsck, mkfs, mtools, tmpDir } from '../support/vfat/tools';

const SEEDS = 21;
const OPS = 2000;
/** fsck.fat + mtools after this many operations (and at the end); FAT32 images are the largest to check: end only */
const CHECKPOINT: Record<12 | 16 | 32, number> = { 12: 1000, 16: 1000, 32: OPS };
const work = tmpDir('fusegate-vfat-torture-');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const NAME_POOL = [
  'a.txt', 'B.TXT', 'readme', 'README.md', 'ReadMe.Md', 'foo.bar', 'FOO.BAR', 'x', 'data.bin', 'número.txt',
  'NÚMERO.TXT', '日本語のファイル.txt', 'with space.txt', 'two.dots.tar.gz', '.hidden',
  'UPPER', 'lower', 'MiXeD', 'a+b=c[1];d,e.txt', 'ü', 'Ünïcödé Dïr', 'dir', 'Dir', 'sub', 'ñ', 'ΑΒΓ.txt',
];

function randomName(r: () => number, existing: string[]): string {
  const p = r();
  if (p < 0.25) return `Long File Name Number ${Math.floor(r() * 40)}.txt`;
  if (p < 0.45) return NAME_POOL[Math.floor(r() * NAME_POOL.length)];
  if (p < 0.55 && existing.length) {
    // a case variant of an existing name
    const e = existing[Math.floor(r() * existing.length)];
    return [...e].map((c) => (r() < 0.5 ? c.toUpperCase() : c.toLowerCase())).join('').replace(/\.+$/, '') || 'v';
  }
  if (p < 0.6) return 'L'.repeat(200 + Math.floor(r() * 55)) + '.txt'.slice(0, 4);
  const len = 1 + Math.floor(r() * 14);
  const chars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-~ éß';
  let s = '';
  for (let i = 0; i < len; i++) s += chars[Math.floor(r() * chars.length)];
  s = s.trim().replace(/\.+$/, '');
  return s.length ? s : 'n';
}

function randomData(r: () => number, max: number): Buffer {
  const n = Math.floor(r() * r() * max);
  const b = Buffer.alloc(n);
  const seed = Math.floor(r() * 256);
  for (let i = 0; i < n; i++) b[i] = (seed + i * 31 + (i >> 9)) & 0xff;
  return b;
}

/*
 * The model's file contents grow in place (a backing buffer with room to
 * spare), so appends and overwrites of a file that filled the disk cost the
 * bytes written, not a copy of the whole file each time.
 */
const backing = new WeakMap<MFile, Buffer>();

/** Resizes a model file, zero-filling what grows (as FAT reads a gap). */
function resize(f: MFile, size: number): void {
  let b = backing.get(f) ?? f.data;
  if (size > b.length) {
    const nb = Buffer.allocUnsafe(Math.max(size, b.length * 2));
    f.data.copy(nb);
    b = nb;
    backing.set(f, b);
  }
  if (size > f.data.length) b.fill(0, f.data.length, size);
  f.data = b.subarray(0, size);
}

function writeAt(f: MFile, off: number, data: Buffer): void {
  resize(f, Math.max(f.data.length, off + data.length));
  data.copy(f.data, off);
}

function code(err: unknown): string {
  if (err instanceof FatError) return err.code;
  throw err;
}

class Driver {
  v!: Volume;
  fd = -1;
  constructor(readonly image: string) {}
  open(): void {
    this.fd = fs.openSync(this.image, 'r+');
    this.v = Volume.open({ fd: this.fd, options: 'shortname=mixed' });
  }
  close(): void {
    this.v.unmount();
    fs.closeSync(this.fd);
  }
  /** runs fn with the directory node of `p`, releasing what it looked up */
  inDir<T>(p: string[], fn: (dir: FatNode) => T): T {
    const held: FatNode[] = [];
    let n = this.v.root;
    try {
      for (const part of p) {
        n = this.v.lookup(n, part);
        held.push(n);
      }
      return fn(n);
    } finally {
      for (const h of held) this.v.release(h);
    }
  }
  withFile<T>(p: string[], name: string, fn: (f: FatNode) => T): T {
    return this.inDir(p, (d) => {
      const f = this.v.lookup(d, name);
      try {
        return fn(f);
      } finally {
        this.v.release(f);
      }
    });
  }
}

/** Checks the image against the model with fsck.fat and one recursive mcopy. */
function verify(image: string, root: MDir, label: string): void {
  const check = fsck(image);
  expect(check.ok, `${label}: fsck.fat\n${check.output}`).toBe(true);
  const out = path.join(work, 'out');
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out);
  if (root.children.size) mtools('mcopy', ['-s', '-n', '-i', image, '::/*', out]);
  const compare = (d: MDir, dir: string) => {
    const names = fs.readdirSync(dir).sort();
    const expected = [...d.children.values()].map((c) => c.name).sort();
    expect(names, `${label}: names in ${dir}`).toEqual(expected);
    for (const c of d.children.values()) {
      const p = path.join(dir, c.name);
      if (c.kind === 'dir') {
        expect(fs.statSync(p).isDirectory(), p).toBe(true);
        compare(c, p);
      } else {
        const got = fs.readFileSync(p);
        expect(got.length, `${label}: size of ${p}`).toBe(c.data.length);
        expect(got.equals(c.data), `${label}: content of ${p}`).toBe(true);
      }
    }
  };
  compare(root, out);
}

function runSeed(seed: number, fatType: 12 | 16 | 32): { ops: number; errors: Record<string, number> } {
  const r = rng(seed);
  const image = path.join(work, `t${seed}.img`);
  mkfs(image, fatType);
  const drv = new Driver(image);
  drv.open();
  const cs = drv.v.geo.clusterSize;
  const root = newDir('');
  const errors: Record<string, number> = {};
  const note = (c: string) => (errors[c] = (errors[c] ?? 0) + 1);
  const maxData = fatType === 12 ? 24 * 1024 : 96 * 1024;
  for (let op = 1; op <= OPS; op++) {
    const dirs = allDirs(root);
    const { path: dp, dir } = dirs[Math.floor(r() * dirs.length)];
    const kids = [...dir.children.values()];
    const files = kids.filter((k) => k.kind === 'file');
    const existingNames = kids.map((k) => k.name);
    const choice = r();
    try {
      if (choice < 0.22 || kids.length === 0) {
        // create (file or directory)
        const name = randomName(r, existingNames);
        const isDir = r() < 0.2;
        const data = isDir ? Buffer.alloc(0) : randomData(r, maxData);
        let created = false;
        try {
          drv.inDir(dp, (d) => {
            const n = isDir ? drv.v.mkdir(d, name) : drv.v.create(d, name);
            created = true;
            try {
              if (data.length) drv.v.write(n, 0, data);
            } finally {
              drv.v.release(n);
            }
          });
          expect(dir.children.has(key(name)), `op ${op}: create ${name} should have failed`).toBe(false);
          dir.children.set(key(name), isDir ? newDir(name) : { kind: 'file', name, data });
        } catch (err) {
          const c = code(err);
          note(c);
          if (c === 'EEXIST') expect(dir.children.has(key(name))).toBe(true);
          else if (c === 'ENOSPC' && created) dir.children.set(key(name), isDir ? newDir(name) : { kind: 'file', name, data: Buffer.alloc(0) });
          else expect(['ENOSPC', 'ENAMETOOLONG', 'EINVAL']).toContain(c);
        }
      } else if (choice < 0.5 && files.length) {
        // write / append / overwrite / truncate
        const f = files[Math.floor(r() * files.length)] as MFile;
        const sub = r();
        try {
          drv.withFile(dp, f.name, (n) => {
            if (sub < 0.3) {
              const data = randomData(r, maxData);
              drv.v.write(n, f.data.length, data);
              writeAt(f, f.data.length, data);
            } else if (sub < 0.65) {
              const off = Math.floor(r() * (f.data.length + 2 * cs));
              const data = randomData(r, maxData / 2);
              if (data.length === 0) return;
              drv.v.write(n, off, data);
              writeAt(f, off, data);
            } else if (sub < 0.97) {
              const size = Math.floor(r() * (f.data.length * 1.5 + cs));
              drv.v.truncate(n, size);
              resize(f, size);
            } else if (r() < 0.5) {
              // more than the free space: ENOSPC before anything is allocated or written
              const free = drv.v.statfs().bfree * cs;
              drv.v.write(n, Math.ceil(f.data.length / cs) * cs, Buffer.allocUnsafe(free + cs));
              throw new Error(`op ${op}: a write larger than the free space succeeded`);
            } else {
              // fill the disk to its last few clusters: later creates, mkdirs and growths meet ENOSPC
              const free = drv.v.statfs().bfree * cs;
              const data = Buffer.alloc(Math.max(0, free - Math.floor(r() * 3) * cs), 0x5a);
              drv.v.write(n, f.data.length, data);
              writeAt(f, f.data.length, data);
            }
          });
        } catch (err) {
          const c = code(err);
          note(c);
          expect(c).toBe('ENOSPC');
        }
      } else if (choice < 0.75) {
        // rename, within or across directories, maybe onto an existing name
        const src = kids[Math.floor(r() * kids.length)];
        const target = dirs[Math.floor(r() * dirs.length)];
        const tKids = [...target.dir.children.values()];
        const newName = r() < 0.3 && tKids.length ? tKids[Math.floor(r() * tKids.length)].name : r() < 0.2 ? [...src.name].map((c) => (r() < 0.5 ? c.toUpperCase() : c)).join('') : randomName(r, existingNames);
        const existing = target.dir.children.get(key(newName));
        let expected: string | null = null;
        if (src.kind === 'dir' && isAncestor(src, target.dir)) expected = 'EINVAL';
        else if (existing && existing !== src) {
          if (src.kind === 'dir' && existing.kind !== 'dir') expected = 'ENOTDIR';
          else if (src.kind !== 'dir' && existing.kind === 'dir') expected = 'EISDIR';
          else if (existing.kind === 'dir' && existing.children.size) expected = 'ENOTEMPTY';
        }
        try {
          drv.inDir(dp, (sd) => drv.inDir(target.path, (td) => drv.v.rename(sd, src.name, td, newName)));
          expect(expected, `op ${op}: rename ${src.name} -> ${newName}`).toBe(null);
          dir.children.delete(key(src.name));
          target.dir.children.set(key(newName), { ...src, name: existing === src || !existing ? newName : newName } as MNode);
          const moved = target.dir.children.get(key(newName))!;
          if (moved.kind === 'dir' && src.kind === 'dir') moved.children = src.children;
        } catch (err) {
          const c = code(err);
          note(c);
          if (expected === 'EINVAL') expect(['EINVAL', 'ENAMETOOLONG']).toContain(c);
          if (expected) expect(c === expected || expected === 'EINVAL').toBe(true);
          else expect(['ENOSPC', 'ENAMETOOLONG', 'EINVAL']).toContain(c);
        }
      } else if (choice < 0.92) {
        // unlink or rmdir
        const victim = kids[Math.floor(r() * kids.length)];
        try {
          drv.inDir(dp, (d) => (victim.kind === 'dir' ? drv.v.rmdir(d, victim.name) : drv.v.unlink(d, victim.name)));
          expect(victim.kind === 'dir' && victim.children.size > 0, `op ${op}: rmdir of a non-empty dir`).toBe(false);
          dir.children.delete(key(victim.name));
        } catch (err) {
          const c = code(err);
          note(c);
          expect(c).toBe('ENOTEMPTY');
        }
      } else {
        // lookups by case variants and reads
        const k = kids[Math.floor(r() * kids.length)];
        drv.inDir(dp, (d) => {
          const n = drv.v.lookup(d, k.name.toUpperCase() === upper(k.name) ? k.name.toLowerCase() : k.name);
          try {
            // a window of the file (whole files are compared at every checkpoint)
            if (k.kind === 'file') {
              const off = Math.floor(r() * (k.data.length + 1));
              expect(drv.v.read(n, off, 128 * 1024).equals(k.data.subarray(off, off + 128 * 1024))).toBe(true);
            }
          } finally {
            drv.v.release(n);
          }
        });
      }
    } catch (err) {
      throw new Error(`seed ${seed} FAT${fatType} op ${op}: ${(err as Error).message}`);
    }
    if (op % CHECKPOINT[fatType] === 0) {
      drv.close();
      verify(image, root, `seed ${seed} FAT${fatType} after ${op} ops`);
      drv.open();
    }
  }
  drv.close();
  fs.rmSync(image);
  return { ops: OPS, errors };
}

function upper(s: string): string {
  return key(s);
}

describe('vfat torture (engine vs model, fsck.fat and mtools)', () => {
  const types: (12 | 16 | 32)[] = [12, 16, 32];
  for (let seed = 1; seed <= SEEDS; seed++) {
    const fatType = types[seed % 3];
    it(`seed ${seed}, FAT${fatType}, ${OPS} operations`, () => {
      const t0 = Date.now();
      const res = runSeed(seed, fatType);
      const ms = Date.now() - t0;
      console.log(`seed ${seed} FAT${fatType}: ${res.ops} ops in ${ms} ms (${Math.round((res.ops * 1000) / ms)} ops/s incl. fsck+mtools), errors ${JSON.stringify(res.errors)}`);
    }, 120_000);
  }
});
