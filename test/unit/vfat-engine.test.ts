/** Engine details: names, short-name generation, options, label, dirty bits, refusals. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FatError, MountRefused } from '../../sandbox/vfat/errors';
import { checkName, chooseShortName, upcase } from '../../sandbox/vfat/names';
import { parseOptions } from '../../sandbox/vfat/options';
import { Volume } from '../../sandbox/vfat/volume';
import { fsck, mkfs, mtools, mtoolsTree, tmpDir } from '../support/vfat/tools';

const work = tmpDir('fusegate-vfat-engine-');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('names', () => {
  it('validates names like vfat', () => {
    expect(() => checkName('a*b')).toThrow(/EINVAL/);
    expect(() => checkName('a\u0001b')).toThrow(/EINVAL/);
    expect(() => checkName('x'.repeat(256))).toThrow(/ENAMETOOLONG/);
    expect(checkName('x'.repeat(255))).toHaveLength(255);
    expect(checkName('trailing...')).toBe('trailing');
    expect(upcase('número')).toBe('NÚMERO');
  });
  it('chooses short names with numeric tails and case rules', () => {
    const none = () => false;
    const s = (n: string, mode: 'mixed' | 'winnt' = 'mixed', taken = none) => {
      const c = chooseShortName(n, mode, taken);
      return [c.raw.toString('latin1'), c.needLfn, c.ntCase];
    };
    expect(s('README.TXT')).toEqual(['README  TXT', false, 0]);
    expect(s('readme.txt')).toEqual(['README  TXT', true, 0]);
    expect(s('readme.txt', 'winnt')).toEqual(['README  TXT', false, 0x18]);
    expect(s('Long File Name.txt')).toEqual(['LONGFI~1TXT', true, 0]);
    expect(s('número.txt')).toEqual(['N_MERO~1TXT', true, 0]);
    const taken = (raw: Buffer) => /~[1-9]T/.test(raw.toString('latin1'));
    expect(s('Long File Name.txt', 'mixed', taken)).toEqual(['LONGF~10TXT', true, 0]);
  });
  it('parses udisks2 options and refuses unknown ones', () => {
    const o = parseOptions('uid=1000,gid=1000,shortname=mixed,utf8=1,showexec,flush,dmask=077,fmask=177');
    expect(o).toMatchObject({ uid: 1000, gid: 1000, shortname: 'mixed', showexec: true, flush: true, dmask: 0o77, fmask: 0o177 });
    expect(() => parseOptions('bogus')).toThrow(MountRefused);
    expect(() => parseOptions('shortname=odd')).toThrow(MountRefused);
  });
});

describe('volumes made by mkfs.vfat and mtools', () => {
  for (const t of [12, 16, 32] as const) {
    it(`FAT${t}: reads mtools' long and Unicode names, skips the label, keeps the dirty bit only while mounted`, () => {
      const image = path.join(work, `v${t}.img`);
      mkfs(image, t);
      mtools('mmd', ['-i', image, '::/Ünïcödé Dir']);
      mtools('mcopy', ['-i', image, '-', '::/Ünïcödé Dir/número long name.txt'], Buffer.from('hola'));
      mtools('mcopy', ['-i', image, '-', '::/UPPER.TXT'], Buffer.from('U'));
      const fd = fs.openSync(image, 'r+');
      const v = Volume.open({ fd, options: 'uid=5,gid=6,umask=027' });
      expect(v.geo.fatType).toBe(t);
      expect(v.label).toBe('TESTVOL');
      expect(v.readdir(v.root).map((e) => e.name).sort()).toEqual(['UPPER.TXT', 'Ünïcödé Dir']);
      const d = v.lookup(v.root, 'ÜNÏCÖDÉ DIR');
      const f = v.lookup(d, 'NÚMERO LONG NAME.TXT');
      expect(v.read(f, 0, 100).toString()).toBe('hola');
      const a = v.getattr(f);
      expect([a.uid, a.gid, a.mode & 0o777]).toEqual([5, 6, 0o750]);
      expect(fsck(image).output).toMatch(t === 12 ? /.*/ : /Dirty bit/); // marked while mounted
      const n = v.create(v.root, 'readme.txt');
      v.write(n, 0, Buffer.from('lower'));
      expect(() => v.create(v.root, 'README.TXT')).toThrow(/EEXIST/);
      expect(() => v.create(v.root, 'a:b')).toThrow(/EINVAL/);
      v.unmount();
      fs.closeSync(fd);
      const check = fsck(image);
      expect(check.ok, check.output).toBe(true);
      expect(mtoolsTree(image).get('/readme.txt')).toBe(5);
    });
  }

  it('refuses devices that are not FAT, with a reason', () => {
    const image = path.join(work, 'zero.img');
    fs.writeFileSync(image, Buffer.alloc(1 << 20));
    const fd = fs.openSync(image, 'r');
    try {
      expect(() => Volume.open({ fd, readOnly: true })).toThrow(FatError);
      expect(() => Volume.open({ fd, readOnly: true })).toThrow(/jump instruction/);
    } finally {
      fs.closeSync(fd);
    }
  });
});
