/**
 * Issue 12 finding 3: the helper's last-resort deadline holds while a
 * synchronous call blocks. SOURCE lies inside a FUSE mount whose server never
 * answers LOOKUP, so pinning it blocks the helper's main thread inside the
 * kernel; no JS timer can fire then. The addon's watchdog thread must still
 * end the helper at FUSEGATE_TIMEOUT + 1 s with a clear line and exit 32.
 * (Before, the helper was still blocked after 25 s.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { realDevicesOrFailInCI, releaseAll, tempDir } from '../support/devices';
import { mountsAt, unmountAll } from '../support/mounts';

const canRun = realDevicesOrFailInCI('helper watchdog tests');

const ROOT = path.resolve(__dirname, '../..');
const HELPER = path.join(ROOT, 'dist/helper/mount.fusegate.js');
const HUNG = path.join(ROOT, 'test/support/hung_fuse.py');

describe.skipIf(!canRun)('the helper watchdog', () => {
  let dir: string;
  let hungMnt: string;
  let server: ChildProcess;

  beforeAll(async () => {
    dir = tempDir();
    hungMnt = path.join(dir, 'hung');
    fs.mkdirSync(hungMnt);
    server = spawn('python3', [HUNG, hungMnt], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      server.stdout!.once('data', () => resolve());
      server.once('exit', (code) => reject(new Error(`hung_fuse.py exited ${code}`)));
    });
    expect(mountsAt(hungMnt)).toHaveLength(1);
  });
  afterAll(() => {
    // Abort-free cleanup: a lazy unmount, then the server ends on ENODEV (or is killed).
    unmountAll(hungMnt);
    server.kill('SIGKILL');
    releaseAll();
  });

  it('exits 32 with one line on stderr, 1 s after FUSEGATE_TIMEOUT, while blocked in a FUSE LOOKUP', async () => {
    const mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    const t0 = Date.now();
    const helper = spawn(process.execPath, [HELPER, path.join(hungMnt, 'disk.img'), mnt], {
      env: { ...process.env, FUSEGATE_TIMEOUT: '3', FUSEGATE_FSTAB: '/dev/null', FUSEGATE_POLICY: path.join(ROOT, 'policy/default-policy.yaml') },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    helper.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    // Without the watchdog the helper never exits, and cannot be killed
    // either: only ending the hung server frees it, so the test does that at 15 s.
    const rescue = setTimeout(() => server.kill('SIGKILL'), 15_000);
    const status = await new Promise<number | null>((resolve) => helper.on('close', (code) => resolve(code)));
    clearTimeout(rescue);
    const r = { status, stderr, signal: helper.signalCode };
    const took = Date.now() - t0;
    console.log(`watchdog: FUSEGATE_TIMEOUT=3, helper exited ${r.status} after ${took} ms`);
    expect(r.signal).toBeNull();
    expect(r.status).toBe(32);
    expect(r.stderr).toBe('mount.fusegate: gave up after 4 s: something did not answer (FUSEGATE_TIMEOUT=3)\n');
    // 4 s from the process's start; the slack is for fork and exec on a loaded machine.
    expect(took).toBeGreaterThanOrEqual(3900);
    expect(took).toBeLessThan(5500);
    expect(mountsAt(mnt)).toEqual([]);
  }, 40_000);
});
