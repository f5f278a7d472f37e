/**
 * Issue 12 finding 6: a FUSE server holding a read-only fd to the user's loop
 * device could detach it (LOOP_CLR_FD), change it (LOOP_SET_STATUS64) or
 * reread its partitions (BLKRRPART). The adapter's launch path (execServer,
 * the function the adapter ends in) now installs a seccomp filter before
 * execve; a test "server" exec'd through it tries each ioctl on its source fd
 * (fd 4). It runs as root, so without the filter each call reaches the
 * kernel and does what it says (the loop device would be detached).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attachLoop, realDevicesOrFailInCI, makeImage, releaseAll, tempDir } from '../support/devices';

const canRun = realDevicesOrFailInCI('sandbox ioctl filter tests');

const ROOT = path.resolve(__dirname, '../..');
const LAUNCH = path.join(ROOT, 'dist/sandbox/launch.js');
const ADDON = path.join(ROOT, 'build/Release/fusegate_native.node');

/** The test server: each ioctl on fd 4, in this order, and its errno (0: it worked). */
const SERVER = String.raw`
import errno, fcntl, json, os, struct
calls = [
    ('BLKGETSIZE64', 0x80081272, bytearray(8)),
    ('BLKSSZGET', 0x1268, bytearray(4)),
    ('BLKROGET', 0x125e, bytearray(4)),
    ('BLKDISCARD', 0x1277, bytearray(struct.pack('QQ', 0, 4096))),
    ('BLKRRPART', 0x125f, 0),
    ('BLKFLSBUF', 0x1261, 0),
    ('LOOP_SET_STATUS64', 0x4c04, bytearray(232)),
    ('LOOP_CLR_FD', 0x4c01, 0),
]
out = {}
for name, req, arg in calls:
    try:
        fcntl.ioctl(4, req, arg)
        out[name] = 0
    except OSError as e:
        out[name] = errno.errorcode[e.errno]
# /dev/fuse ioctls are outside the filtered ranges: FUSE_DEV_IOC_CLONE reaches the driver.
try:
    fcntl.ioctl(3, 0x8004e500, bytearray(4))
except OSError as e:
    out['FUSE_DEV_IOC_CLONE'] = errno.errorcode[e.errno]
print(json.dumps(out))
`;

/** Runs SERVER through execServer with `device` as its source fd; what each ioctl returned. */
function throughLaunch(device: string, readOnly: boolean): Record<string, string | number> {
  const runner = `
    const fs = require('node:fs');
    const { execServer } = require(${JSON.stringify(LAUNCH)});
    // socketpairs are a test-only call of the addon (test/support/native-extras.ts).
    const [sock] = require(${JSON.stringify(ADDON)}).socketpairSeqpacket();
    const handoff = {
      fuseFd: fs.openSync('/dev/fuse', 'r+'),
      sourceFd: fs.openSync(${JSON.stringify(device)}, ${readOnly ? "'r'" : "'r+'"}),
      readOnly: ${readOnly},
    };
    execServer({ file: '/usr/bin/python3', argv: ['python3', '-c', process.env.SERVER], env: [], mountpointDir: null }, handoff, sock);
  `;
  const r = spawnSync(process.execPath, ['-e', runner], { env: { ...process.env, SERVER }, encoding: 'utf8', timeout: 20_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout) as Record<string, string | number>;
}

describe.skipIf(!canRun)('the sandboxed server may query its device, not detach or change it', () => {
  let dir: string;
  let loop: string;

  beforeAll(() => {
    if (!fs.existsSync(LAUNCH)) throw new Error(`${LAUNCH} missing: run 'npm run build'`);
    dir = tempDir();
    loop = attachLoop(makeImage(dir, 'ext4', 8));
  });
  afterAll(releaseAll);

  const backingFile = () => fs.readFileSync(`/sys/class/block/${path.basename(loop)}/loop/backing_file`, 'utf8').trim();

  it('read-only: size queries work; LOOP_*, BLKRRPART, BLKFLSBUF and BLKDISCARD fail EPERM; the loop device stays', () => {
    const before = backingFile();
    const r = throughLaunch(loop, true);
    expect(r).toEqual({
      BLKGETSIZE64: 0,
      BLKSSZGET: 0,
      BLKROGET: 0,
      BLKDISCARD: 'EPERM',
      BLKRRPART: 'EPERM',
      BLKFLSBUF: 'EPERM',
      LOOP_SET_STATUS64: 'EPERM',
      LOOP_CLR_FD: 'EPERM',
      FUSE_DEV_IOC_CLONE: 'EINVAL', // the driver's own answer for an fd of no session
    });
    expect(backingFile()).toBe(before);
  });

  it('writable: BLKDISCARD reaches the device; the rest stays refused', () => {
    const r = throughLaunch(loop, false);
    expect(r.BLKDISCARD).toBe(0);
    expect(r.BLKGETSIZE64).toBe(0);
    expect([r.BLKRRPART, r.LOOP_SET_STATUS64, r.LOOP_CLR_FD]).toEqual(['EPERM', 'EPERM', 'EPERM']);
    expect(fs.existsSync(`/sys/class/block/${path.basename(loop)}/loop/backing_file`)).toBe(true);
  });
});
