/**
 * `fusegate policy explain` on real loop devices: ext4 and FAT images made
 * with mkfs, attached with losetup, probed by the real blkid, judged by the
 * shipped default policy. Nothing is mounted (this kernel has no vfat driver
 * anyway; blkid probes FAT fine).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as native from '../../lib/native';
import * as testNative from '../support/native-extras';
import { main } from '../../policy/cli';
import type { FactEnv } from '../../policy/facts';

const DEFAULT_POLICY = path.resolve(__dirname, '../../policy/default-policy.yaml');
const root = process.getuid?.() === 0;

let dir: string;
const loops: string[] = [];
let ext4Img: string;
let fatImg: string;
let ext4Loop: string;
let fatLoop: string;

async function explain(args: string[], facts: FactEnv = {}): Promise<{ code: number; out: string }> {
  let out = '';
  const code = await main(['explain', ...args, '--policy', DEFAULT_POLICY], { facts, out: (s) => { out += s; }, err: (s) => { out += s; } });
  return { code, out };
}

function attach(img: string): string {
  const dev = execFileSync('losetup', ['--find', '--show', img], { encoding: 'utf8' }).trim();
  loops.push(dev);
  return dev;
}

describe.skipIf(!root)('policy explain on real loop devices', () => {
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-explain-'));
    ext4Img = path.join(dir, 'ext4.img');
    fatImg = path.join(dir, 'fat.img');
    for (const img of [ext4Img, fatImg]) {
      fs.writeFileSync(img, Buffer.alloc(0));
      fs.truncateSync(img, 16 << 20);
    }
    execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'FGEXT4', ext4Img]);
    execFileSync('mkfs.vfat', ['-n', 'FGFAT', fatImg], { stdio: 'ignore' });
    ext4Loop = attach(ext4Img);
    fatLoop = attach(fatImg);
  });

  afterAll(() => {
    for (const dev of loops) {
      try { execFileSync('losetup', ['-d', dev]); } catch { /* already gone */ }
    }
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('ext4 on a loop device: probed type, bus virtual, loop, default policy → fuse', async () => {
    const r = await explain([ext4Loop, '/mnt/fg-test', '-o', 'rw']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^ {2}type +ext4 +\[libblkid -p\]$/m);
    expect(r.out).toMatch(/^ {2}label +FGEXT4 +\[libblkid -p\]$/m);
    expect(r.out).toMatch(/^ {2}bus +virtual +\[sysfs \/sys\/devices\/virtual\/block\/loop\d+\]$/m);
    expect(r.out).toMatch(/^ {2}loop +true /m);
    expect(r.out).toMatch(new RegExp(`^ {2}backing_file +${ext4Img} +\\[sysfs `, 'm'));
    expect(r.out).toMatch(/^ {2}MATCH {2}images-and-loop-devices/m);
    expect(r.out).toMatch(/^ {2}action +FUSE$/m);
    expect(r.out).toMatch(/^ {2}backends +fuse4fs \(read-write\), fuse2fs \(read-only\)$/m);
    expect(r.out).toMatch(/^ {2}mount -o +rw,nosuid,nodev \(through fuse4fs, the first choice\)$/m);
  });

  it("says what would happen on this machine: the installed backend, or the policy's fallback", async () => {
    const sockets = fs.mkdtempSync(path.join(dir!, 'sockets-'));
    const saved = process.env.FUSEGATE_SOCKET_DIR;
    process.env.FUSEGATE_SOCKET_DIR = sockets;
    try {
      // No backend socket: the rule's fallback (deny), said explicitly.
      let r = await explain([ext4Loop, '/mnt/fg-test']);
      expect(r.out).toMatch(/^ {2}on this machine +deny \(no backend for ext4 is installed \(tried fuse4fs, fuse2fs\)\)$/m);
      // fuse2fs listening (fuse4fs still absent): it serves, read-only, as the helper would mount it.
      const fd = native.socketSeqpacket();
      testNative.bind(fd, path.join(sockets, 'fuse2fs'));
      r = await explain([ext4Loop, '/mnt/fg-test']);
      fs.closeSync(fd);
      expect(r.out).toMatch(/^ {2}on this machine +fuse through fuse2fs, read-only$/m);
    } finally {
      process.env.FUSEGATE_SOCKET_DIR = saved;
    }
  });

  it('FAT on a loop device: probed vfat, bus virtual, loop, default policy → fusegate-vfat read-write', async () => {
    const r = await explain([fatLoop, '/media/fg-test', '-t', 'auto', '-o', 'rw,uhelper=udisks2', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.facts.type).toEqual({ value: 'vfat', source: 'libblkid -p' });
    expect(j.facts.label.value).toBe('FGFAT');
    expect(j.facts.kind.value).toBe('block');
    expect(j.facts.bus.value).toBe('virtual');
    expect(j.facts.loop.value).toBe(true);
    expect(j.facts.backingFile.value).toBe(fatImg);
    expect(j.facts.uhelper.value).toBe('udisks2');
    expect(j.decision).toMatchObject({
      action: 'fuse', rule: 'images-and-loop-devices', fsType: 'vfat', backends: ['fusegate-vfat', 'fusefat'],
      readOnly: false, fallback: 'deny', finalOptions: ['rw', 'uhelper=udisks2', 'nosuid', 'nodev'],
    });
  });

  it('the image file itself: kind image, default policy → fuse', async () => {
    const r = await explain([fatImg, '--json']);
    const j = JSON.parse(r.out);
    expect(j.facts.kind.value).toBe('image');
    expect(j.facts.type.value).toBe('vfat');
    expect(j.decision).toMatchObject({ action: 'fuse', rule: 'images-and-loop-devices' });
  });

  it('a loop device whose image fstab lists goes to the kernel driver', async () => {
    const fstab = path.join(dir, 'fstab');
    fs.writeFileSync(fstab, `${ext4Img} /srv/fg-img ext4 loop 0 0\n`);
    const r = await explain([ext4Loop, '/srv/fg-img', '--json'], { fstab });
    const j = JSON.parse(r.out);
    expect(j.facts.fstab).toEqual({ value: true, source: `${fstab} line 1`, line: 1 });
    // named by its path, and only root can write it: the administrator's own image
    expect(j.facts.fstabMatch).toEqual({ value: 'path', source: `${fstab} line 1: ${ext4Img}` });
    expect(j.facts.imageRootOnly.value).toBe(true);
    expect(j.facts.fixedDisk.value).toBe(false);
    expect(j.decision).toMatchObject({ action: 'kernel', rule: 'fstab-fixed-disks' });
  });

  it('the same loop device matched by its LABEL= in fstab is sandboxed: the label is copied from the content', async () => {
    const fstab = path.join(dir, 'fstab-label');
    fs.writeFileSync(fstab, 'LABEL=FGEXT4 /srv/fg-img ext4 defaults 0 0\n');
    const j = JSON.parse((await explain([ext4Loop, '/srv/fg-img', '--json'], { fstab })).out);
    expect(j.facts.fstab.value).toBe(true);
    expect(j.facts.fstabMatch.value).toBe('label');
    expect(j.decision).toMatchObject({ action: 'fuse', rule: 'images-and-loop-devices' });
  });
});
