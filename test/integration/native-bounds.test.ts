/**
 * Issue 12 findings 3 and 7, at the addon: every wait is bounded and a peer
 * cannot push fds at the helper. Real kernel sockets, pidfds and threads.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as native from '../../lib/native';
import { realDevicesOrFailInCI, releaseAll, tempDir } from '../support/devices';
import * as testNative from '../support/native-extras';

const canRun = realDevicesOrFailInCI('the addon bounds tests');
const NATIVE = path.resolve(__dirname, '../../dist/lib/native/index.js');

describe.skipIf(!canRun)('native addon: bounded waits, refused fds', () => {
  let dir: string;
  const open: number[] = [];

  beforeAll(() => {
    dir = tempDir();
  });
  afterAll(() => {
    for (const fd of open) fs.closeSync(fd);
    releaseAll();
  });

  function seqpacket(): number {
    const fd = native.socketSeqpacket();
    open.push(fd);
    return fd;
  }

  it('connect gives up with ETIMEDOUT while the listener never accepts and its backlog is full', async () => {
    const sock = path.join(dir, 'full');
    const listener = seqpacket();
    testNative.bind(listener, sock);
    testNative.listen(listener, 0); // one pending connection fills it
    await native.connect(seqpacket(), sock, 1000);
    const t0 = Date.now();
    const err = await native.connect(seqpacket(), sock, 500).then(() => null, (e: unknown) => e);
    const took = Date.now() - t0;
    expect(err).toBeInstanceOf(native.SyscallError);
    expect((err as native.SyscallError).code).toBe('ETIMEDOUT');
    expect(took).toBeGreaterThanOrEqual(450);
    expect(took).toBeLessThan(1500);
    console.log(`connect timeout: asked 500 ms, took ${took} ms`);
  }, 10_000);

  it('a socket with refusePassedFds makes the sender fail EPERM; plain messages still pass', async () => {
    const [a, b] = testNative.socketpairSeqpacket();
    open.push(a, b);
    expect(native.refusePassedFds(b)).toBe(true);
    const passed = fs.openSync('/dev/null', 'r');
    open.push(passed);
    const err = await native.sendMessage(a, Buffer.from('with fd'), passed, 1000).then(() => null, (e: unknown) => e);
    expect((err as native.SyscallError).code).toBe('EPERM');
    await native.sendMessage(a, Buffer.from('plain'), undefined, 1000);
    const got = await native.receiveMessage(b, 64, 1000);
    expect(got.data.toString()).toBe('plain');
    expect(got.fds).toEqual([]);
  });

  it('a pidfd becomes readable when its process exits, and can kill it', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const pidfd = native.pidfdOpen(child.pid!);
    open.push(pidfd);
    await expect(native.pollReadable(pidfd, 100)).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    native.pidfdSendSignal(pidfd, 9);
    await native.pollReadable(pidfd, 5000);
  });

  it('the watchdog fires while the main thread is blocked: message, cleanup, exit 32', () => {
    // The main thread sleeps synchronously (Atomics.wait) for 10 s: no JS timer could fire.
    const mnt = path.join(dir, 'wd-mnt');
    fs.mkdirSync(mnt);
    spawnSync('mount', ['-t', 'tmpfs', 'wd-test', mnt]);
    const script = `
      const n = require(${JSON.stringify(NATIVE)});
      n.watchdogArm(400, 'test: gave up');
      n.watchdogCleanup([], ${JSON.stringify(mnt)});
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10000);
      process.exit(0);
    `;
    const t0 = Date.now();
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 15_000 });
    const took = Date.now() - t0;
    expect(r.status).toBe(32);
    expect(r.stderr).toBe('test: gave up\n');
    expect(took).toBeLessThan(3000);
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(` ${mnt} `);
  });

  it('a disarmed watchdog does not fire', () => {
    const script = `
      const n = require(${JSON.stringify(NATIVE)});
      n.watchdogArm(200, 'test: gave up');
      n.watchdogDisarm();
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600);
      process.exit(0);
    `;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 15_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
