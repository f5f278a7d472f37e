/**
 * Issue "sandboxed service", on the host: for each real Debian FUSE server,
 * a filesystem image made in the test mounts through the helper → the
 * adapter (socket-activated by systemd-socket-activate, inside a fake
 * sandbox: no device nodes, nobody, no capabilities) → the unmodified
 * server; files written are read back after a remount; umount ends the
 * server. While mounted, the process serving the mount is the server
 * itself, holding only the fds it was passed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { findBackend } from '../../lib/backends';
import { childrenOf, startActivator, type Activator } from '../support/activator';
import { attachLoop, realDevicesOrFailInCI, makeImage, releaseAll, tempDir, type MkfsType } from '../support/devices';
import { mountsAt, unmountAll, waitFor } from '../support/mounts';
import { stageForUnprivileged } from '../support/unprivileged';

const canRun = realDevicesOrFailInCI('service tests');

const ROOT = path.resolve(__dirname, '../..');
const HELPER = path.join(ROOT, 'dist/helper/mount.fusegate.js');
const SANDBOX = path.join(ROOT, 'test/support/fake_sandbox.sh');

interface Case {
  type: MkfsType | 'squashfs' | 'iso9660';
  backend: string;
  /** attach to a loop device (block path) or mount the image file (OPEN path) */
  via: 'loop' | 'file';
  writable: boolean;
}

const CASES: Case[] = [
  { type: 'ext4', backend: 'fuse2fs', via: 'loop', writable: true },
  { type: 'vfat', backend: 'fusefat', via: 'file', writable: true },
  { type: 'exfat', backend: 'exfat-fuse', via: 'loop', writable: true },
  { type: 'ntfs', backend: 'ntfs-3g', via: 'file', writable: true },
  { type: 'squashfs', backend: 'squashfuse', via: 'loop', writable: false },
  { type: 'iso9660', backend: 'fuseiso', via: 'file', writable: false },
  { type: 'iso9660', backend: 'fuseiso', via: 'loop', writable: false },
];

/**
 * What the read-only images hold: Rock Ridge and Joliet names with letters
 * outside ASCII (fuseiso converts Joliet's UCS-2 to the charset it is told;
 * the unit has no locale), and a file larger than one FUSE read.
 */
const READ_ONLY_FILES: Array<[string, Buffer]> = [
  ['seed.txt', Buffer.from('made for a read-only backend\n')],
  ['Grüße aus Köln/日本語のファイル.txt', Buffer.from('ünïcødé inside, too: ✓\n')],
  ['big.bin', Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 251))],
];

describe.skipIf(!canRun)('helper → adapter → real FUSE server, per backend', () => {
  let dir: string;
  let sockets: string;
  let policy: string;
  let activator: Activator | undefined;
  /** the adapter runs as uid 65534: a copy it can read even when the checkout is private */
  let adapter: string;

  beforeAll(() => {
    if (!fs.existsSync(HELPER)) throw new Error(`${HELPER} missing: run 'npm run build'`);
    adapter = stageForUnprivileged().adapter;
    dir = tempDir();
    sockets = path.join(dir, 'sockets');
    fs.mkdirSync(sockets);
    // Opt in to writing through every backend, so the test can prove data survives a remount.
    policy = path.join(dir, 'policy.yaml');
    fs.writeFileSync(
      policy,
      `version: 1
defaults:
  action: deny
  reason: not a test image
  allow_unsafe_write: true
  force_options: [nosuid, nodev]
  backends: {ext4: [fuse2fs], vfat: [fusefat], exfat: [exfat-fuse], ntfs: [ntfs-3g], squashfs: [squashfuse], iso9660: [fuseiso]}
rules:
  - name: sandbox-test-images
    match: { has_backend: true }
    action: fuse
`,
    );
  });

  afterEach(async () => {
    await activator?.stop();
    activator = undefined;
  });
  afterAll(releaseAll);

  function helper(source: string, mnt: string) {
    const env = { ...process.env, FUSEGATE_POLICY: policy, FUSEGATE_SOCKET_DIR: sockets, FUSEGATE_FSTAB: '/dev/null' };
    return spawnSync(process.execPath, [HELPER, source, mnt], { env, encoding: 'utf8', timeout: 30_000 });
  }

  function image(c: Case, caseDir: string): string {
    if (c.type !== 'squashfs' && c.type !== 'iso9660') return makeImage(caseDir, c.type, c.type === 'ntfs' ? 32 : 16, 'FGTEST');
    const content = path.join(caseDir, 'content');
    for (const [rel, data] of READ_ONLY_FILES) {
      fs.mkdirSync(path.dirname(path.join(content, rel)), { recursive: true });
      fs.writeFileSync(path.join(content, rel), data);
    }
    const img = path.join(caseDir, `${c.type}.img`);
    if (c.type === 'squashfs') execFileSync('mksquashfs', [content, img, '-quiet', '-noappend'], { stdio: 'pipe' });
    // -J -R: Joliet and Rock Ridge, as distribution images have them.
    else execFileSync('genisoimage', ['-quiet', '-J', '-R', '-V', 'FGTEST', '-input-charset', 'utf-8', '-o', img, content], { stdio: 'pipe' });
    return img;
  }

  /** The one process serving the mount: the activator's child. */
  function serverPid(): number {
    const kids = childrenOf(activator!.pid);
    expect(kids).toHaveLength(1);
    return kids[0]!;
  }

  for (const c of CASES) {
    it(`${c.type} through ${c.backend} (${c.via === 'loop' ? 'block device' : 'image file'})`, async () => {
      const caseDir = fs.mkdtempSync(path.join(dir, `${c.type}-`));
      const img = image(c, caseDir);
      const source = c.via === 'loop' ? attachLoop(img) : img;
      const mnt = path.join(caseDir, 'mnt');
      fs.mkdirSync(mnt);
      activator = await startActivator(path.join(sockets, c.backend), [
        SANDBOX,
        process.execPath,
        '--jitless',
        '--no-expose-wasm',
        adapter,
        c.backend,
      ]);

      try {
        const first = helper(source, mnt);
        expect(first.stderr).toBe('');
        expect(first.status).toBe(0);
        // Block devices are mounted as fuseblk (the kernel claims the device
        // and udisks2 sees the mount as the device's); image files as fuse.
        expect(mountsAt(mnt)[0]!.fsType).toBe(`${c.via === 'loop' ? 'fuseblk' : 'fuse'}.${c.backend}`);

        // The mount is served by the FUSE server itself: the adapter exec'd into it.
        const pid = serverPid();
        const exe = fs.realpathSync(`/proc/${pid}/exe`);
        expect(exe).toBe(fs.realpathSync(findBackend(c.backend)!.binary));
        const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
        expect(status).toMatch(/^Uid:\s+65534\s/m);
        expect(status).toMatch(/^CapEff:\s+0+$/m);
        expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
        // It holds /dev/fuse and the source only as passed fds, and sees no device nodes.
        const targets = fs.readdirSync(`/proc/${pid}/fd`).map((fd) => fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
        const devices = [...new Set(targets.filter((t) => t.startsWith('/dev/') && t !== '/dev/null'))].sort();
        expect(devices).toEqual([...(c.via === 'loop' ? [source] : []), '/dev/fuse'].sort());
        if (c.via === 'file') expect(targets).toContain(img);
        const visibleDev = fs.readdirSync(`/proc/${pid}/root/dev`).sort();
        expect(visibleDev).toEqual(['fd', 'full', 'null', 'random', 'urandom', 'zero']);

        if (c.writable) {
          fs.mkdirSync(path.join(mnt, 'dir'));
          fs.writeFileSync(path.join(mnt, 'dir', 'written.txt'), `written through ${c.backend}\n`);
        } else {
          for (const [rel, data] of READ_ONLY_FILES) expect(fs.readFileSync(path.join(mnt, rel)).equals(data), rel).toBe(true);
          expect(fs.readdirSync(mnt).sort()).toEqual(['Grüße aus Köln', 'big.bin', 'seed.txt']);
          expect(() => fs.writeFileSync(path.join(mnt, 'x'), 'x')).toThrow(/EROFS|EACCES|EPERM/);
        }

        // umount ends the server.
        unmountAll(mnt);
        expect(await waitFor(() => childrenOf(activator!.pid).length === 0, 5000)).toBe(true);

        // A second mount sees what the first wrote.
        const second = helper(source, mnt);
        expect(second.status).toBe(0);
        if (c.writable) expect(fs.readFileSync(path.join(mnt, 'dir', 'written.txt'), 'utf8')).toBe(`written through ${c.backend}\n`);
        unmountAll(mnt);
        expect(await waitFor(() => childrenOf(activator!.pid).length === 0, 5000)).toBe(true);
      } finally {
        unmountAll(mnt);
      }
    }, 60_000);
  }
});
