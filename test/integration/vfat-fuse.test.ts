/**
 * The FAT server behind a real FUSE mount: /dev/fuse opened and mounted with
 * mount(2) as fusegate's helper does, serveFat in a child process run with
 * `node --jitless` (as in the sandbox, where MemoryDenyWriteExecute forbids
 * the JIT), normal file system calls, umount, then fsck.fat and mtools.
 */
import { spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mount, umount2 } from '../../lib/native';
import { bundleServer, fsck, mkfs, mtools, mtoolsRead, mtoolsTree, tmpDir } from '../support/vfat/tools';

const MNT_DETACH = 2;
const canRun = process.getuid?.() === 0 && fs.existsSync('/dev/fuse');

describe.skipIf(!canRun)('vfat over FUSE (root, /dev/fuse)', () => {
  let work: string;
  let script: string;
  const mounts: string[] = [];

  beforeAll(() => {
    work = tmpDir('fusegate-vfat-fuse-');
    script = bundleServer(work);
  });

  afterAll(() => {
    for (const m of mounts) {
      try {
        umount2(m, MNT_DETACH);
      } catch {
        /* already gone */
      }
    }
    fs.rmSync(work, { recursive: true, force: true });
  });

  interface Served {
    dir: string;
    child: ChildProcess;
    exited: Promise<number | null>;
    stderr: () => string;
  }

  function serve(image: string, name: string, extraArgs: string[] = []): Served {
    const dir = path.join(work, name);
    fs.mkdirSync(dir);
    const fuseFd = fs.openSync('/dev/fuse', 'r+');
    mount('fusegate-vfat', dir, 'fuse.fusegate-vfat', 0, `fd=${fuseFd},rootmode=40000,user_id=0,group_id=0,default_permissions,allow_other`);
    mounts.push(dir);
    const devFd = fs.openSync(image, extraArgs.includes('--ro') ? 'r' : 'r+');
    const child = spawn(process.execPath, ['--jitless', script, '--fuse-fd', '3', '--device-fd', '4', ...extraArgs], {
      stdio: ['ignore', 'pipe', 'pipe', fuseFd, devFd],
    });
    fs.closeSync(fuseFd);
    fs.closeSync(devFd);
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    return { dir, child, exited, stderr: () => err };
  }

  async function unmount(s: Served): Promise<number | null> {
    umount2(s.dir, 0);
    const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000));
    const code = await Promise.race([s.exited, timeout]);
    if (code === 'timeout') {
      s.child.kill('SIGKILL');
      throw new Error(`server did not exit after umount: ${s.stderr()}`);
    }
    return code;
  }

  it('creates, writes, reads back, renames, deletes, lists Unicode names; fsck clean; mtools agrees', async () => {
    const image = path.join(work, 'rw.img');
    mkfs(image, 32);
    mtools('mcopy', ['-i', image, '-', '::/from-mtools.txt'], Buffer.from('made by mtools\n'));
    const s = serve(image, 'rw', ['-o', 'uid=1000,gid=1000,shortname=mixed,utf8,flush,dmask=022,fmask=133']);
    const d = s.dir;
    await new Promise((r) => setTimeout(r, 50));
    expect(fs.readFileSync(path.join(d, 'from-mtools.txt'), 'utf8')).toBe('made by mtools\n');
    const st0 = fs.statSync(path.join(d, 'from-mtools.txt'));
    expect(st0.uid).toBe(1000);
    expect(st0.mode & 0o777).toBe(0o644);

    fs.mkdirSync(path.join(d, 'Dossier'));
    fs.mkdirSync(path.join(d, 'Dossier', 'sub'));
    const big = Buffer.alloc(3 * 1024 * 1024 + 123);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 11)) & 0xff;
    const t0 = process.hrtime.bigint();
    fs.writeFileSync(path.join(d, 'Dossier', 'número.txt'), big);
    const t1 = process.hrtime.bigint();
    const back = fs.readFileSync(path.join(d, 'Dossier', 'número.txt'));
    const t2 = process.hrtime.bigint();
    expect(back.equals(big)).toBe(true);
    console.log(`FUSE write ${(big.length / 1048576 / (Number(t1 - t0) / 1e9)).toFixed(1)} MiB/s, read ${(big.length / 1048576 / (Number(t2 - t1) / 1e9)).toFixed(1)} MiB/s (3 MiB, --jitless server)`);

    fs.appendFileSync(path.join(d, 'Dossier', 'número.txt'), 'END');
    fs.writeFileSync(path.join(d, 'Long File Name Number 1.txt'), 'one');
    fs.writeFileSync(path.join(d, 'Long File Name Number 2.txt'), 'two');
    fs.renameSync(path.join(d, 'Long File Name Number 2.txt'), path.join(d, 'Dossier', 'sub', 'moved.txt'));
    fs.renameSync(path.join(d, 'Dossier', 'sub'), path.join(d, 'sub-moved'));
    fs.writeFileSync(path.join(d, 'gone.txt'), 'x');
    fs.unlinkSync(path.join(d, 'gone.txt'));
    fs.truncateSync(path.join(d, 'Long File Name Number 1.txt'), 10000);
    fs.truncateSync(path.join(d, 'Long File Name Number 1.txt'), 2);
    expect(() => fs.writeFileSync(path.join(d, 'bad?.txt'), 'x')).toThrow(/EINVAL/);
    expect(() => fs.rmdirSync(path.join(d, 'Dossier'))).toThrow(/ENOTEMPTY/);
    expect(() => fs.chownSync(path.join(d, 'from-mtools.txt'), 0, 0)).toThrow(/EPERM/);

    expect(fs.readdirSync(d).sort()).toEqual(['Dossier', 'Long File Name Number 1.txt', 'from-mtools.txt', 'sub-moved']);
    expect(fs.readdirSync(path.join(d, 'Dossier'))).toEqual(['número.txt']);
    expect(fs.readFileSync(path.join(d, 'sub-moved', 'moved.txt'), 'utf8')).toBe('two');
    // case-insensitive lookup, case-preserving names
    expect(fs.readFileSync(path.join(d, 'LONG FILE NAME NUMBER 1.TXT'), 'utf8')).toBe('on');
    const sf = fs.statfsSync(d);
    expect(sf.bsize).toBe(512);
    expect(sf.blocks).toBeGreaterThan(60000);
    expect(sf.bfree).toBeLessThan(sf.blocks);

    // an open, unlinked file stays readable
    const fd = fs.openSync(path.join(d, 'from-mtools.txt'), 'r');
    fs.unlinkSync(path.join(d, 'from-mtools.txt'));
    const b = Buffer.alloc(64);
    const n = fs.readSync(fd, b, 0, 64, 0);
    expect(b.subarray(0, n).toString()).toBe('made by mtools\n');
    fs.closeSync(fd);

    expect(await unmount(s)).toBe(0);
    const check = fsck(image);
    expect(check.ok, check.output).toBe(true);
    const tree = mtoolsTree(image);
    expect([...tree.keys()].sort()).toEqual([
      '/Dossier', '/Dossier/número.txt', '/Long File Name Number 1.txt', '/sub-moved', '/sub-moved/moved.txt',
    ]);
    expect(mtoolsRead(image, '/Dossier/número.txt').equals(Buffer.concat([big, Buffer.from('END')]))).toBe(true);
    expect(mtoolsRead(image, '/sub-moved/moved.txt').toString()).toBe('two');
  });

  it('read-only mount refuses writes and leaves the image byte-identical', async () => {
    const image = path.join(work, 'ro.img');
    mkfs(image, 16);
    mtools('mcopy', ['-i', image, '-', '::/a.txt'], Buffer.from('aaa'));
    const before = fs.readFileSync(image);
    const s = serve(image, 'ro', ['--ro']);
    expect(fs.readFileSync(path.join(s.dir, 'a.txt'), 'utf8')).toBe('aaa');
    expect(() => fs.writeFileSync(path.join(s.dir, 'b.txt'), 'b')).toThrow(/EROFS/);
    expect(await unmount(s)).toBe(0);
    expect(fs.readFileSync(image).equals(before)).toBe(true);
  });

  it('refuses an image that is not FAT with exit code 2 and a reason', async () => {
    const image = path.join(work, 'zero.img');
    fs.writeFileSync(image, Buffer.alloc(1024 * 1024));
    const s = serve(image, 'bad');
    const code = await s.exited;
    expect(code).toBe(2);
    expect(s.stderr()).toMatch(/mount refused: no x86 jump/);
    umount2(s.dir, MNT_DETACH);
  });
});
