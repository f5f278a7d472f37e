/**
 * The helper's sandbox path against a real socket (systemd-socket-activate
 * standing in for systemd) and an independent fake service
 * (test/support/fake_service.py), with real /dev/fuse, loop devices and
 * kernel mounts. The helper runs in-process so the test can count its fds.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runHelper } from '../../helper/main';
import { startActivator, type Activator } from '../support/activator';
import { attachLoop, realDevicesOrFailInCI, makeImage, openFds, releaseAll, tempDir } from '../support/devices';
import { mountsAt, pidsWithArg, unmountAll, utabLine, waitFor } from '../support/mounts';

const canRun = realDevicesOrFailInCI('helper tests');

const FAKE = path.resolve(__dirname, '../support/fake_service.py');

describe.skipIf(!canRun)('helper sandbox path', () => {
  let dir: string;
  let loop: string;
  let mnt: string;
  let sockets: string;
  let fakeLog: string;
  let activator: Activator | undefined;
  const savedEnv = { ...process.env };

  beforeAll(() => {
    dir = tempDir();
    loop = attachLoop(makeImage(dir, 'ext4', 16));
    mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    sockets = path.join(dir, 'sockets');
    fs.mkdirSync(sockets);
    fakeLog = path.join(dir, 'fake.log');
    process.env.FUSEGATE_POLICY = path.resolve(__dirname, '../../policy/default-policy.yaml');
    process.env.FUSEGATE_SOCKET_DIR = sockets;
    process.env.FUSEGATE_FSTAB = path.join(dir, 'fstab');
    fs.writeFileSync(process.env.FUSEGATE_FSTAB, '');
  });

  afterEach(async () => {
    unmountAll(mnt);
    await activator?.stop();
    activator = undefined;
    fs.rmSync(fakeLog, { force: true });
    // Assigning undefined would set the string 'undefined', which the helper refuses as a timeout.
    if (savedEnv.FUSEGATE_TIMEOUT === undefined) delete process.env.FUSEGATE_TIMEOUT;
    else process.env.FUSEGATE_TIMEOUT = savedEnv.FUSEGATE_TIMEOUT;
  });

  afterAll(() => {
    process.env = savedEnv;
    releaseAll();
  });

  async function serve(mode: string) {
    activator = await startActivator(path.join(sockets, 'fuse2fs'), ['python3', FAKE], { FAKE_MODE: mode, FAKE_LOG: fakeLog });
  }

  function fakeSaw(): Record<string, unknown> {
    return JSON.parse(fs.readFileSync(fakeLog, 'utf8').trim().split('\n').pop()!);
  }

  /** The installed helper: the loader scripts/bundle.js writes, run as mount(8) runs it. */
  function runBundled(): Promise<{ code: number | null; stderr: string }> {
    const loader = path.resolve(__dirname, '../../dist/helper/mount.fusegate.js');
    return new Promise((resolve, reject) => {
      const child = spawn(loader, [loop, mnt], { env: process.env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stderr }));
    });
  }

  // The bundled helper loads its sandbox path from a bundle of its own
  // (scripts/bundle.js), which takes lib/errors, the addon and the watchdog
  // from the main bundle: the refusal it throws must still be a FusegateError
  // (its exit code and hint), not an internal error, and a mount must work.
  it('the bundled helper takes the sandbox path from its own bundle, sharing the main bundle\'s modules', async () => {
    // A socket nobody listens on (bound, then its process gone): connect fails in the sandbox path.
    const dead = path.join(sockets, 'fuse2fs');
    execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET).bind(sys.argv[1])', dead]);
    const refused = await runBundled();
    fs.rmSync(dead);
    expect(refused.stderr).not.toMatch(/internal error/);
    // the hint is printed only for a FusegateError (main.ts: instanceof): one class, shared
    expect(refused.stderr).toContain('see the service log: journalctl -u "fuse2fs@*"');
    expect(refused.stderr).toMatch(/cannot connect to .*fuse2fs/);
    expect(refused.code).toBe(32);
    expect(mountsAt(mnt)).toEqual([]);

    await serve('ok');
    const ok = await runBundled();
    expect(ok.code, ok.stderr).toBe(0);
    expect(mountsAt(mnt)[0]).toMatchObject({ fsType: 'fuse.fuse2fs', source: loop });
    expect(utabLine(mnt)).toContain('x-fusegate.backend=fuse2fs');
  });

  it('mounts through the service, records utab, and umount ends the server', async () => {
    await serve('ok');
    const before = openFds();
    const code = await runHelper([loop, mnt], '/sbin/mount.fusegate');
    expect(code).toBe(0);
    expect(openFds()).toEqual(before);

    const [m] = mountsAt(mnt);
    expect(m).toMatchObject({ fsType: 'fuse.fuse2fs', source: loop });
    // The default policy forces nosuid,nodev, and read-only because fuse2fs cannot write the ext4 journal.
    expect(m!.options.split(',')).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'allow_other', 'default_permissions']));
    expect(utabLine(mnt)).toContain('x-fusegate.backend=fuse2fs');
    expect(utabLine(mnt)).toContain('x-fusegate.rule=images-and-loop-devices');

    const saw = fakeSaw();
    expect(saw.errors).toEqual([]);
    expect(saw.argv).toEqual(['fuse2fs', loop, mnt, '-o', 'nosuid,nodev,ro']);
    expect(saw.hello_flags).toBe(3);
    expect(saw.fusedev_is_char).toBe(true);
    expect(String(saw.source_head).slice(0, 4)).toBe('53ef'); // the ext4 superblock magic, read via the passed fd
    expect(fs.statfsSync(mnt).bsize).toBe(4096); // answered by the fake's FUSE loop

    // The serving process (not the activator, whose command line names the script too).
    const servers = () => pidsWithArg(FAKE).filter((p) => p !== activator!.pid);
    expect(servers()).toHaveLength(1);
    unmountAll(mnt);
    expect(await waitFor(() => servers().length === 0, 5000)).toBe(true);
    expect(utabLine(mnt)).toBeUndefined();
  });

  const MISBEHAVIOURS: Array<[mode: string, timeoutS?: number]> = [
    ['wrong-mntp'],
    ['open-other'],
    ['extra-fd'],
    ['oversize'],
    ['out-of-order'],
    ['doit-twice'],
    ['die-before-byee'],
    ['hang', 2],
    ['hang-serving', 2],
  ];
  for (const [mode, timeoutS] of MISBEHAVIOURS) {
    it(`refuses a service that does '${mode}': exit 32, no mount, no fd leaked`, async () => {
      if (timeoutS) process.env.FUSEGATE_TIMEOUT = String(timeoutS);
      await serve(mode);
      const before = openFds();
      const t0 = Date.now();
      const code = await runHelper([loop, mnt], '/sbin/mount.fusegate');
      const took = Date.now() - t0;
      expect(code).toBe(32);
      expect(mountsAt(mnt)).toEqual([]);
      expect(utabLine(mnt)).toBeUndefined();
      expect(openFds()).toEqual(before);
      if (timeoutS) expect(took).toBeLessThan((timeoutS + 1.5) * 1000);
    }, 20_000);
  }

  // Issue 12 finding 5: utab fields umount.fusegate trusts are fusegate's alone.
  it("refuses a server's x-fusegate.unit= in MTAB (EPERM): exit 32, no mount", async () => {
    await serve('mtab-unit');
    const code = await runHelper([loop, mnt], '/sbin/mount.fusegate');
    expect(code).toBe(32);
    expect(fakeSaw().replies).toContainEqual(['MTAB', 1]);
    expect(mountsAt(mnt)).toEqual([]);
    expect(utabLine(mnt)).toBeUndefined();
  });

  it("a server's -n drops its own utab options, not fusegate's record", async () => {
    await serve('mtab-n');
    const code = await runHelper([loop, mnt], '/sbin/mount.fusegate');
    expect(code).toBe(0);
    const line = utabLine(mnt);
    expect(line).toMatch(/(OPTS=|,)helper=fusegate(,| |$)/);
    expect(line).toContain('x-fusegate.backend=fuse2fs');
    expect(line).toContain('x-fusegate.rule=images-and-loop-devices');
    expect(line).not.toContain('x-fake.mode');
  });

  it('answers an OPEN of a path not on the command line with EPERM', async () => {
    await serve('open-other');
    await runHelper([loop, mnt], '/sbin/mount.fusegate');
    expect(fakeSaw().open_other_error).toBe(1);
  });

  it('refuses fds from the service at the socket: its sendmsg fails EPERM (SO_PASSRIGHTS off)', async () => {
    await serve('extra-fd');
    expect(await runHelper([loop, mnt], '/sbin/mount.fusegate')).toBe(32);
    // Linux 6.16 has SO_PASSRIGHTS; older kernels leave the protocol-level refusal alone.
    const [major, minor] = os.release().split('.').map(Number);
    if (major! > 6 || (major === 6 && minor! >= 16)) expect(fakeSaw().extra_fd_error).toBe('EPERM');
  });

  it('answers a wrong mountpoint with EINVAL', async () => {
    await serve('wrong-mntp');
    await runHelper([loop, mnt], '/sbin/mount.fusegate');
    expect(fakeSaw().replies).toContainEqual(['MNTP', 22]);
  });

  it('falls back as the policy says when no backend socket exists (default: deny)', async () => {
    const before = openFds();
    const code = await runHelper([loop, mnt], '/sbin/mount.fusegate');
    expect(code).toBe(32);
    expect(mountsAt(mnt)).toEqual([]);
    expect(openFds()).toEqual(before);
  });
});
