/**
 * The compiled helper run as mount(8) runs it, on the kernel path and the
 * deny path, with real loop devices and real kernel mounts; exit codes and
 * the one line on stderr are what mount(8), udisks2 and administrators see.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { attachLoop, realDevicesOrFailInCI, makeImage, releaseAll, tempDir } from '../support/devices';
import { mountsAt, unmountAll, utabLine, waitFor } from '../support/mounts';
import { stageForUnprivileged } from '../support/unprivileged';

const canRun = realDevicesOrFailInCI('helper tests');

const HELPER = path.resolve(__dirname, '../../dist/helper/mount.fusegate.js');

describe.skipIf(!canRun)('mount.fusegate on the kernel and deny paths', () => {
  let dir: string;
  let img: string;
  let loop: string;
  let mnt: string;
  let fstab: string;
  let sockets: string;
  const policies: Record<string, string> = {};

  beforeAll(() => {
    if (!fs.existsSync(HELPER)) throw new Error(`${HELPER} missing: run 'npm run build' (npm test does)`);
    dir = tempDir();
    img = makeImage(dir, 'ext4', 16, 'KERNELFS');
    const loopImg = makeImage(fs.mkdtempSync(path.join(dir, 'l')), 'ext4', 16, 'LOOPFS');
    loop = attachLoop(loopImg);
    mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    fstab = path.join(dir, 'fstab');
    sockets = path.join(dir, 'sockets');
    fs.mkdirSync(sockets);
    policies.default = path.resolve(__dirname, '../../policy/default-policy.yaml');
    policies.imagesKernel = path.join(dir, 'images-kernel.yaml');
    fs.writeFileSync(
      policies.imagesKernel,
      `version: 1
rules:
  - name: trusted-images
    match: { kind: image, type: [ext4] }
    action: kernel
    force_options: [nosuid, nodev, noexec]
`,
    );
    policies.deny = path.join(dir, 'deny.yaml');
    fs.writeFileSync(
      policies.deny,
      `version: 1
rules:
  - name: no-loop-devices
    match: { loop: true }
    action: deny
    reason: loop devices are not allowed on this machine
`,
    );
    policies.badOption = path.join(dir, 'bad-option.yaml');
    fs.writeFileSync(
      policies.badOption,
      `version: 1
rules:
  - name: trusted-images
    match: { kind: image, type: [ext4] }
    action: kernel
    force_options: [nosuid, errors=bogus]
`,
    );
    policies.broken = path.join(dir, 'broken.yaml');
    fs.writeFileSync(policies.broken, 'version: 1\nrules:\n  - name: x\n    action: teleport\n');
  });

  afterEach(() => unmountAll(mnt));
  afterAll(releaseAll);

  /** Loop devices backed by `file` now (losetup -j). */
  function loopsBacking(file: string): string[] {
    const out = spawnSync('losetup', ['-j', file], { encoding: 'utf8' }).stdout;
    return out.split('\n').filter((l) => l !== '').map((l) => l.split(':')[0]!);
  }

  function helper(args: string[], opts: { policy?: string; fstabText?: string; argv0?: string; uid?: number } = {}) {
    fs.writeFileSync(fstab, opts.fstabText ?? '');
    const env = {
      ...process.env,
      FUSEGATE_POLICY: policies[opts.policy ?? 'default'],
      FUSEGATE_FSTAB: fstab,
      FUSEGATE_SOCKET_DIR: sockets,
    };
    // An unprivileged caller runs a copy it can read even when the checkout is private.
    let script = opts.uid === undefined ? HELPER : stageForUnprivileged().helper;
    if (opts.argv0) {
      script = path.join(dir, opts.argv0);
      fs.rmSync(script, { force: true });
      fs.symlinkSync(HELPER, script);
    }
    const cmd = opts.uid === undefined ? [process.execPath, script, ...args] : ['setpriv', `--reuid=${opts.uid}`, `--regid=${opts.uid}`, '--clear-groups', process.execPath, script, ...args];
    const r = spawnSync(cmd[0]!, cmd.slice(1), { env, encoding: 'utf8', timeout: 30_000 });
    return { code: r.status, stderr: r.stderr, stdout: r.stdout };
  }

  it('mounts a trusted image file with the kernel driver and the policy options, and umount removes it', async () => {
    const r = helper([img, mnt], { policy: 'imagesKernel' });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const [m] = mountsAt(mnt);
    expect(m!.fsType).toBe('ext4');
    expect(m!.source).toMatch(/^\/dev\/loop\d+$/); // mount(8) set up the loop device
    expect(m!.options.split(',')).toEqual(expect.arrayContaining(['nosuid', 'nodev', 'noexec']));
    expect(utabLine(mnt)).toContain('x-fusegate.rule=trusted-images');
    fs.writeFileSync(path.join(mnt, 'written'), 'kept');
    expect(spawnSync('umount', [mnt]).status).toBe(0);
    expect(mountsAt(mnt)).toEqual([]);
    expect(utabLine(mnt)).toBeUndefined();
    // the loop device made for the image goes with the mount (autoclear, done by the kernel's workqueue)
    expect(await waitFor(() => loopsBacking(img).length === 0, 2000)).toBe(true);
    // written through the kernel driver, there after a second mount
    expect(helper([img, mnt], { policy: 'imagesKernel' }).code).toBe(0);
    expect(fs.readFileSync(path.join(mnt, 'written'), 'utf8')).toBe('kept');
  });

  it('when the kernel refuses the mount: exit 32, the kernel path\'s reason as mount(8) gives it, no mount and no loop device left', async () => {
    const r = helper([img, mnt], { policy: 'badOption' });
    expect(r.code).toBe(32);
    expect(r.stderr).toMatch(new RegExp(`mount.fusegate: ${mnt}: wrong fs type, bad option, bad superblock on /dev/loop\\d+`));
    expect(r.stderr).toContain("kernel driver, by rule 'trusted-images': the kernel mount failed (mount(8) exit code 32)");
    expect(mountsAt(mnt)).toEqual([]);
    expect(utabLine(mnt)).toBeUndefined();
    expect(await waitFor(() => loopsBacking(img).length === 0, 2000)).toBe(true);
  });

  it('sends a loop device of a root-only image that fstab names by path to the kernel under the default policy, probing with -t auto', () => {
    // (By LABEL= it would be sandboxed: test/integration/fstab-trust.test.ts.)
    const r = helper([loop, mnt, '-t', 'auto', '-o', 'noatime'], { fstabText: `${loop} ${mnt} ext4 defaults 0 2\n` });
    expect(r.code).toBe(0);
    const [m] = mountsAt(mnt);
    expect(m).toMatchObject({ fsType: 'ext4', source: loop });
    expect(m!.options.split(',')).toContain('noatime');
    expect(utabLine(mnt)).toContain('x-fusegate.rule=fstab-fixed-disks');
  });

  it('is found as mount.<type> and takes the probed type over the requested one', () => {
    const r = helper([loop, mnt, '-v'], { fstabText: `${loop} ${mnt} ext4 defaults 0 2\n`, argv0: 'mount.ext2' });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('holds ext4');
    expect(mountsAt(mnt)[0]!.fsType).toBe('ext4');
  });

  it('refuses what the policy denies: exit 32, the rule and reason on stderr, nothing mounted', () => {
    const r = helper([loop, mnt], { policy: 'deny' });
    expect(r.code).toBe(32);
    expect(r.stderr).toContain("refused by rule 'no-loop-devices': loop devices are not allowed on this machine");
    expect(r.stderr).toContain('fusegate policy explain');
    expect(mountsAt(mnt)).toEqual([]);
  });

  it('fails closed with a broken policy: not in fstab means refused', () => {
    const r = helper([loop, mnt], { policy: 'broken' });
    expect(r.code).toBe(32);
    expect(r.stderr).toMatch(/policy not loaded, failing closed/);
    expect(mountsAt(mnt)).toEqual([]);
  });

  it('fails closed with a broken policy: a loop device is refused even when fstab lists it', () => {
    const r = helper([loop, mnt], { policy: 'broken', fstabText: `${loop} ${mnt} ext4 defaults 0 2\n` });
    expect(r.code).toBe(32);
    expect(r.stderr).toMatch(/policy not loaded, failing closed/);
    expect(mountsAt(mnt)).toEqual([]);
  });

  // A zram device is a fixed, non-removable disk that is not a loop device.
  it.skipIf(!fs.existsSync('/sys/class/zram-control'))('fails closed with a broken policy but still mounts a fixed disk from fstab', () => {
    const id = fs.readFileSync('/sys/class/zram-control/hot_add', 'utf8').trim();
    const zram = `/dev/zram${id}`;
    try {
      fs.writeFileSync(`/sys/block/zram${id}/disksize`, String(16 << 20));
      expect(spawnSync('mkfs.ext4', ['-q', '-F', zram]).status).toBe(0);
      const r = helper([zram, mnt], { policy: 'broken', fstabText: `${zram} ${mnt} ext4 defaults 0 2\n` });
      expect(r.code, r.stderr).toBe(0);
      expect(mountsAt(mnt)[0]!.fsType).toBe('ext4');
    } finally {
      spawnSync('umount', [mnt]);
      fs.writeFileSync(`/sys/block/zram${id}/reset`, '1');
      fs.writeFileSync('/sys/class/zram-control/hot_remove', id);
    }
  });

  it('with -f decides and reports but mounts nothing', () => {
    const r = helper([img, mnt, '-f'], { policy: 'imagesKernel' });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("kernel driver, by rule 'trusted-images'");
    expect(mountsAt(mnt)).toEqual([]);
  });

  it('refuses a UDF loop device under the default policy, as mount.udf: no sandboxed driver', () => {
    const udfDir = fs.mkdtempSync(path.join(dir, 'udf'));
    const udfImg = path.join(udfDir, 'dvd.udf');
    fs.writeFileSync(udfImg, '');
    fs.truncateSync(udfImg, 8 * 1024 * 1024);
    spawnSync('mkudffs', ['--label=FG_DVD', '--media-type=hd', udfImg], { stdio: 'ignore' });
    const udf = attachLoop(udfImg);
    const r = helper([udf, mnt], { argv0: 'mount.udf' });
    expect(r.code).toBe(32);
    expect(r.stderr).toContain(`${udf} on ${mnt} (udf): refused by rule 'no-sandbox-for-removable': fusegate has no sandboxed driver for this filesystem`);
    expect(mountsAt(mnt)).toEqual([]);
  });

  it.each([
    ['iso9660', 'fuseiso', (f: string, src: string) => spawnSync('genisoimage', ['-quiet', '-J', '-R', '-o', f, src])],
    ['squashfs', 'squashfuse', (f: string, src: string) => spawnSync('mksquashfs', [src, f, '-quiet', '-noappend'])],
  ])('sends a %s image file to the sandboxed %s under the default policy, run as mount.<type>', (type, backend, make) => {
    // The backend counts as installed when its socket exists (a bound one will do for -f).
    const socket = path.join(sockets, backend);
    if (!fs.existsSync(socket)) {
      expect(spawnSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET).bind(sys.argv[1])', socket]).status).toBe(0);
    }
    const d = fs.mkdtempSync(path.join(dir, type));
    fs.mkdirSync(path.join(d, 'content'));
    fs.writeFileSync(path.join(d, 'content', 'x.txt'), 'x\n');
    const file = path.join(d, `image.${type}`);
    expect(make(file, path.join(d, 'content')).status).toBe(0);
    const r = helper([file, mnt, '-f'], { argv0: `mount.${type}` });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`(${type}): sandboxed ${backend}, by rule 'images-and-loop-devices', read-only`);
  });

  it('with -n leaves utab alone', () => {
    expect(helper([img, mnt, '-n'], { policy: 'imagesKernel' }).code).toBe(0);
    expect(mountsAt(mnt)).toHaveLength(1);
    expect(utabLine(mnt)).toBeUndefined();
  });

  it('refuses an unprivileged caller with exit 1 and says what to do', () => {
    const r = helper([img, mnt], { policy: 'imagesKernel', uid: 65534 });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('only root may mount through fusegate');
    // Ordinary users go through the broker (or udisks2), not through the helper.
    expect(r.stderr).toContain("mount it with 'fusegate mount SOURCE [DIR]'");
    expect(r.stderr).toContain('udisksctl');
    expect(mountsAt(mnt)).toEqual([]);
  });

  it('reports usage errors with exit 1, and a missing source with exit 32', () => {
    expect(helper([]).code).toBe(1);
    expect(helper([img, mnt, '--bogus']).code).toBe(1);
    const missing = helper([path.join(dir, 'nope.img'), mnt]);
    expect(missing.code).toBe(32);
    expect(missing.stderr).toContain('cannot open source');
  });

  it('prints man-page style help', () => {
    const r = helper(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Usage: mount.fusegate SOURCE DIR/);
    expect(r.stdout).toMatch(/Exit status/);
  });

  it('leaves the loop device mount.fusegate did not create alone after umount', async () => {
    expect(helper([loop, mnt], { fstabText: `${loop} ${mnt} ext4 defaults 0 2\n` }).code).toBe(0);
    expect(spawnSync('umount', [mnt]).status).toBe(0);
    expect(await waitFor(() => mountsAt(mnt).length === 0, 2000)).toBe(true);
    expect(fs.existsSync(`/sys/block/${path.basename(loop)}/loop/backing_file`)).toBe(true);
  });
});
