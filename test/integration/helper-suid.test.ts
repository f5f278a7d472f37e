/**
 * Issue 12 finding 1, reproduced: an ext4 image holding a setuid-root copy of
 * id(1) and a world-writable block device node, served by the real fuse2fs
 * through the helper and the adapter (in the fake sandbox), under rules that
 * replace the defaults' force_options. Every sandboxed mount must be
 * nosuid,nodev whatever the rule says: as nobody, the binary must not run
 * as root and the device node must not open.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startActivator, type Activator } from '../support/activator';
import { realDevicesOrFailInCI, releaseAll, tempDir } from '../support/devices';
import { mountsAt, unmountAll } from '../support/mounts';
import { stageForUnprivileged } from '../support/unprivileged';

const canRun = realDevicesOrFailInCI('suid tests');

const ROOT = path.resolve(__dirname, '../..');
const HELPER = path.join(ROOT, 'dist/helper/mount.fusegate.js');
// The adapter runs as uid 65534: beforeAll points this at a staged copy it can
// read even when the checkout is private (test/support/unprivileged.ts).
let ADAPTER = path.join(ROOT, 'dist/sandbox/adapter-start.js');
const SANDBOX = path.join(ROOT, 'test/support/fake_sandbox.sh');

const AS_NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--'];

describe.skipIf(!canRun)('a hostile image through the sandbox cannot give setuid-root or raw devices', () => {
  let dir: string;
  let img: string;
  let sockets: string;
  let mnt: string;
  let activator: Activator | undefined;

  beforeAll(() => {
    for (const f of [HELPER, ADAPTER]) if (!fs.existsSync(f)) throw new Error(`${f} missing: run 'npm run build'`);
    ADAPTER = stageForUnprivileged().adapter;
    dir = tempDir();
    fs.chmodSync(dir, 0o755); // nobody must reach the mountpoint
    const content = path.join(dir, 'content');
    fs.mkdirSync(content);
    fs.copyFileSync('/usr/bin/id', path.join(content, 'id'));
    fs.chmodSync(path.join(content, 'id'), 0o4755);
    execFileSync('mknod', ['-m', '0666', path.join(content, 'disk'), 'b', '7', '6']);
    img = path.join(dir, 'hostile.img');
    fs.writeFileSync(img, '');
    fs.truncateSync(img, 16 * 1024 * 1024);
    execFileSync('mkfs.ext4', ['-q', '-F', '-d', content, img], { stdio: 'pipe' });
    sockets = path.join(dir, 'sockets');
    fs.mkdirSync(sockets);
    mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
  });

  afterEach(async () => {
    unmountAll(mnt);
    await activator?.stop();
    activator = undefined;
  });
  afterAll(releaseAll);

  function policyWith(forceOptions: string): string {
    const file = path.join(dir, `policy-${forceOptions.replace(/\W/g, '') || 'none'}.yaml`);
    fs.writeFileSync(file, `version: 1
defaults:
  action: deny
  reason: not the test image
  force_options: [nosuid, nodev]
rules:
  - name: images
    match: { kind: image }
    action: fuse
    backends: [fuse2fs]
    force_options: ${forceOptions}
`);
    return file;
  }

  async function mountHostile(policy: string): Promise<void> {
    activator = await startActivator(path.join(sockets, 'fuse2fs'), [
      SANDBOX, process.execPath, '--jitless', '--no-expose-wasm', ADAPTER, 'fuse2fs',
    ]);
    const env = { ...process.env, FUSEGATE_POLICY: policy, FUSEGATE_SOCKET_DIR: sockets, FUSEGATE_FSTAB: '/dev/null' };
    const r = spawnSync(process.execPath, [HELPER, img, mnt], { env, encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  }

  function mountOptions(): string[] {
    const [m] = mountsAt(mnt);
    expect(m?.fsType).toBe('fuse.fuse2fs');
    return m!.options.split(',');
  }

  it('force_options: [noexec] (as policy/README words it) still mounts nosuid,nodev; the device node does not open', async () => {
    await mountHostile(policyWith('[noexec]'));
    expect(mountOptions()).toEqual(expect.arrayContaining(['nosuid', 'nodev', 'noexec', 'allow_other', 'default_permissions']));
    // The node is on the image, 0666; nodev makes open(2) fail for anyone.
    expect(fs.statSync(path.join(mnt, 'disk')).isBlockDevice()).toBe(true);
    const open = spawnSync(AS_NOBODY[0]!, [...AS_NOBODY.slice(1), 'head', '-c', '1', path.join(mnt, 'disk')], { encoding: 'utf8' });
    expect(open.status).not.toBe(0);
    expect(open.stderr).toMatch(/Permission denied/);
  });

  it('force_options: [] still mounts nosuid,nodev; the setuid-root binary runs as nobody', async () => {
    await mountHostile(policyWith('[]'));
    expect(mountOptions()).toEqual(expect.arrayContaining(['nosuid', 'nodev']));
    expect(fs.statSync(path.join(mnt, 'id')).mode & 0o4000).toBe(0o4000); // the bit is there, and ignored
    const id = spawnSync(AS_NOBODY[0]!, [...AS_NOBODY.slice(1), path.join(mnt, 'id')], { encoding: 'utf8' });
    expect(id.status).toBe(0);
    expect(id.stdout).toMatch(/^uid=65534/);
    expect(id.stdout).not.toMatch(/uid=0\(/);
  });

  it('a request for suid is refused with a message, and nothing is mounted', async () => {
    activator = await startActivator(path.join(sockets, 'fuse2fs'), [
      SANDBOX, process.execPath, '--jitless', '--no-expose-wasm', ADAPTER, 'fuse2fs',
    ]);
    const env = { ...process.env, FUSEGATE_POLICY: policyWith('[]'), FUSEGATE_SOCKET_DIR: sockets, FUSEGATE_FSTAB: '/dev/null' };
    const r = spawnSync(process.execPath, [HELPER, img, mnt, '-o', 'suid'], { env, encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(32);
    expect(r.stderr).toMatch(/suid is never allowed on a sandboxed mount/);
    expect(mountsAt(mnt)).toEqual([]);
  });
});
