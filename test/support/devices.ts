/**
 * Real block devices for tests: image files made with the real mkfs tools and
 * attached to real loop devices. Everything made here is tracked and released
 * by `releaseAll`, which every test file calls in afterAll.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const attached: string[] = [];
const tempDirs: string[] = [];

/** A fresh directory (mode 0700) under `parent`, removed by releaseAll(). */
export function tempDir(prefix = 'fusegate-test-', parent = os.tmpdir()): string {
  const dir = fs.mkdtempSync(path.join(parent, prefix));
  tempDirs.push(dir);
  return dir;
}

export type MkfsType = 'ext2' | 'ext4' | 'vfat' | 'exfat' | 'ntfs';

/** Makes a filesystem image of `sizeMiB` with the distribution's mkfs. */
export function makeImage(dir: string, type: MkfsType, sizeMiB = 16, label = 'TESTFS'): string {
  const file = path.join(dir, `${type}.img`);
  fs.writeFileSync(file, '');
  fs.truncateSync(file, sizeMiB * 1024 * 1024);
  const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: 'pipe' });
  switch (type) {
    case 'ext2':
    case 'ext4':
      run(`mkfs.${type}`, ['-q', '-F', '-L', label, file]);
      break;
    case 'vfat':
      run('mkfs.vfat', ['-n', label, file]);
      break;
    case 'exfat':
      run('mkfs.exfat', ['-L', label, file]);
      break;
    case 'ntfs':
      run('mkfs.ntfs', ['-q', '-F', '-f', '-L', label, file]);
      break;
  }
  return file;
}

/** Attaches `file` to a free loop device and returns its path. */
export function attachLoop(file: string, readOnly = false): string {
  const args = ['--find', '--show', ...(readOnly ? ['--read-only'] : []), file];
  const dev = execFileSync('losetup', args, { encoding: 'utf8' }).trim();
  attached.push(dev);
  return dev;
}

export function detachLoop(dev: string): void {
  try {
    execFileSync('losetup', ['-d', dev], { stdio: 'pipe' });
  } catch {
    // already detached
  }
  const i = attached.indexOf(dev);
  if (i >= 0) attached.splice(i, 1);
}

export function releaseAll(): void {
  for (const dev of [...attached]) detachLoop(dev);
  for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

/** The fds this process has open right now, to prove a test leaked none. */
export function openFds(): number[] {
  return fs.readdirSync('/proc/self/fd').map(Number).sort((a, b) => a - b);
}

/** Whether this machine can run tests that need root, loop devices and /dev/fuse. */
export function hasRealDevices(): boolean {
  return process.getuid?.() === 0 && fs.existsSync('/dev/fuse') && fs.existsSync('/dev/loop-control');
}

/**
 * For describe.skipIf(!…): true when the real devices are here. A machine
 * without them may skip, but CI (CI=true or FUSEGATE_REQUIRE_E2E=1) fails
 * instead, so a green CI run always means these tests ran.
 */
export function realDevicesOrFailInCI(what: string): boolean {
  if (hasRealDevices()) return true;
  if (process.env.CI === 'true' || process.env.FUSEGATE_REQUIRE_E2E === '1') {
    throw new Error(`${what} need root, /dev/fuse and loop devices, and CI requires them`);
  }
  return false;
}
