/**
 * The broker's bus connection (lib/dbus/bus.ts over lib/dbus/fd-stream.ts)
 * passing a unix fd through a real dbus-daemon, as `fusegate mount` passes
 * the source it opened with the user's rights: what arrives is the same open
 * file (same inode, same access mode), in a message after others without
 * fds, and a connection that is closed lets the process exit.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Message as DBusMessage, MessageBus } from 'dbus-next';
import { connectSystemBus, messageFds } from '../../lib/dbus/bus';
import { fdAccess } from '../../broker/request';

const haveDaemon = spawnSync('dbus-daemon', ['--version'], { stdio: 'ignore' }).status === 0;
const dbus = require('dbus-next') as typeof import('dbus-next');

let dir: string;
let daemon: ChildProcess | null = null;
const saved = process.env.DBUS_SYSTEM_BUS_ADDRESS;

describe.skipIf(!haveDaemon)('fd passing over D-Bus', () => {
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-brokerbus-'));
    const socket = path.join(dir, 'bus');
    daemon = spawn('dbus-daemon', ['--session', `--address=unix:path=${socket}`, '--nofork', '--nopidfile'], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !fs.existsSync(socket); i++) await new Promise((r) => setTimeout(r, 20));
    process.env.DBUS_SYSTEM_BUS_ADDRESS = `unix:path=${socket}`;
  });
  afterAll(() => {
    if (saved === undefined) delete process.env.DBUS_SYSTEM_BUS_ADDRESS;
    else process.env.DBUS_SYSTEM_BUS_ADDRESS = saved;
    daemon?.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('delivers the client’s open file to the service, with its access mode', async () => {
    const service: MessageBus = await connectSystemBus(5000);
    const client: MessageBus = await connectSystemBus(5000);
    try {
      expect(await service.requestName('org.fusegate.Test', 4)).toBe(1);
      service.addMethodHandler((m: DBusMessage) => {
        if (m.interface !== 'org.fusegate.Test') return false;
        if (m.member === 'Echo') {
          // a message without fds has none recorded
          service.send(dbus.Message.newMethodReturn(m, 's', [messageFds(m).length === 0 ? m.body[0] : 'fds on an Echo!']));
          return true;
        }
        const fd = m.body[0] as number;
        // the message records exactly the fds that came with it, for its receiver to close
        if (JSON.stringify(messageFds(m)) !== JSON.stringify([fd])) throw new Error(`message fds ${messageFds(m)} but body ${fd}`);
        const st = fs.fstatSync(fd);
        const access = fdAccess(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
        const text = fs.readFileSync(fd, 'utf8');
        fs.closeSync(fd);
        service.send(dbus.Message.newMethodReturn(m, 'sts', [text, BigInt(st.ino), access.mode]));
        return true;
      });
      const file = path.join(dir, 'image');
      fs.writeFileSync(file, 'the image');
      const call = (member: string, signature: string, body: unknown[]) =>
        client.call(new dbus.Message({ destination: 'org.fusegate.Test', path: '/t', interface: 'org.fusegate.Test', member, signature, body }));
      // messages without fds before and after: fds must attach to their own message
      expect((await call('Echo', 's', ['one']))!.body[0]).toBe('one');
      const ro = fs.openSync(file, 'r');
      const rw = fs.openSync(file, 'r+');
      try {
        const [a, b] = await Promise.all([call('Take', 'h', [ro]), call('Take', 'h', [rw])]);
        expect(a!.body).toEqual(['the image', BigInt(fs.statSync(file).ino), 'read']);
        expect(b!.body).toEqual(['the image', BigInt(fs.statSync(file).ino), 'read-write']);
      } finally {
        fs.closeSync(ro);
        fs.closeSync(rw);
      }
      expect((await call('Echo', 's', ['two']))!.body[0]).toBe('two');
      // A burst: many messages with and without fds in flight at once, so one
      // read carries several; each fd must reach its own message.
      const files = Array.from({ length: 12 }, (_, i) => {
        const f = path.join(dir, `burst-${i}`);
        fs.writeFileSync(f, `file ${i}`);
        return fs.openSync(f, 'r');
      });
      try {
        const replies = await Promise.all(files.flatMap((fd, i) => [call('Take', 'h', [fd]), call('Echo', 's', [`echo ${i}`])]));
        replies.forEach((r, j) => expect(r!.body[0]).toBe(j % 2 === 0 ? `file ${j / 2}` : `echo ${(j - 1) / 2}`));
      } finally {
        files.forEach((fd) => fs.closeSync(fd));
      }
    } finally {
      client.disconnect();
      service.disconnect();
    }
  });

  it('lets a process exit once its connection is closed', () => {
    const script = `const { connectSystemBus } = require(${JSON.stringify(path.resolve(__dirname, '../../dist/lib/dbus/bus.js'))});
connectSystemBus(5000).then((b) => b.disconnect());`;
    const t0 = Date.now();
    const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env }, timeout: 10_000 });
    expect(r.status).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('says clearly when there is no bus', async () => {
    process.env.DBUS_SYSTEM_BUS_ADDRESS = `unix:path=${path.join(dir, 'nothing')}`;
    try {
      await expect(connectSystemBus(2000)).rejects.toThrow(/cannot connect to the D-Bus system bus|no answer/);
    } finally {
      process.env.DBUS_SYSTEM_BUS_ADDRESS = `unix:path=${path.join(dir, 'bus')}`;
    }
  });
});
