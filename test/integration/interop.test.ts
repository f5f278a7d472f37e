/**
 * Interoperability both ways, against code that shares nothing with ours:
 * test/support/fake_helper.py plays libfuse's mount helper (client side,
 * written from docs/protocol.md) against fusegate's adapter and a real fuse2fs;
 * the reverse direction (fusegate's helper against a protocol-exact fake
 * service) is test/integration/helper-sandbox.test.ts.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { childrenOf, startActivator, type Activator } from '../support/activator';
import { attachLoop, realDevicesOrFailInCI, makeImage, releaseAll, tempDir } from '../support/devices';
import { mountsAt, unmountAll, waitFor } from '../support/mounts';
import { stageForUnprivileged } from '../support/unprivileged';

const canRun = realDevicesOrFailInCI('interop tests');

const ROOT = path.resolve(__dirname, '../..');
const FAKE_HELPER = path.join(ROOT, 'test/support/fake_helper.py');
const SANDBOX = path.join(ROOT, 'test/support/fake_sandbox.sh');

describe.skipIf(!canRun)("a libfuse-style helper against fusegate's adapter", () => {
  let dir: string;
  let loop: string;
  let mnt: string;
  let activator: Activator;

  beforeAll(async () => {
    dir = tempDir();
    const img = makeImage(dir, 'ext4', 16, 'INTEROP');
    // Seed a file with the kernel driver so the sandboxed server has something to serve.
    const seed = path.join(dir, 'seed');
    fs.mkdirSync(seed);
    expect(spawnSync('mount', ['-o', 'loop', img, seed]).status).toBe(0);
    fs.writeFileSync(path.join(seed, 'hello.txt'), 'from the kernel driver\n');
    expect(spawnSync('umount', [seed]).status).toBe(0);
    loop = attachLoop(img);
    mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    // The adapter runs as uid 65534: a copy it can read even when the checkout is private.
    const { adapter } = stageForUnprivileged();
    activator = await startActivator(path.join(dir, 'fuse2fs.sock'), [SANDBOX, process.execPath, '--jitless', '--no-expose-wasm', adapter, 'fuse2fs']);
  });
  afterEach(() => unmountAll(mnt));
  afterAll(async () => {
    await activator.stop();
    releaseAll();
  });

  function fakeHelper(options: string) {
    const r = spawnSync('python3', [FAKE_HELPER, activator.socket, loop, mnt, options], { encoding: 'utf8', timeout: 30_000 });
    return { code: r.status, report: JSON.parse(r.stdout.trim().split('\n').pop() || '{}') as Record<string, unknown>, stderr: r.stderr };
  }

  it('follows the protocol message by message and the server then serves the mount', async () => {
    const r = fakeHelper('ro,nosuid,nodev');
    expect(r.report.errors).toEqual([]);
    expect(r.code).toBe(0);
    // BDEV (the adapter probes for a block device first), then the mount steps in order, then goodbye.
    expect(r.report.sent).toEqual(['LAST', 'BDEV', 'TYPE', 'NAME', 'MNTP', 'OPTS', 'DOIT', 'BYEE']);
    expect(r.report.opened).toEqual([['BDEV', loop, fs.constants.O_RDONLY]]);
    expect(r.report.opts).toBe('default_permissions,allow_other');
    expect(r.report.ms_flags).toBe(1 | 2 | 4); // MS_RDONLY|MS_NOSUID|MS_NODEV from -o
    expect(r.report.bye).toBe(0);
    expect(mountsAt(mnt)[0]!.fsType).toBe('fuse.fuse2fs');
    expect(fs.readFileSync(path.join(mnt, 'hello.txt'), 'utf8')).toBe('from the kernel driver\n');
    unmountAll(mnt);
    expect(await waitFor(() => childrenOf(activator.pid).length === 0, 5000)).toBe(true);
  });

  it('asks to write only when the mount is read-write', () => {
    const r = fakeHelper('nosuid,nodev');
    expect(r.code).toBe(0);
    expect(r.report.opened).toEqual([['BDEV', loop, fs.constants.O_RDWR]]);
    expect(r.report.ms_flags).toBe(2 | 4);
  });
});
