/**
 * Issue 17, the pure parts: range overlap, identity matching through a
 * sysfs tree of partitions and dm slaves (made here, as the kernel lays it
 * out), the one-writer verdicts, and the words for damaged and mislabelled
 * media.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS } from '../../lib/backends';
import { blockStorage, narrow, rangesOverlap, sharedStorage, type Extent } from '../../lib/storage-identity';
import { conflictsWith, judge, mountedStorage, type MountedStorage } from '../../policy/one-writer';
import { checkCommand, mismatchWords, noFilesystemWords } from '../../policy/probe-words';
import type { Fact, Facts } from '../../policy/types';

const F = 'file:254:0:99';
const ext = (start: bigint, end: bigint | null, root = F): Extent => ({ root, start, end });

describe('byte ranges', () => {
  it('overlap only on the same root and only when a byte is shared', () => {
    expect(rangesOverlap(ext(0n, 16n), ext(8n, 24n))).toBe(true);
    expect(rangesOverlap(ext(0n, 16n), ext(16n, 32n))).toBe(false); // end is exclusive
    expect(rangesOverlap(ext(16n, null), ext(0n, 17n))).toBe(true);
    expect(rangesOverlap(ext(0n, null), ext(1000n, null))).toBe(true);
    expect(rangesOverlap(ext(0n, 16n), ext(0n, 16n, 'file:254:0:100'))).toBe(false);
  });

  it('a window narrows what lies below and never reaches past it', () => {
    expect(narrow(ext(0n, null), 16n, 16n)).toEqual(ext(16n, 32n));
    expect(narrow(ext(100n, 200n), 50n, null)).toEqual(ext(150n, 200n));
    expect(narrow(ext(100n, 200n), 50n, 500n)).toEqual(ext(150n, 200n));
    expect(narrow(ext(100n, 200n), 150n, 10n)).toBeNull();
  });

  it('sharedStorage names the pair that overlaps', () => {
    const a = [ext(0n, 16n, 'block:8:0'), ext(0n, 16n)];
    const b = [ext(8n, 9n)];
    expect(sharedStorage(a, b)).toEqual([ext(0n, 16n), ext(8n, 9n)]);
    expect(sharedStorage(a, [ext(16n, null)])).toBeNull();
  });
});

describe('identities through sysfs: disk, partitions, dm slaves', () => {
  let sysfs: string;
  const env = () => ({ sysfs, dev: '/nonexistent' });

  beforeAll(() => {
    sysfs = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-sysfs-'));
    const dev = (rel: string, devno: string, files: Record<string, string> = {}) => {
      const d = path.join(sysfs, 'devices', rel);
      fs.mkdirSync(d, { recursive: true });
      fs.writeFileSync(path.join(d, 'dev'), `${devno}\n`);
      for (const [k, v] of Object.entries(files)) fs.writeFileSync(path.join(d, k), `${v}\n`);
      fs.mkdirSync(path.join(sysfs, 'dev', 'block'), { recursive: true });
      fs.symlinkSync(path.join('..', '..', 'devices', rel), path.join(sysfs, 'dev', 'block', devno));
      return d;
    };
    dev('sda', '8:0');
    dev('sda/sda1', '8:1', { partition: '1', start: '2048', size: '32768' });
    dev('sda/sda2', '8:2', { partition: '2', start: '34816', size: '32768' });
    const dm = dev('dm-0', '253:0');
    fs.mkdirSync(path.join(dm, 'slaves'));
    fs.symlinkSync(path.join('..', '..', 'sda', 'sda2'), path.join(dm, 'slaves', 'sda2'));
  });
  afterAll(() => fs.rmSync(sysfs, { recursive: true, force: true }));

  it('a partition is a range of its whole disk', () => {
    const p1 = blockStorage('8:1', env());
    expect(p1.extents).toEqual([{ root: 'block:8:0', start: 2048n * 512n, end: (2048n + 32768n) * 512n }]);
    expect(p1.path[0]).toMatch(/sda1: partition of sda at byte 1048576/);
  });

  it('the whole disk overlaps each partition; the partitions do not overlap each other', () => {
    const [whole, p1, p2] = ['8:0', '8:1', '8:2'].map((d) => blockStorage(d, env()).extents);
    expect(sharedStorage(whole!, p1!)).not.toBeNull();
    expect(sharedStorage(whole!, p2!)).not.toBeNull();
    expect(sharedStorage(p1!, p2!)).toBeNull();
  });

  it('a dm device is its slaves, followed down to the disk', () => {
    const dm = blockStorage('253:0', env());
    expect(dm.extents).toEqual(blockStorage('8:2', env()).extents);
    expect(dm.path[0]).toMatch(/dm-0: stacked on sda2/);
    expect(sharedStorage(dm.extents, blockStorage('8:1', env()).extents)).toBeNull();
  });

  it('mountinfo entries are known by their superblock device; bind mounts count once, writable if any is', () => {
    const line = (id: number, dev: string, mp: string, opts: string, type: string, src: string) =>
      ({ id, device: dev, mountpoint: mp, options: opts, fsType: type, source: src, superOptions: 'rw' });
    const mounts = mountedStorage([
      line(1, '8:1', '/a', 'ro', 'ext4', '/dev/sda1'),
      line(2, '8:1', '/b', 'rw', 'ext4', '/dev/sda1'),
      line(3, '0:42', '/proc', 'rw', 'proc', 'proc'),
      line(4, '253:0', '/c', 'ro', 'ext4', '/dev/mapper/x'),
    ], env());
    expect(mounts.map((m) => [m.mountpoint, m.readOnly])).toEqual([['/a', false], ['/c', true]]);
    const wholeDisk = blockStorage('8:0', env());
    expect(conflictsWith(wholeDisk, mounts).map((c) => c.existing.mountpoint)).toEqual(['/a', '/c']);
  });

  it('looks up a FUSE source by path only for fusegate\'s own root-made mounts, never for a user\'s fusermount', () => {
    // Any user can mount FUSE with a source string of their choosing; root must not follow it.
    const img = path.join(sysfs, 'image.img');
    fs.writeFileSync(img, '');
    const fuse = (id: number, mp: string, type: string, superOptions: string) =>
      ({ id, device: `0:${60 + id}`, mountpoint: mp, options: 'rw', fsType: type, source: img, superOptions });
    const mounts = mountedStorage([
      fuse(1, '/media/own', 'fuse.fuse2fs', 'rw,user_id=0,group_id=0,default_permissions,allow_other'),
      fuse(2, '/home/u/spoof', 'fuse.fuse2fs', 'rw,user_id=1000,group_id=1000'),
      fuse(3, '/home/u/sshfs', 'fuse.sshfs', 'rw,user_id=0,group_id=0'),
    ], env());
    expect(mounts.map((m) => m.mountpoint)).toEqual(['/media/own']);
  });
});

describe('the one-writer verdict', () => {
  const existing = (readOnly: boolean): MountedStorage => ({
    source: '/dev/loop3', mountpoint: '/mnt/a', fsType: 'fuseblk.exfat-fuse', readOnly, storage: { extents: [ext(0n, null)], path: [] },
  });
  const mine = { extents: [ext(0n, null)], path: [] };
  const req = (readOnly: boolean, backend: string | null = 'exfat-fuse') => ({ source: '/tmp/x.img', mountpoint: '/mnt/b', readOnly, backend });

  it('allows anything when nothing shares the storage', () => {
    expect(judge(req(false), conflictsWith(mine, [])).allow).toBe(true);
  });

  it('refuses a second writer, naming the existing mount and the read-only way', () => {
    const v = judge(req(false), conflictsWith(mine, [existing(false)]));
    expect(v.allow).toBe(false);
    if (v.allow) return;
    expect(v.what).toBe('/tmp/x.img is the same storage as /dev/loop3 on /mnt/a (fuseblk.exfat-fuse, read-write): file on 254:0 inode 99 (whole); a second writer would corrupt it');
    expect(v.todo).toContain('mount -o ro /tmp/x.img /mnt/b');
  });

  it('refuses a writer next to a reader', () => {
    const v = judge(req(false), conflictsWith(mine, [existing(true)]));
    expect(v.allow).toBe(false);
    if (!v.allow) expect(v.todo).toMatch(/^unmount \/mnt\/a first; or mount this one read-only too/);
  });

  it('allows read-only next to read-only', () => {
    const v = judge(req(true), conflictsWith(mine, [existing(true)]));
    expect(v.allow).toBe(true);
  });

  it('read-only next to a writer depends on the backend table, and no server today follows a changing device', () => {
    expect(BACKENDS.every((b) => b.followsChangingDevice !== true)).toBe(true);
    const v = judge(req(true), conflictsWith(mine, [existing(false)]));
    expect(v.allow).toBe(false);
    if (!v.allow) expect(v.what).toContain('exfat-fuse cannot show a filesystem that another mount changes under it');
    const k = judge(req(true, null), conflictsWith(mine, [existing(false)]));
    if (!k.allow) expect(k.what).toContain('the kernel driver cannot show');
  });
});

describe('words for damaged and mislabelled media', () => {
  const fact = <T>(value: T, source = 'test'): Fact<T> => ({ value, source });
  const facts = (type: string | null, requested: string | null, typeSource = 'libblkid -p'): Facts =>
    ({
      source: fact('/tmp/x.img'), path: fact('/tmp/x.img'), kind: fact('image'),
      type: fact(type, typeSource), requestedType: fact(requested),
    }) as unknown as Facts;

  it('the checker is the type\'s own, read-only', () => {
    expect(checkCommand('ext4', '/d')).toBe('fsck.ext4 -n /d');
    expect(checkCommand('vfat', '/d')).toBe('fsck.vfat -n /d');
    expect(checkCommand('exfat', '/d')).toBe('fsck.exfat -n /d');
    expect(checkCommand('ntfs', '/d')).toBe('ntfsfix -n /d');
    expect(checkCommand(null, '/d')).toBe('blkid -p /d');
  });

  it('nothing found where ext4 was asked for: what was asked, what was found, damaged, the command', () => {
    const w = noFilesystemWords(facts(null, 'ext4', 'libblkid -p: no filesystem signature found'))!;
    expect(w.what).toBe('asked for ext4, but no ext4 filesystem was found on /tmp/x.img (no filesystem signature found): the medium may be damaged');
    expect(w.todo).toBe('check it without changing it: fsck.ext4 -n /tmp/x.img');
    expect(noFilesystemWords(facts('ext4', 'ext4'))).toBeNull();
  });

  it('another type than asked for is said, with the checker of the asked type', () => {
    expect(mismatchWords(facts('ext4', 'vfat'))).toBe(
      'asked for vfat, but /tmp/x.img holds ext4: mounting it as ext4, as the probe found it; if it should be vfat, the medium may be mislabelled or damaged: check it with fsck.vfat -n /tmp/x.img');
    expect(mismatchWords(facts('ext4', 'ext4'))).toBeNull();
    expect(mismatchWords(facts('ext4', null))).toBeNull();
  });
});
