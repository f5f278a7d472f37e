/**
 * The small shared pieces of lib/: the socket directory (and what the build
 * decided for it), /proc/filesystems, the root check, the errno table, and
 * writing output with write(2).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { kernelListsFilesystem } from '../../lib/availability';
import { backendOfType, findBackend, socketPath } from '../../lib/backends';
import { ERRNO } from '../../lib/errno';
import { FusegateError } from '../../lib/errors';
import { isRoot, requireRoot } from '../../lib/root';
import { BUILT_SOCKET_DIR, socketDir } from '../../lib/socket-dir';

const ROOT = path.resolve(__dirname, '../..');

describe('socket directory', () => {
  it("is libfuse's default in the source, FUSEGATE_SOCKET_DIR overriding it", () => {
    expect(BUILT_SOCKET_DIR).toBe('/run/filesystems');
    expect(socketDir({})).toBe('/run/filesystems');
    expect(socketDir({ FUSEGATE_SOCKET_DIR: '/tmp/s' })).toBe('/tmp/s');
    const saved = process.env.FUSEGATE_SOCKET_DIR;
    delete process.env.FUSEGATE_SOCKET_DIR;
    try {
      expect(socketPath(findBackend('fusefat')!, 'vfat')).toBe('/run/filesystems/fusefat');
      expect(socketPath(findBackend('fuse4fs')!, 'ext4')).toBe('/run/filesystems/ext4');
    } finally {
      if (saved !== undefined) process.env.FUSEGATE_SOCKET_DIR = saved;
    }
  });

  it("is what the build took from fuse3.pc's service_socket_dir, else the default, in dist and the bundles", () => {
    const built = path.join(ROOT, 'dist', 'lib', 'socket-dir.js');
    if (!fs.existsSync(built)) return; // not built: npm test builds first
    const pc = spawnSync('pkg-config', ['--variable=service_socket_dir', 'fuse3'], { encoding: 'utf8' });
    const expected = (pc.status === 0 ? pc.stdout.trim() : '') || '/run/filesystems';
    expect(fs.readFileSync(built, 'utf8')).toContain(`exports.BUILT_SOCKET_DIR = "${expected}";`);
    expect(fs.readFileSync(path.join(ROOT, 'dist', 'helper', 'mount.fusegate.bundle.js'), 'utf8')).toMatch(new RegExp(`BUILT_SOCKET_DIR\\d* = "${expected}";`));
  });
});

describe('/proc/filesystems', () => {
  it('lists a type by its last tab-separated field; a missing file lists nothing', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-procfs-'));
    const file = path.join(dir, 'filesystems');
    fs.writeFileSync(file, 'nodev\tsysfs\nnodev\tfuse\n\text4\n\tfuseblk\n');
    try {
      expect(kernelListsFilesystem('fuse', file)).toBe(true);
      expect(kernelListsFilesystem('ext4', file)).toBe(true);
      expect(kernelListsFilesystem('vfat', file)).toBe(false);
      expect(kernelListsFilesystem('fuse', path.join(dir, 'none'))).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('small shared pieces', () => {
  it('requireRoot needs real and effective uid 0, and says what to do', () => {
    expect(isRoot({ uid: 0, euid: 0 })).toBe(true);
    expect(isRoot({ uid: 1000, euid: 0 })).toBe(false);
    expect(isRoot({ uid: 0, euid: 1000 })).toBe(false);
    expect(() => requireRoot('x needs root', 'run it as root', { uid: 0, euid: 0 })).not.toThrow();
    let err: unknown;
    try {
      requireRoot('x needs root', 'run it as root', { uid: 1000, euid: 1000 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FusegateError);
    expect(err).toMatchObject({ message: 'x needs root', hint: 'run it as root', exitCode: 1 });
  });

  it('ERRNO has ENOTBLK, which os.constants.errno lacks', () => {
    expect(ERRNO.ENOTBLK).toBe(15);
    expect(ERRNO.EPERM).toBe(os.constants.errno.EPERM);
  });

  it('backendOfType reads fuse.<backend> and fuseblk.<backend> of known backends only', () => {
    expect(backendOfType('fuse.fuse2fs')).toBe('fuse2fs');
    expect(backendOfType('fuseblk.ntfs-3g')).toBe('ntfs-3g');
    expect(backendOfType('fuse.sshfs')).toBeNull();
    expect(backendOfType('ext4')).toBeNull();
  });

  it('writeOut writes everything, also through a pipe larger than its buffer', () => {
    // a child writes 1 MiB with writeOut into a pipe the parent reads: nothing is lost
    const built = path.join(ROOT, 'dist', 'lib', 'output.js');
    if (!fs.existsSync(built)) return; // not built: npm test builds first
    const script = `require(${JSON.stringify(built)}).writeOut(1, 'x'.repeat(1 << 20) + 'END')`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', maxBuffer: 4 << 20 });
    expect(r.status).toBe(0);
    expect(r.stdout.length).toBe((1 << 20) + 3);
    expect(r.stdout.endsWith('END')).toBe(true);
  });
});
