/**
 * Issue 14 on the host: a FAT stick mounts read-write through the helper →
 * the adapter (socket-activated, inside the fake sandbox: nobody, no
 * capabilities, no device nodes) → fusegate-vfat served in the adapter's own
 * process. udisks2's options reach the engine; after umount the image is
 * clean for fsck.fat and mtools (an independent FAT implementation) reads
 * what was written. A corrupt image is refused before anything is mounted,
 * with the reason in the adapter's log.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { childrenOf, startActivator, type Activator } from '../support/activator';
import { attachLoop, realDevicesOrFailInCI, releaseAll, tempDir } from '../support/devices';
import { mountsAt, unmountAll, waitFor } from '../support/mounts';
import { fsck, mkfs, mtools, mtoolsRead, mtoolsTree } from '../support/vfat/tools';
import { stageForUnprivileged } from '../support/unprivileged';

const canRun = realDevicesOrFailInCI('fusegate-vfat service tests');

const ROOT = path.resolve(__dirname, '../..');
const HELPER = path.join(ROOT, 'dist/helper/mount.fusegate.js');
// The adapter runs as uid 65534: beforeAll points this at a staged copy it can
// read even when the checkout is private (test/support/unprivileged.ts).
let ADAPTER = path.join(ROOT, 'dist/sandbox/adapter-start.js');
const SANDBOX = path.join(ROOT, 'test/support/fake_sandbox.sh');
/** What udisks2 passes for vfat (DESIGN.md §5), for a desktop user 1000. */
const UDISKS_OPTIONS = 'rw,nodev,nosuid,uid=1000,gid=1000,shortname=mixed,utf8=1,showexec,flush,uhelper=udisks2';
/** 2 MiB and a bit of a pattern that repeats nowhere near a cluster size */
const BIG = Buffer.from(Array.from({ length: 2 * 1024 * 1024 + 77 }, (_, i) => (i * 31 + (i >> 9)) & 0xff));

describe.skipIf(!canRun)('helper → adapter → fusegate-vfat in-process', () => {
  let dir: string;
  let sockets: string;
  let policy: string;
  let adapterLog: string;
  let activator: Activator | undefined;

  beforeAll(() => {
    for (const f of [HELPER, ADAPTER]) if (!fs.existsSync(f)) throw new Error(`${f} missing: run 'npm run build'`);
    ADAPTER = stageForUnprivileged().adapter;
    dir = tempDir('fusegate-vfat-service-');
    sockets = path.join(dir, 'sockets');
    fs.mkdirSync(sockets);
    // No allow_unsafe_write: fusegate-vfat is marked safe, so this is read-write as the default policy would mount it.
    policy = path.join(dir, 'policy.yaml');
    fs.writeFileSync(
      policy,
      `version: 1
defaults:
  action: deny
  reason: not a test image
  force_options: [nosuid, nodev]
  backends: { vfat: [fusegate-vfat, fusefat] }
rules:
  - name: sandbox-test-images
    match: { has_backend: true }
    action: fuse
`,
    );
  });

  afterEach(async () => {
    await activator?.stop();
    activator = undefined;
  });
  afterAll(releaseAll);

  async function activate(): Promise<void> {
    adapterLog = path.join(dir, `adapter-${Date.now()}.log`);
    // The adapter logs to stderr here (no journal socket): keep it, opened as root before the sandbox.
    activator = await startActivator(path.join(sockets, 'fusegate-vfat'), [
      '/bin/sh', '-c', `exec "$@" 2>>${adapterLog}`, 'sh',
      SANDBOX, process.execPath, '--jitless', '--no-expose-wasm', ADAPTER, 'fusegate-vfat',
    ]);
  }

  function helper(source: string, mnt: string, options = UDISKS_OPTIONS) {
    const env = { ...process.env, FUSEGATE_POLICY: policy, FUSEGATE_SOCKET_DIR: sockets, FUSEGATE_FSTAB: '/dev/null' };
    return spawnSync(process.execPath, [HELPER, source, mnt, '-o', options], { env, encoding: 'utf8', timeout: 30_000 });
  }

  it('a FAT32 stick on a loop device: read-write with udisks2 options, Unicode names, clean after umount, mtools agrees', async () => {
    const caseDir = fs.mkdtempSync(path.join(dir, 'rw-'));
    const img = path.join(caseDir, 'stick.img');
    mkfs(img, 32);
    mtools('mcopy', ['-i', img, '-', '::/from-mtools.txt'], Buffer.from('made by mtools\n'));
    const loop = attachLoop(img);
    const mnt = path.join(caseDir, 'mnt');
    fs.mkdirSync(mnt);
    await activate();
    try {
      const r = helper(loop, mnt);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const row = mountsAt(mnt)[0]!;
      expect(row.fsType).toBe('fuseblk.fusegate-vfat');
      expect(row.options.split(',')).toEqual(expect.arrayContaining(['rw', 'nosuid', 'nodev']));

      // Served by the adapter's own process (node, no execve), as nobody, without capabilities.
      const kids = childrenOf(activator!.pid);
      expect(kids).toHaveLength(1);
      const pid = kids[0]!;
      expect(fs.realpathSync(`/proc/${pid}/exe`)).toBe(fs.realpathSync(process.execPath));
      const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      expect(status).toMatch(/^Uid:\s+65534\s/m);
      expect(status).toMatch(/^CapEff:\s+0+$/m);
      const targets = fs.readdirSync(`/proc/${pid}/fd`).map((fd) => { try { return fs.readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { return ''; } });
      expect([...new Set(targets.filter((t) => t.startsWith('/dev/') && t !== '/dev/null'))].sort()).toEqual([loop, '/dev/fuse'].sort());

      // udisks2's options reached the engine: owner 1000, showexec (no x bits but for .exe/.bat/.com), umask 022.
      const st = fs.statSync(path.join(mnt, 'from-mtools.txt'));
      expect({ uid: st.uid, gid: st.gid, mode: st.mode & 0o777 }).toEqual({ uid: 1000, gid: 1000, mode: 0o644 });
      fs.writeFileSync(path.join(mnt, 'setup.exe'), 'MZ');
      expect(fs.statSync(path.join(mnt, 'setup.exe')).mode & 0o777).toBe(0o755);
      expect(fs.statSync(mnt).mode & 0o777).toBe(0o755);

      fs.mkdirSync(path.join(mnt, 'Fotos'));
      fs.writeFileSync(path.join(mnt, 'número.txt'), 'uno dos tres\n');
      fs.writeFileSync(path.join(mnt, 'Fotos', 'Großes Bild.raw'), BIG);
      fs.writeFileSync(path.join(mnt, 'Fotos', 'gone.txt'), 'x');
      fs.unlinkSync(path.join(mnt, 'Fotos', 'gone.txt'));
      expect(fs.readdirSync(mnt).sort()).toEqual(['Fotos', 'from-mtools.txt', 'número.txt', 'setup.exe']);
      expect(fs.readFileSync(path.join(mnt, 'NÚMERO.TXT'), 'utf8')).toBe('uno dos tres\n');

      // umount ends the in-process server after its clean-unmount work.
      unmountAll(mnt);
      expect(await waitFor(() => childrenOf(activator!.pid).length === 0, 10_000)).toBe(true);
    } finally {
      unmountAll(mnt);
    }
    const check = fsck(loop);
    expect(check.ok, check.output).toBe(true);
    const tree = mtoolsTree(img);
    expect([...tree.keys()].sort()).toEqual(['/Fotos', '/Fotos/Großes Bild.raw', '/from-mtools.txt', '/número.txt', '/setup.exe']);
    expect(mtoolsRead(img, '/número.txt').toString()).toBe('uno dos tres\n');
    expect(mtoolsRead(img, '/Fotos/Großes Bild.raw').equals(BIG)).toBe(true);
    expect(fs.readFileSync(adapterLog, 'utf8')).toMatch(/serving FAT32 in-process/);
  }, 60_000);

  it('a corrupt image is refused with a reason before anything is mounted', async () => {
    const caseDir = fs.mkdtempSync(path.join(dir, 'bad-'));
    const img = path.join(caseDir, 'bad.img');
    mkfs(img, 32);
    // The root directory's cluster far beyond the volume: blkid still says vfat (so the policy
    // sends it to fusegate-vfat), fsck.fat says "Bad FAT32 root directory".
    const fd = fs.openSync(img, 'r+');
    fs.writeSync(fd, Buffer.from([0xff, 0xff, 0xff, 0x0f]), 0, 4, 44);
    fs.closeSync(fd);
    const before = fs.readFileSync(img);
    const mnt = path.join(caseDir, 'mnt');
    fs.mkdirSync(mnt);
    await activate();
    try {
      const r = helper(img, mnt);
      expect(r.status).toBe(32);
      expect(r.stderr).toMatch(/gave up/);
      expect(r.stderr).toContain('journalctl -u "fusegate-vfat@*"');
      expect(mountsAt(mnt)).toEqual([]);
      expect(await waitFor(() => childrenOf(activator!.pid).length === 0, 10_000)).toBe(true);
      expect(fs.readFileSync(adapterLog, 'utf8')).toMatch(/mount refused: root directory cluster 268435455 out of range/);
      // nothing was written to the refused image
      expect(fs.readFileSync(img).equals(before)).toBe(true);
    } finally {
      unmountAll(mnt);
    }
  }, 60_000);
});
