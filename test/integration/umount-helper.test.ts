/**
 * umount.fusegate: umount(8) runs it for sandboxed mounts (utab says
 * helper=fusegate), and it returns only once the FUSE server has exited, so
 * the device is safe to remove. On this host systemd is not PID 1, so a
 * FAKE cgroup tree (FUSEGATE_CGROUP_SYSTEM_SLICE) stands in for the service
 * instance's cgroup; the real one is exercised in test/e2e.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runHelper } from '../../helper/main';
import { childrenOf, startActivator, type Activator } from '../support/activator';
import { attachLoop, realDevicesOrFailInCI, makeImage, releaseAll, tempDir } from '../support/devices';
import { mountsAt, unmountAll, utabLine } from '../support/mounts';

const canRun = realDevicesOrFailInCI('umount helper tests');

const ROOT = path.resolve(__dirname, '../..');
const UMOUNT_HELPER = path.join(ROOT, 'dist/helper/umount.fusegate.js');
const FAKE = path.join(ROOT, 'test/support/fake_service.py');

describe.skipIf(!canRun)('umount.fusegate waits for the FUSE server', () => {
  let dir: string;
  let loop: string;
  let mnt: string;
  let slice: string;
  let unitDir: string;
  let activator: Activator | undefined;
  const savedEnv = { ...process.env };

  beforeAll(() => {
    dir = tempDir();
    loop = attachLoop(makeImage(dir, 'ext4', 16));
    mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    fs.mkdirSync(path.join(dir, 'sockets'));
    slice = path.join(dir, 'fake-cgroup', 'system.slice');
    // The instance name systemd gives an Accept=yes connection from this process.
    unitDir = path.join(slice, 'system-fuse2fs.slice', `fuse2fs@0-${process.pid}-0.service`);
    fs.mkdirSync(unitDir, { recursive: true });
    fs.writeFileSync(path.join(unitDir, 'cgroup.procs'), '');
    Object.assign(process.env, {
      FUSEGATE_POLICY: path.join(ROOT, 'policy/default-policy.yaml'),
      FUSEGATE_SOCKET_DIR: path.join(dir, 'sockets'),
      FUSEGATE_FSTAB: '/dev/null',
      FUSEGATE_CGROUP_SYSTEM_SLICE: slice,
    });
  });
  afterEach(async () => {
    unmountAll(mnt);
    await activator?.stop();
    activator = undefined;
  });
  afterAll(() => {
    process.env = savedEnv;
    releaseAll();
  });

  async function mountWithLingeringServer(delayS: number, mode = 'slow-exit'): Promise<number> {
    activator = await startActivator(path.join(dir, 'sockets', 'fuse2fs'), ['python3', FAKE], {
      FAKE_MODE: mode,
      FAKE_EXIT_DELAY: String(delayS),
    });
    expect(await runHelper([loop, mnt], '/sbin/mount.fusegate')).toBe(0);
    // utab sends umount(8) to us and names the instance whose processes to wait for.
    expect(utabLine(mnt)).toContain('helper=fusegate');
    expect(utabLine(mnt)).toContain(`x-fusegate.unit=fuse2fs@0-${process.pid}-0.service`);
    const [server] = childrenOf(activator.pid);
    fs.writeFileSync(path.join(unitDir, 'cgroup.procs'), `${server}\n`);
    return server!;
  }

  function umountHelper(env: Record<string, string> = {}) {
    const t0 = Date.now();
    const r = spawnSync(process.execPath, [UMOUNT_HELPER, mnt, '-t', 'fuse.fuse2fs'], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
      timeout: 30_000,
    });
    return { code: r.status, stderr: r.stderr, ms: Date.now() - t0 };
  }

  it('unmounts, then returns only after the server has exited', async () => {
    const server = await mountWithLingeringServer(1.5);
    const r = umountHelper();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(mountsAt(mnt)).toEqual([]);
    expect(utabLine(mnt)).toBeUndefined(); // umount -i updated utab
    expect(fs.existsSync(`/proc/${server}`)).toBe(false);
    expect(r.ms).toBeGreaterThanOrEqual(1400);
  });

  it('says so, and exits 32, when the server is still running at the time limit', async () => {
    const server = await mountWithLingeringServer(5);
    const r = umountHelper({ FUSEGATE_TIMEOUT: '1' });
    expect(r.code).toBe(32);
    expect(r.stderr).toMatch(/is unmounted, but fuse2fs@0-\d+-0\.service is still running after 1 s; do not remove the device yet/);
    expect(mountsAt(mnt)).toEqual([]);
    expect(fs.existsSync(`/proc/${server}`)).toBe(true);
  });

  it('ends an unmount stuck on a server that never answers DESTROY: aborts the connection, kills the server', async () => {
    const server = await mountWithLingeringServer(0, 'ignore-destroy');
    expect(mountsAt(mnt)[0]!.fsType).toBe('fuseblk.fuse2fs'); // block devices are fuseblk: umount(2) sends DESTROY and waits
    const r = umountHelper({ FUSEGATE_TIMEOUT: '2' });
    console.log(`umount deadline: FUSEGATE_TIMEOUT=2, umount.fusegate returned ${r.code} after ${r.ms} ms`);
    expect(r.code).toBe(32);
    expect(r.stderr).toMatch(
      /^umount\.fusegate: .+: the FUSE server did not finish the unmount within 2 s; aborted its FUSE connection and killed fuse2fs@0-\d+-0\.service; data it had not written is lost\n$/,
    );
    expect(r.ms).toBeGreaterThanOrEqual(1900);
    expect(r.ms).toBeLessThan(2000 + 3000);
    expect(mountsAt(mnt)).toEqual([]);
    expect(fs.existsSync(`/proc/${server}`)).toBe(false);
  }, 30_000);

  it('does not wait for a lazy unmount', async () => {
    await mountWithLingeringServer(3);
    const r = spawnSync(process.execPath, [UMOUNT_HELPER, mnt, '-l'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(mountsAt(mnt)).toEqual([]);
  });

  it('refuses what it does not know', () => {
    expect(spawnSync(process.execPath, [UMOUNT_HELPER, mnt, '--bogus']).status).toBe(1);
    expect(spawnSync(process.execPath, [UMOUNT_HELPER, path.join(dir, 'not-mounted')], { encoding: 'utf8' }).status).toBe(32);
  });
});
