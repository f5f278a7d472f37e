/**
 * The addon against the real kernel: fds of three kinds (a loop block device,
 * /dev/fuse, a memfd) cross a real SOCK_SEQPACKET socketpair and arrive as the
 * same open files with O_CLOEXEC set; a message carrying two fds is refused,
 * not cut to one; peer credentials name the real peer process.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as native from '../../lib/native';
import { Channel, ProtocolError, encode } from '../../lib/protocol';
import * as testNative from '../support/native-extras';
import { attachLoop, realDevicesOrFailInCI, makeImage, openFds, releaseAll, tempDir } from '../support/devices';

const canRun = realDevicesOrFailInCI('the addon tests');

function sameFile(a: number, b: number): boolean {
  const sa = fs.fstatSync(a);
  const sb = fs.fstatSync(b);
  return sa.dev === sb.dev && sa.ino === sb.ino && sa.rdev === sb.rdev;
}

/** Runs python3 with the socket fd as its fd 3; it sends what `script` says. */
function pythonPeer(fd: number, script: string, extraFds: number[] = []): Promise<number> {
  const child = spawn('python3', ['-c', script], { stdio: ['ignore', 'inherit', 'inherit', fd, ...extraFds] });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => resolve(code ?? -1));
  });
}

describe.skipIf(!canRun)('native addon with real fds', () => {
  let loopDev: string;
  let dir: string;

  beforeAll(() => {
    dir = tempDir();
    loopDev = attachLoop(makeImage(dir, 'ext4', 8));
  });
  afterAll(releaseAll);

  it('passes a block device, /dev/fuse and a memfd, each arriving O_CLOEXEC', async () => {
    const before = openFds();
    const [a, b] = testNative.socketpairSeqpacket();
    const sources = [
      fs.openSync(loopDev, 'r'),
      fs.openSync('/dev/fuse', 'r+'),
      native.memfdCreate('fusegate-test'),
    ];
    const kinds: string[] = [];
    for (const src of sources) {
      await native.sendMessage(a, encode({ kind: 'FILE', error: 0, path: 'x' }), src);
      const got = await native.receiveMessage(b, 65537, 5000);
      expect(got.fds).toHaveLength(1);
      const fd = got.fds[0]!;
      expect(fd).not.toBe(src);
      expect(sameFile(fd, src)).toBe(true);
      expect(testNative.isCloexec(fd)).toBe(true);
      const st = fs.fstatSync(fd);
      kinds.push(st.isBlockDevice() ? 'block' : st.isCharacterDevice() ? 'char' : st.isFile() ? 'memfd' : 'other');
      fs.closeSync(fd);
    }
    expect(kinds).toEqual(['block', 'char', 'memfd']);
    for (const fd of [...sources, a, b]) fs.closeSync(fd);
    expect(openFds()).toEqual(before);
  });

  it('reads and writes the memfd it received (argv travels this way)', async () => {
    const [a, b] = testNative.socketpairSeqpacket();
    const mfd = native.memfdCreate('argv');
    fs.writeSync(mfd, 'hello', 0, 'utf8', 0);
    await native.sendMessage(a, Buffer.from('x'), mfd);
    const got = await native.receiveMessage(b, 16, 5000);
    const buf = Buffer.alloc(5);
    fs.readSync(got.fds[0]!, buf, 0, 5, 0);
    expect(buf.toString()).toBe('hello');
    for (const fd of [mfd, got.fds[0]!, a, b]) fs.closeSync(fd);
  });

  it('refuses a message carrying two fds and closes both', async () => {
    const [a, b] = testNative.socketpairSeqpacket();
    const before = openFds();
    const code = await pythonPeer(
      a,
      `import socket, os
s = socket.socket(fileno=3)
f1 = os.open('/dev/null', os.O_RDONLY); f2 = os.open('/dev/null', os.O_RDONLY)
socket.send_fds(s, [bytes.fromhex('46494c450000000078' + '00')], [f1, f2])`,
    );
    expect(code).toBe(0);
    const channel = new Channel(b, 'server');
    const err = await channel.receive(5000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).rule).toBe('too-many-fds');
    expect(openFds()).toEqual(before);
    fs.closeSync(a);
    fs.closeSync(b);
  });

  it('sees MSG_CTRUNC when more fds arrive than it has room for, and leaks none', async () => {
    const [a, b] = testNative.socketpairSeqpacket();
    const before = openFds();
    const code = await pythonPeer(
      a,
      `import socket, os
s = socket.socket(fileno=3)
fds = [os.open('/dev/null', os.O_RDONLY) for _ in range(20)]
socket.send_fds(s, [b'FILE'], fds)`,
    );
    expect(code).toBe(0);
    const raw = await native.receiveMessage(b, 65537, 5000);
    expect(raw.controlTruncated).toBe(true);
    for (const fd of raw.fds) fs.closeSync(fd);
    expect(openFds()).toEqual(before);
    fs.closeSync(a);
    fs.closeSync(b);
  });

  it('reports MSG_TRUNC for a message larger than the buffer', async () => {
    const [a, b] = testNative.socketpairSeqpacket();
    await native.sendMessage(a, Buffer.alloc(100, 1));
    const raw = await native.receiveMessage(b, 10, 5000);
    expect(raw.truncated).toBe(true);
    expect(raw.data).toHaveLength(10);
    fs.closeSync(a);
    fs.closeSync(b);
  });

  it('times out a receive with ETIMEDOUT and reports a closed peer as 0 bytes', async () => {
    const [a, b] = testNative.socketpairSeqpacket();
    const t0 = Date.now();
    const err = await native.receiveMessage(b, 16, 200).catch((e: unknown) => e);
    expect((err as native.SyscallError).code).toBe('ETIMEDOUT');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    fs.closeSync(a);
    const eof = await native.receiveMessage(b, 16, 1000);
    expect(eof.data).toHaveLength(0);
    fs.closeSync(b);
  });

  it('names the connecting process in SO_PEERCRED', async () => {
    const sockPath = path.join(dir, 'listen.sock');
    const listener = native.socketSeqpacket();
    testNative.bind(listener, sockPath);
    testNative.listen(listener, 4);
    const child = spawn('python3', ['-c', `import socket,time
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(${JSON.stringify(sockPath)}); time.sleep(1)`], { stdio: 'ignore' });
    const conn = await testNative.accept(listener, 5000);
    const cred = testNative.peerCredentials(conn);
    expect(cred.pid).toBe(child.pid);
    expect(cred.uid).toBe(process.getuid!());
    expect(testNative.isCloexec(conn)).toBe(true);
    await new Promise((r) => child.on('exit', r));
    fs.closeSync(conn);
    fs.closeSync(listener);
  });

  it('opens with the fs ids it is given, not the process ones', () => {
    const file = path.join(dir, 'root-only');
    fs.writeFileSync(file, 'secret', { mode: 0o600 });
    const err = (() => {
      try {
        native.openAs(file, fs.constants.O_RDONLY, 0, { uid: 65534, gid: 65534 });
        return undefined;
      } catch (e) {
        return e as native.SyscallError;
      }
    })();
    expect(err?.code).toBe('EACCES');
    const fd = native.openAs(file, fs.constants.O_RDONLY, 0, { uid: 0, gid: 0 });
    expect(testNative.isCloexec(fd)).toBe(true);
    fs.closeSync(fd);
    // and the process is back to root's ids afterwards
    expect(testNative.setfsuid(0)).toBe(0);
  });

  it('refuses to send an empty message', async () => {
    const [a, b] = testNative.socketpairSeqpacket();
    const err = await native.sendMessage(a, Buffer.alloc(0)).catch((e: unknown) => e);
    expect((err as native.SyscallError).code).toBe('EINVAL');
    fs.closeSync(a);
    fs.closeSync(b);
  });
});
