/**
 * Issue 12 finding 4, reproduced: SOURCE or DIR is a symlink the caller
 * controls, swapped for another target after the helper pinned and checked
 * it, right before the mount (runHelper's beforeMount seam, in-process). The
 * mount must use what was pinned: the kernel path mounts onto the pinned
 * directory and the pinned device, and a fuseblk mount claims the pinned
 * device, not the one the symlink names by the time the kernel is asked.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runHelper } from '../../helper/main';
import { startActivator, type Activator } from '../support/activator';
import { attachLoop, makeImage, realDevicesOrFailInCI, releaseAll, tempDir } from '../support/devices';
import { mountsAt, unmountAll, utabLine, waitFor } from '../support/mounts';

const canRun = realDevicesOrFailInCI('pin tests');

const FAKE = path.resolve(__dirname, '../support/fake_service.py');

describe.skipIf(!canRun)('pins all the way: a path swapped after pinning changes nothing', () => {
  let dir: string;
  let loopA: string;
  let loopB: string;
  let real: string;
  let other: string;
  let dirLink: string;
  let srcLink: string;
  let kernelPolicy: string;
  let activator: Activator | undefined;
  const savedEnv = { ...process.env };

  beforeAll(() => {
    dir = tempDir();
    loopA = attachLoop(makeImage(fs.mkdtempSync(path.join(dir, 'a-')), 'ext4', 16, 'PINNED'));
    loopB = attachLoop(makeImage(fs.mkdtempSync(path.join(dir, 'b-')), 'ext4', 16, 'SWAPPED'));
    real = path.join(dir, 'real');
    other = path.join(dir, 'other');
    fs.mkdirSync(real);
    fs.mkdirSync(other);
    dirLink = path.join(dir, 'dir-link');
    srcLink = path.join(dir, 'src-link');
    kernelPolicy = path.join(dir, 'kernel.yaml');
    fs.writeFileSync(kernelPolicy, `version: 1
rules:
  - name: loop-to-kernel
    match: { loop: true }
    action: kernel
`);
    fs.mkdirSync(path.join(dir, 'sockets'));
    process.env.FUSEGATE_SOCKET_DIR = path.join(dir, 'sockets');
    process.env.FUSEGATE_FSTAB = path.join(dir, 'fstab');
    fs.writeFileSync(process.env.FUSEGATE_FSTAB, '');
  });

  afterEach(async () => {
    for (const d of [real, other]) unmountAll(d);
    // A lazy unmount releases the device a moment later; the next test needs both free.
    await waitFor(() => !claimed(loopA) && !claimed(loopB), 5000);
    await activator?.stop();
    activator = undefined;
    for (const l of [dirLink, srcLink]) fs.rmSync(l, { force: true });
  });

  afterAll(() => {
    process.env = savedEnv;
    releaseAll();
  });

  function link(at: string, to: string): void {
    fs.rmSync(at, { force: true });
    fs.symlinkSync(to, at);
  }

  function claimed(dev: string): boolean {
    try {
      fs.closeSync(fs.openSync(dev, fs.constants.O_RDONLY | fs.constants.O_EXCL));
      return false;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EBUSY') return true;
      throw err;
    }
  }

  it('kernel path: DIR swapped after pinning, the mount still lands on the pinned directory', async () => {
    process.env.FUSEGATE_POLICY = kernelPolicy;
    link(dirLink, real);
    const code = await runHelper([loopA, dirLink], '/sbin/mount.fusegate', { beforeMount: () => link(dirLink, other) });
    expect(code).toBe(0);
    expect(mountsAt(other)).toEqual([]);
    const [m] = mountsAt(real);
    expect(m).toMatchObject({ fsType: 'ext4', source: loopA });
    // utab names the real mountpoint, so umount(8) finds the record and removes it.
    expect(utabLine(real)).toContain('x-fusegate.rule=loop-to-kernel');
  });

  it('kernel path: SOURCE swapped after pinning, the pinned device is mounted', async () => {
    process.env.FUSEGATE_POLICY = kernelPolicy;
    link(srcLink, loopA);
    const code = await runHelper([srcLink, real], '/sbin/mount.fusegate', { beforeMount: () => link(srcLink, loopB) });
    expect(code).toBe(0);
    const [m] = mountsAt(real);
    expect(m?.source).toBe(loopA);
    expect(claimed(loopB)).toBe(false);
  });

  it('kernel path: an image SOURCE replaced before the mount is refused, and nothing stays mounted', async () => {
    const imgA = path.join(dir, 'imgA.img');
    const imgB = path.join(dir, 'imgB.img');
    for (const [img, label] of [[imgA, 'IMGA'], [imgB, 'IMGB']] as const) {
      fs.copyFileSync(makeImage(fs.mkdtempSync(path.join(dir, 'i-')), 'ext4', 16, label), img);
    }
    process.env.FUSEGATE_POLICY = path.join(dir, 'images-kernel.yaml');
    fs.writeFileSync(process.env.FUSEGATE_POLICY, 'version: 1\nrules:\n  - name: images-to-kernel\n    match: { kind: image }\n    action: kernel\n');
    // The file itself is replaced (renamed over): the pinned inode is no longer at its path.
    const swap = () => {
      fs.renameSync(imgA, `${imgA}.old`);
      fs.renameSync(imgB, imgA);
    };
    const code = await runHelper([imgA, real], '/sbin/mount.fusegate', { beforeMount: swap });
    // libmount sets up the loop device by path: the swap is caught after the fact and undone.
    expect(code).toBe(32);
    expect(mountsAt(real)).toEqual([]);
    expect(await runHelper([imgA, real], '/sbin/mount.fusegate')).toBe(0);
    expect(mountsAt(real)).toHaveLength(1);
  });

  it('fuseblk: SOURCE swapped after pinning, the kernel claims the pinned device, not the swapped one', async () => {
    process.env.FUSEGATE_POLICY = path.resolve(__dirname, '../../policy/default-policy.yaml');
    activator = await startActivator(path.join(dir, 'sockets', 'fuse2fs'), ['python3', FAKE], { FAKE_MODE: 'fuseblk' });
    link(srcLink, loopA);
    const code = await runHelper([srcLink, real], '/sbin/mount.fusegate', { beforeMount: () => link(srcLink, loopB) });
    expect(code).toBe(0);
    const [m] = mountsAt(real);
    expect(m).toMatchObject({ fsType: 'fuseblk.fuse2fs', source: loopA });
    expect(claimed(loopA)).toBe(true);
    expect(claimed(loopB)).toBe(false);
  });
});
