/**
 * Issue 17 on the host: one writer per storage, with real loop devices,
 * the real helper (dist/), the adapter in the fake sandbox and the real
 * Debian FUSE servers (fuse2fs, exfat-fuse), and the kernel's ext4 driver.
 * Every alias of one storage is refused for a second read-write mount with
 * the existing mount named; read-only pairs mount; two helpers racing end
 * with exactly one read-write mount; the exFAT two-writer case from the
 * issue loses no file. Damaged and mislabelled media get the new words.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { blockStorage, sharedStorage, storageOfPath } from '../../lib/storage-identity';
import { main as policyMain } from '../../policy/cli';
import { childrenOf, startActivator, type Activator } from '../support/activator';
import { attachLoop, detachLoop, makeImage, realDevicesOrFailInCI, releaseAll, tempDir } from '../support/devices';
import { mountsAt, unmountAll, waitFor } from '../support/mounts';
import { stageForUnprivileged } from '../support/unprivileged';

const canRun = realDevicesOrFailInCI('one-writer tests');

const ROOT = path.resolve(__dirname, '../..');
const HELPER = path.join(ROOT, 'dist/helper/mount.fusegate.js');
// The adapter runs as uid 65534: beforeAll points this at a staged copy it can
// read even when the checkout is private (test/support/unprivileged.ts).
let ADAPTER = path.join(ROOT, 'dist/sandbox/adapter-start.js');
const SANDBOX = path.join(ROOT, 'test/support/fake_sandbox.sh');
const MiB = 1024 * 1024;

/** The kernel has device-mapper (a Firecracker guest may not). */
function hasDeviceMapper(): boolean {
  try {
    return /\bdevice-mapper\b/.test(fs.readFileSync('/proc/devices', 'utf8')) || /\bdevice-mapper\b/.test(fs.readFileSync('/proc/misc', 'utf8'));
  } catch {
    return false;
  }
}

interface Run {
  status: number | null;
  stderr: string;
}

describe.skipIf(!canRun)('one writer per storage (real loop devices, real servers)', () => {
  let dir: string;
  let sockets: string;
  let policy: string;
  let claims: string;
  const activators: Activator[] = [];
  const mounted: string[] = [];

  beforeAll(async () => {
    for (const f of [HELPER, ADAPTER]) if (!fs.existsSync(f)) throw new Error(`${f} missing: run 'npm run build'`);
    ADAPTER = stageForUnprivileged().adapter;
    dir = tempDir('fusegate-one-writer-');
    sockets = path.join(dir, 'sockets');
    claims = path.join(dir, 'claims');
    fs.mkdirSync(sockets);
    policy = path.join(dir, 'policy.yaml');
    fs.writeFileSync(policy, `version: 1
defaults:
  action: deny
  reason: not a test image
  allow_unsafe_write: true
  force_options: [nosuid, nodev]
  backends: {ext2: [fuse2fs], ext4: [fuse2fs], exfat: [exfat-fuse]}
rules:
  - name: kernel-test-images
    match: { label: [FGKERNEL] }
    action: kernel
  - name: sandbox-test-images
    match: { has_backend: true }
    action: fuse
`);
    for (const backend of ['fuse2fs', 'exfat-fuse']) {
      activators.push(await startActivator(path.join(sockets, backend), [SANDBOX, process.execPath, '--jitless', '--no-expose-wasm', ADAPTER, backend]));
    }
  });

  afterEach(async () => {
    for (const m of mounted.splice(0)) unmountAll(m);
    // Every server has finished writing and exited before the next test reuses anything.
    await waitFor(() => activators.every((a) => childrenOf(a.pid).length === 0), 10_000);
  });

  afterAll(async () => {
    for (const a of activators) await a.stop();
    releaseAll();
  });

  function helper(source: string, mnt: string, extra: string[] = []): Promise<Run> {
    const env = { ...process.env, FUSEGATE_POLICY: policy, FUSEGATE_SOCKET_DIR: sockets, FUSEGATE_FSTAB: '/dev/null', FUSEGATE_CLAIM_DIR: claims };
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [HELPER, source, mnt, ...extra], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (b) => { stderr += b; });
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('close', (status) => { clearTimeout(timer); resolve({ status, stderr }); });
    });
  }

  function mountpoint(name: string): string {
    const m = path.join(dir, `mnt-${name}-${Math.random().toString(36).slice(2, 8)}`);
    fs.mkdirSync(m);
    mounted.push(m);
    return m;
  }

  function caseDir(name: string): string {
    return fs.mkdtempSync(path.join(dir, `${name}-`));
  }

  async function mountOk(source: string, mnt: string, extra: string[] = []): Promise<void> {
    const r = await helper(source, mnt, extra);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(mountsAt(mnt)).toHaveLength(1);
  }

  /** A second read-write mount of `source` is refused, naming the mount at `existing`. */
  async function refusedNaming(source: string, existing: string): Promise<string> {
    const mnt = mountpoint('second');
    const r = await helper(source, mnt);
    expect(r.status).toBe(32);
    expect(mountsAt(mnt)).toHaveLength(0);
    const lines = r.stderr.trim().split('\n');
    // One line of what happened, one of what to do.
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain(`is the same storage as`);
    expect(lines[0]).toContain(`on ${existing} (`);
    expect(lines[0]).toMatch(/read-write\)/);
    expect(lines[1]).toContain('mount it read-only (mount -o ro');
    return r.stderr;
  }

  function ext2Image(name: string, sizeMiB = 16, label = 'FGTEST'): string {
    return makeImage(caseDir(name), 'ext2', sizeMiB, label);
  }

  it('the same block device, twice', async () => {
    const loop = attachLoop(ext2Image('same'));
    const a = mountpoint('a');
    await mountOk(loop, a);
    await refusedNaming(loop, a);
  }, 60_000);

  it('a loop device and its backing file, either way round', async () => {
    const img = ext2Image('backing');
    const loop = attachLoop(img);
    const a = mountpoint('a');
    await mountOk(loop, a);
    const said = await refusedNaming(img, a);
    expect(said).toContain(`${loop} on ${a}`);
    unmountAll(a);
    await waitFor(() => mountsAt(a).length === 0, 5000);
    await waitFor(() => activators.every((x) => childrenOf(x.pid).length === 0), 10_000);
    const b = mountpoint('b');
    await mountOk(img, b);
    await refusedNaming(loop, b);
  }, 60_000);

  it('two loop devices on one file: overlapping ranges refused, disjoint ranges allowed', async () => {
    const d = caseDir('ranges');
    const img = path.join(d, 'two.img');
    fs.writeFileSync(img, '');
    fs.truncateSync(img, 48 * MiB);
    const first = execFileSync('losetup', ['-f', '--show', '--sizelimit', `${16 * MiB}`, img], { encoding: 'utf8' }).trim();
    const second = execFileSync('losetup', ['-f', '--show', '--offset', `${16 * MiB}`, '--sizelimit', `${16 * MiB}`, img], { encoding: 'utf8' }).trim();
    // [0, 32 MiB): holds the first filesystem's superblock, and overlaps it.
    const wide = execFileSync('losetup', ['-f', '--show', '--sizelimit', `${32 * MiB}`, img], { encoding: 'utf8' }).trim();
    try {
      execFileSync('mkfs.ext2', ['-q', '-F', '-L', 'FGFIRST', first]);
      execFileSync('mkfs.ext2', ['-q', '-F', '-L', 'FGSECOND', second]);
      const a = mountpoint('a');
      const b = mountpoint('b');
      await mountOk(first, a);
      await mountOk(second, b);
      await refusedNaming(wide, a);
    } finally {
      for (const m of mounted) unmountAll(m);
      for (const l of [first, second, wide]) detachLoop(l);
    }
  }, 60_000);

  it('a loop device stacked on another', async () => {
    const lower = attachLoop(ext2Image('stacked'));
    const upper = attachLoop(lower);
    const a = mountpoint('a');
    await mountOk(lower, a);
    await refusedNaming(upper, a);
  }, 60_000);

  it('a whole disk and its partitions share storage; two partitions do not', async (ctx) => {
    const d = caseDir('parts');
    const img = path.join(d, 'disk.img');
    fs.writeFileSync(img, '');
    fs.truncateSync(img, 40 * MiB);
    execFileSync('sfdisk', ['--quiet', img], { input: 'label: dos\n,16M,L\n,16M,L\n' });
    const disk = execFileSync('losetup', ['-f', '--show', '-P', img], { encoding: 'utf8' }).trim();
    try {
      // Some kernels (a minimal Firecracker guest) read no partition tables: covered by the unit tests then.
      if (!(await waitFor(() => fs.existsSync(`${disk}p2`), 3000))) ctx.skip();
      const p1 = `${disk}p1`;
      const p2 = `${disk}p2`;
      const [whole, s1, s2] = [disk, p1, p2].map((p) => storageOfPath(p)!);
      expect(sharedStorage(whole!.extents, s1!.extents)).not.toBeNull();
      expect(sharedStorage(whole!.extents, s2!.extents)).not.toBeNull();
      expect(sharedStorage(s1!.extents, s2!.extents)).toBeNull();
      expect(s1!.path.join('\n')).toMatch(/partition of loop\d+ at byte 1048576/);

      execFileSync('mkfs.ext2', ['-q', '-F', '-L', 'FGPART', p1]);
      execFileSync('mkfs.ext2', ['-q', '-F', '-L', 'FGPART2', p2]);
      // A loop device over the partition's bytes of the image is the same storage as the partition.
      const alias = execFileSync('losetup', ['-f', '--show', '--offset', `${1 * MiB}`, '--sizelimit', `${16 * MiB}`, img], { encoding: 'utf8' }).trim();
      try {
        const a = mountpoint('a');
        const b = mountpoint('b');
        await mountOk(p1, a);
        await mountOk(p2, b);
        await refusedNaming(alias, a);
      } finally {
        for (const m of mounted) unmountAll(m);
        detachLoop(alias);
      }
    } finally {
      detachLoop(disk);
    }
  }, 60_000);

  it.skipIf(!hasDeviceMapper())('a dm device over a loop device', async () => {
    const loop = attachLoop(ext2Image('dm'));
    const sectors = execFileSync('blockdev', ['--getsz', loop], { encoding: 'utf8' }).trim();
    const name = `fgtest-${process.pid}`;
    execFileSync('dmsetup', ['create', name, '--table', `0 ${sectors} linear ${loop} 0`]);
    try {
      const a = mountpoint('a');
      await mountOk(loop, a);
      await refusedNaming(`/dev/mapper/${name}`, a);
    } finally {
      for (const m of mounted) unmountAll(m);
      execFileSync('dmsetup', ['remove', name]);
    }
  }, 60_000);

  it('a kernel mount is guarded too: a sandboxed mount of its image is refused', async () => {
    const img = makeImage(caseDir('kernel'), 'ext4', 16, 'FGKERNEL');
    const a = mountpoint('a');
    await mountOk(img, a);
    expect(mountsAt(a)[0]!.fsType).toBe('ext4');
    const loop = attachLoop(img);
    await refusedNaming(loop, a);
  }, 60_000);

  it('read-only next to read-only mounts; a writer next to them is refused', async () => {
    const img = ext2Image('ro');
    const loop = attachLoop(img);
    const a = mountpoint('a');
    const b = mountpoint('b');
    await mountOk(loop, a, ['-o', 'ro']);
    await mountOk(img, b, ['-o', 'ro']);
    const c = mountpoint('c');
    const r = await helper(img, c);
    expect(r.status).toBe(32);
    expect(r.stderr).toMatch(/read-only\)/);
    expect(r.stderr).toContain('unmount');
    // Read-only next to a writer: no server here can follow a changing device.
    unmountAll(a);
    unmountAll(b);
    await waitFor(() => activators.every((x) => childrenOf(x.pid).length === 0), 10_000);
    await mountOk(loop, a);
    const ro = await helper(img, b, ['-o', 'ro']);
    expect(ro.status).toBe(32);
    expect(ro.stderr).toContain('fuse2fs cannot show a filesystem that another mount changes under it');
  }, 60_000);

  it('two helpers racing on one image end with exactly one read-write mount', async () => {
    const img = ext2Image('race');
    const loop = attachLoop(img);
    const iterations = 8;
    for (let i = 0; i < iterations; i++) {
      const a = mountpoint('ra');
      const b = mountpoint('rb');
      // One through the image path, one through its loop device, started together.
      const [ra, rb] = await Promise.all([helper(img, a), helper(i % 2 === 0 ? loop : img, b)]);
      const ok = [ra, rb].filter((r) => r.status === 0).length;
      const live = mountsAt(a).length + mountsAt(b).length;
      expect({ i, ok, live }).toEqual({ i, ok: 1, live: 1 });
      const loser = ra.status === 0 ? rb : ra;
      expect(loser.status).toBe(32);
      expect(loser.stderr).toMatch(/same storage as|held|in use/);
      unmountAll(a);
      unmountAll(b);
      await waitFor(() => activators.every((x) => childrenOf(x.pid).length === 0), 10_000);
    }
  }, 180_000);

  it('the exFAT two-writer case from the issue: the second mount is refused and no file is lost', async () => {
    const img = makeImage(caseDir('exfat'), 'exfat', 16, 'FGEXFAT');
    const a = mountpoint('a');
    await mountOk(img, a);
    const second = attachLoop(img);
    const b = mountpoint('b');
    const r = await helper(second, b);
    expect(r.status).toBe(32);
    expect(r.stderr).toContain(`${img} on ${a}`);
    // The claim outlives the helper: the server holds the exclusive lock on the image.
    expect(spawnSync('flock', ['-n', '-x', img, 'true']).status).toBe(1);
    fs.writeFileSync(path.join(a, 'first.txt'), 'first writer\n');
    unmountAll(a);
    await waitFor(() => activators.every((x) => childrenOf(x.pid).length === 0), 10_000);
    expect(spawnSync('flock', ['-n', '-x', img, 'true']).status).toBe(0);
    // The only writer's file is there, and the filesystem is clean.
    execFileSync('fsck.exfat', ['-n', img], { stdio: 'pipe' });
    await mountOk(second, b, ['-o', 'ro']);
    expect(fs.readFileSync(path.join(b, 'first.txt'), 'utf8')).toBe('first writer\n');
  }, 60_000);

  it('a damaged ext4 image gets words that say so, and explain shows the same', async () => {
    const img = makeImage(caseDir('damaged'), 'ext4', 16, 'FGDAMAGED');
    const fd = fs.openSync(img, 'r+');
    fs.writeSync(fd, Buffer.alloc(1024), 0, 1024, 1024); // the primary superblock
    fs.closeSync(fd);
    const mnt = mountpoint('damaged');
    const r = await helper(img, mnt, ['-t', 'ext4']);
    expect(r.status).toBe(32);
    expect(r.stderr).toContain(`asked for ext4, but no ext4 filesystem was found on ${img}`);
    expect(r.stderr).toContain('the medium may be damaged');
    expect(r.stderr).toContain(`check it without changing it: fsck.ext4 -n ${img}`);
    expect(r.stderr).not.toContain('no sandboxed driver');
    expect(r.stderr.trim().split('\n')).toHaveLength(2);

    let out = '';
    await policyMain(['explain', img, mnt, '-t', 'ext4', '--policy', policy], { out: (s) => { out += s; }, err: (s) => { out += s; } });
    expect(out).toContain(`asked for ext4, but no ext4 filesystem was found on ${img}`);
    expect(out).toContain(`fsck.ext4 -n ${img}`);
  }, 60_000);

  it('a mislabelled image is mounted as what it holds, said once on stderr; explain says it too', async () => {
    const img = ext2Image('mislabelled');
    const mnt = mountpoint('mislabelled');
    const r = await helper(img, mnt, ['-t', 'vfat']);
    expect(r.status).toBe(0);
    expect(mountsAt(mnt)[0]!.fsType).toBe('fuse.fuse2fs');
    const said = r.stderr.trim().split('\n');
    expect(said).toHaveLength(1);
    expect(said[0]).toContain(`asked for vfat, but ${img} holds ext2: mounting it as ext2`);
    expect(said[0]).toContain(`fsck.vfat -n ${img}`);

    let out = '';
    await policyMain(['explain', img, '-t', 'vfat', '--policy', policy], { out: (s) => { out += s; }, err: (s) => { out += s; } });
    expect(out).toContain(`asked for vfat, but ${img} holds ext2`);
  }, 60_000);

  it('explain shows the storage identities and the mount that conflicts', async () => {
    const img = ext2Image('explain');
    const loop = attachLoop(img);
    const a = mountpoint('a');
    await mountOk(img, a);
    const st = fs.statSync(img, { bigint: true });
    let out = '';
    await policyMain(['explain', loop, '/mnt/other', '--policy', policy], { out: (s) => { out += s; }, err: (s) => { out += s; } });
    expect(out).toContain('Storage (one writer per storage)');
    expect(out).toMatch(new RegExp(`is +file on \\d+:\\d+ inode ${st.ino} \\(whole\\)`));
    expect(out).toContain(`${img} on ${a} (fuse.fuse2fs, read-write): shares`);
    expect(out).toMatch(/verdict +refused \(read-write\)/);
    // The storage identity explain names is the one the helper resolves.
    expect(blockStorage(execFileSync('stat', ['-c', '%t:%T', loop], { encoding: 'utf8' }).trim().split(':').map((h) => parseInt(h, 16)).join(':')).extents[0]!.root)
      .toBe(storageOfPath(img)!.extents[0]!.root);
  }, 60_000);
});
