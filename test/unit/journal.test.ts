/**
 * Journal entries as journald receives them: a real unix datagram socket
 * (bound by python3, since Node cannot bind one) stands in for
 * /run/systemd/journal/socket and the test parses what arrived.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger, serializeEntry, Priority } from '../../lib/log';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-journal-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Binds a datagram socket at `sock`, receives `count` datagrams, prints them hex-encoded. */
function listen(sock: string, count: number): { ready: Promise<void>; received: Promise<Buffer[]> } {
  const py = spawn('python3', ['-c', `import socket,sys
s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1]); print('ready', flush=True)
for _ in range(int(sys.argv[2])): print(s.recv(65536).hex(), flush=True)`, sock, String(count)]);
  let out = '';
  let readyResolve!: () => void;
  const ready = new Promise<void>((r) => (readyResolve = r));
  py.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.startsWith('ready\n')) readyResolve();
  });
  const received = new Promise<Buffer[]>((resolve) =>
    py.on('exit', () => resolve(out.trim().split('\n').slice(1).map((h) => Buffer.from(h, 'hex')))),
  );
  return { ready, received };
}

describe('journal native protocol', () => {
  it('serializes text fields and newline-bearing fields in binary form', () => {
    const buf = serializeEntry({ MESSAGE: 'a\nb', FUSEGATE_RULE: 'usb', SKIPPED: undefined });
    const expected = Buffer.concat([
      Buffer.from('MESSAGE\n'),
      Buffer.from([3, 0, 0, 0, 0, 0, 0, 0]),
      Buffer.from('a\nb\n'),
      Buffer.from('FUSEGATE_RULE=usb\n'),
    ]);
    expect(buf.equals(expected)).toBe(true);
  });

  it('refuses field names journald would drop', () => {
    expect(() => serializeEntry({ lower: 'x' })).toThrow(/invalid journal field name/);
    expect(() => serializeEntry({ _TRUSTED: 'x' })).toThrow(/invalid journal field name/);
  });

  it('delivers one structured datagram per entry', async () => {
    const sock = path.join(dir, 'journal.sock');
    const { ready, received } = listen(sock, 1);
    await ready;
    createLogger({ identifier: 'fusegate', socketPath: sock }).log(Priority.NOTICE, 'decided', {
      FUSEGATE_DECISION: 'fuse',
      FUSEGATE_RULE: 'removable-media',
    });
    const [entry] = await received;
    const fields = Object.fromEntries(entry!.toString().trim().split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2)));
    expect(fields).toMatchObject({
      MESSAGE: 'decided',
      PRIORITY: '5',
      SYSLOG_IDENTIFIER: 'fusegate',
      FUSEGATE_DECISION: 'fuse',
      FUSEGATE_RULE: 'removable-media',
      SYSLOG_PID: String(process.pid),
    });
  });

  it('falls back to one stderr line when no journal listens', async () => {
    const script = `
      const { createLogger } = require(${JSON.stringify(path.resolve('dist/lib/log/index.js'))});
      createLogger({ identifier: 'fusegate', socketPath: ${JSON.stringify(path.join(dir, 'absent.sock'))} })
        .error('mount refused', { FUSEGATE_RULE: 'deny-all' });`;
    const child = spawn(process.execPath, ['-e', script]);
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise((r) => child.on('exit', r));
    expect(code).toBe(0);
    expect(err).toMatch(/^fusegate\[\d+\]: mount refused FUSEGATE_RULE="deny-all"\n$/);
  });
});

describe('journal fallback under systemd', () => {
  it('writes <priority>message when stderr is the journal stream', async () => {
    const script = `
      const { createLogger } = require(${JSON.stringify(path.resolve('dist/lib/log/index.js'))});
      createLogger({ identifier: 'fusegate-fuse2fs', socketPath: ${JSON.stringify(path.join(dir, 'absent.sock'))} })
        .warning('handshake failed', { FUSEGATE_BACKEND: 'fuse2fs' });`;
    const child = spawn(process.execPath, ['-e', script], { env: { ...process.env, JOURNAL_STREAM: '8:12345' } });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    await new Promise((r) => child.on('exit', r));
    expect(err).toBe('<4>handshake failed FUSEGATE_BACKEND="fuse2fs"\n');
  });
});
