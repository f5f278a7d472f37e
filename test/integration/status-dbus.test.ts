/**
 * `fusegate status` over a real D-Bus: a private dbus-daemon, first with
 * nothing on it (a bus without systemd: a clean fallback, not a crash or a
 * hang), then with a stand-in for systemd's Manager that answers
 * ListUnitsByPatterns and Properties.Get as systemd does. The stand-in's
 * MainPIDs are real processes holding the mounts' sources on fd 4, as a
 * FUSE server started by the adapter does, so the pairing is the real one.
 * The real systemd is exercised by the end-to-end suite.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Message as DBusMessage, MessageBus } from 'dbus-next';
import { collectStatus } from '../../admin/status';
import { listServices, SystemdUnavailable } from '../../admin/systemd-dbus';

const haveDaemon = spawnSync('dbus-daemon', ['--version'], { stdio: 'ignore' }).status === 0;
if (!haveDaemon && (process.env.CI === 'true' || process.env.FUSEGATE_REQUIRE_E2E === '1')) {
  throw new Error('status D-Bus tests need dbus-daemon (Debian package dbus), and CI requires them');
}

const dbus = require('dbus-next') as typeof import('dbus-next');

let dir: string;
let address: string;
let daemon: ChildProcess | null = null;
const servers: ChildProcess[] = [];

async function startDaemon(): Promise<void> {
  const socket = path.join(dir, 'bus');
  daemon = spawn('dbus-daemon', ['--session', `--address=unix:path=${socket}`, '--nofork', '--nopidfile'], { stdio: 'ignore' });
  for (let i = 0; i < 100 && !fs.existsSync(socket); i++) await new Promise((r) => setTimeout(r, 20));
  if (!fs.existsSync(socket)) throw new Error('dbus-daemon did not create its socket');
  address = `unix:path=${socket}`;
}

/** A process that holds `file` on fd 4, as a FUSE server holds its source. */
function fakeServer(file: string): ChildProcess {
  const fd = fs.openSync(file, 'r');
  const child = spawn('sleep', ['300'], { stdio: ['ignore', 'ignore', 'ignore', 'ignore', fd] });
  fs.closeSync(fd);
  servers.push(child);
  return child;
}

beforeAll(async () => {
  if (!haveDaemon) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-dbus-'));
  await startDaemon();
});

afterAll(() => {
  for (const c of servers) if (c.pid !== undefined && c.exitCode === null) process.kill(c.pid, 'SIGTERM');
  if (daemon?.pid !== undefined && daemon.exitCode === null) process.kill(daemon.pid, 'SIGTERM');
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!haveDaemon)('status over D-Bus', () => {
  it('a bus without systemd is a clean SystemdUnavailable, quickly', async () => {
    const started = Date.now();
    const err = await listServices(['fusefat@*.service'], { address, timeoutMs: 5000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SystemdUnavailable);
    expect((err as Error).message).toMatch(/systemd did not answer on .*: org\.freedesktop\.DBus\.Error\.NameHasNoOwner/);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('a socket nobody listens on is a clean SystemdUnavailable', async () => {
    const dead = path.join(dir, 'dead-bus');
    fs.writeFileSync(dead, '');
    const err = await listServices(['x@*.service'], { address: `unix:path=${dead}`, timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SystemdUnavailable);
  });

  describe('with a stand-in for systemd on the bus', () => {
    let manager: MessageBus;
    const calls: Array<{ member: string; body: unknown[] }> = [];
    let mountinfo: string;
    let imgA: string;
    let imgB: string;
    let serverA: ChildProcess;
    let serverB: ChildProcess;
    const UNIT_PATH = (n: string) => `/org/freedesktop/systemd1/unit/${n.replace(/[^A-Za-z0-9]/g, (c) => `_${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}`;

    beforeAll(async () => {
      imgA = path.join(dir, 'a.img');
      imgB = path.join(dir, 'b.img');
      const imgC = path.join(dir, 'c.img');
      for (const f of [imgA, imgB, imgC]) fs.writeFileSync(f, 'image');
      serverA = fakeServer(imgA);
      serverB = fakeServer(imgB);
      mountinfo = path.join(dir, 'mountinfo');
      fs.writeFileSync(mountinfo, [
        `40 1 0:60 / /mnt/a rw,nosuid,nodev - fuse.fusefat ${imgA} rw,user_id=0,group_id=0`,
        `41 1 0:61 / /mnt/b ro,nosuid,nodev - fuse.fuse2fs ${imgB} ro,user_id=0,group_id=0`,
        `42 1 0:62 / /mnt/c rw,nosuid,nodev - fuse.fusefat ${imgC} rw,user_id=0,group_id=0`,
      ].join('\n') + '\n');

      const units = [
        { name: `fusefat@3-${serverA.pid}-0.service`, pid: serverA.pid!, mem: 5n * 1024n * 1024n },
        // systemd's "unknown" MemoryCurrent: status falls back to the server's VmRSS
        { name: `fuse2fs@4-${serverB.pid}-0.service`, pid: serverB.pid!, mem: (1n << 64n) - 1n },
        // still starting: no main process yet, matches nothing
        { name: 'fusefat@5-1-0.service', pid: 0, mem: 0n },
      ];
      manager = dbus.sessionBus({ busAddress: address });
      await manager.requestName('org.freedesktop.systemd1', 0);
      manager.addMethodHandler((msg: DBusMessage) => {
        calls.push({ member: msg.member ?? '', body: msg.body });
        if (msg.interface === 'org.freedesktop.systemd1.Manager' && msg.member === 'ListUnitsByPatterns') {
          const rows = units.map((u) => [u.name, 'fusegate sandboxed mount', 'loaded', 'active', 'running', '', UNIT_PATH(u.name), 0, '', '/']);
          manager.send(dbus.Message.newMethodReturn(msg, 'a(ssssssouso)', [rows]));
          return true;
        }
        if (msg.interface === 'org.freedesktop.DBus.Properties' && msg.member === 'Get') {
          const [iface, prop] = msg.body as [string, string];
          const u = units.find((x) => UNIT_PATH(x.name) === msg.path);
          if (u === undefined || iface !== 'org.freedesktop.systemd1.Service') {
            manager.send(dbus.Message.newError(msg, 'org.freedesktop.DBus.Error.UnknownObject', 'no such unit'));
          } else if (prop === 'MainPID') manager.send(dbus.Message.newMethodReturn(msg, 'v', [new dbus.Variant('u', u.pid)]));
          else if (prop === 'MemoryCurrent') manager.send(dbus.Message.newMethodReturn(msg, 'v', [new dbus.Variant('t', u.mem)]));
          else manager.send(dbus.Message.newError(msg, 'org.freedesktop.DBus.Error.UnknownProperty', prop));
          return true;
        }
        return false;
      });
    });

    afterAll(() => {
      manager?.disconnect();
    });

    it('asks for the backends\' running instances by pattern', async () => {
      calls.length = 0;
      const services = await listServices(['fusefat@*.service', 'fuse2fs@*.service'], { address });
      expect(calls[0]).toEqual({ member: 'ListUnitsByPatterns', body: [['active', 'activating', 'deactivating'], ['fusefat@*.service', 'fuse2fs@*.service']] });
      expect(services).toEqual([
        { name: `fusefat@3-${serverA.pid}-0.service`, activeState: 'active', mainPid: serverA.pid, memoryCurrent: 5n * 1024n * 1024n },
        { name: `fuse2fs@4-${serverB.pid}-0.service`, activeState: 'active', mainPid: serverB.pid, memoryCurrent: null },
        { name: 'fusefat@5-1-0.service', activeState: 'active', mainPid: null, memoryCurrent: 0n },
      ]);
    });

    it('pairs each mount with the service whose server holds its source', async () => {
      const report = await collectStatus({ mountinfo, utab: path.join(dir, 'no-utab'), busAddress: address });
      expect(report.systemd).toEqual({ available: true });
      const [a, b, c] = report.mounts;
      expect(a).toMatchObject({ mountpoint: '/mnt/a', unit: `fusefat@3-${serverA.pid}-0.service`, pid: serverA.pid, memoryBytes: 5 * 1024 * 1024, memorySource: 'MemoryCurrent' });
      expect(b).toMatchObject({ mountpoint: '/mnt/b', unit: `fuse2fs@4-${serverB.pid}-0.service`, pid: serverB.pid, memorySource: 'VmRSS', readOnly: true });
      expect(b!.memoryBytes).toBeGreaterThan(0);
      // No server holds c.img: listed, but with nothing to pair.
      expect(c).toMatchObject({ mountpoint: '/mnt/c', unit: null, pid: null, memoryBytes: null });
    });
  });
});
