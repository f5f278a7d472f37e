/**
 * `fusegate install` on a running systemd (the e2e container): the sockets
 * are enabled and listening, a second install changes nothing, an edited
 * socket unit is rewritten and its socket restarted, doctor is clean, two
 * sandboxed mounts show up in `fusegate status` paired with their own
 * service instances (systemd over D-Bus), and uninstall restores a diverted
 * helper and stops the sockets.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LoopDevice, PROJECT_MOUNT, attachLoop, e2eSkip } from '../e2e/harness';
import { containerSuite } from '../e2e/suite';
import { MAX_CONNECTIONS } from '../../admin/units';

const REPO = resolve(__dirname, '../..');
const FUSEGATE = ['node', `${PROJECT_MOUNT}/dist/bin/fusegate.js`];

describe.skipIf(e2eSkip())('fusegate install on a running systemd', () => {
  let scratch = '';
  const loops: LoopDevice[] = [];

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'fusegate-install-live-'));
    for (const n of ['A', 'B']) {
      const img = join(scratch, `fat${n}.img`);
      writeFileSync(img, '');
      truncateSync(img, 16 * 1024 * 1024);
      execFileSync('mkfs.vfat', ['-n', `STICK${n}`, img], { stdio: 'ignore' });
      loops.push(await attachLoop(img));
    }
  });
  afterAll(async () => {
    await Promise.resolve()
      .then(() => e2e.container.stop())
      .catch(() => undefined);
    for (const l of loops) await l.detach();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  const e2e = containerSuite(() => ({ projectDir: REPO, devices: loops.map((l) => l.path) }));

  it('installs, enables and starts the sockets, diverting mount.ntfs when asked', async () => {
    const r = await e2e.container.install({ args: ['--take-over=ntfs'] });
    expect(r.stdout).toMatch(/^diverted: mount\.ntfs: \/usr\/sbin\/mount\.ntfs \(a symlink to mount\.ntfs-3g\) moved to /m);
    expect(r.stdout).toMatch(/^installed: sockets listening: .*fusefat\.socket/m);
    const active = await e2e.container.exec(['systemctl', 'is-active', 'fusefat.socket', 'fuse2fs.socket']);
    expect(active.stdout.trim().split('\n')).toEqual(['active', 'active']);
    const enabled = await e2e.container.exec(['systemctl', 'is-enabled', 'fusefat.socket']);
    expect(enabled.stdout.trim()).toBe('enabled');
  });

  it('a second install changes nothing, not even systemd', async () => {
    const r = await e2e.container.install();
    expect(r.stdout).not.toMatch(/^(installed|removed|diverted|failed):/m);
    expect(r.stdout).toMatch(/^unchanged: sockets listening: /m);
  });

  it('rewrites an edited socket unit and restarts that socket', async () => {
    const c = e2e.container;
    await c.execOk(['sed', '-i', `s/^MaxConnections=${MAX_CONNECTIONS}$/MaxConnections=7/`, '/etc/systemd/system/fusefat.socket']);
    await c.execOk(['systemctl', 'daemon-reload']);
    await c.execOk(['systemctl', 'restart', 'fusefat.socket']);
    const r = await c.install();
    expect(r.stdout).toMatch(/^installed: units \/etc\/systemd\/system\/fusefat\.socket, fusefat@\.service/m);
    expect(r.stdout).toMatch(/^installed: sockets listening: /m);
    expect((await c.execOk(['systemctl', 'show', '-p', 'MaxConnections', 'fusefat.socket'])).stdout.trim()).toBe(`MaxConnections=${MAX_CONNECTIONS}`);
  });

  it('doctor finds nothing to fix', async () => {
    const r = await e2e.container.exec(['fusegate', 'doctor']);
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/^ok {4}systemd: running as init$/m);
    expect(r.stdout).toMatch(/^ok {4}units fusefat: .*listening on \/run\/filesystems\/fusefat$/m);
    expect(r.stdout).not.toMatch(/^FAIL/m);
  });

  it('status pairs each sandboxed mount with its own service, pid and memory', async () => {
    const c = e2e.container;
    await c.execOk(['mkdir', '-p', '/mnt/a', '/mnt/b']);
    await c.execOk(['mount', '-t', 'vfat', loops[0]!.path, '/mnt/a']);
    await c.execOk(['mount', '-t', 'vfat', loops[1]!.path, '/mnt/b']);
    const r = await c.execOk(['fusegate', 'status', '--json']);
    const report = JSON.parse(r.stdout) as { systemd: { available: boolean }; mounts: Array<Record<string, unknown>> };
    expect(report.systemd.available).toBe(true);
    expect(report.mounts).toHaveLength(2);
    for (const [i, m] of report.mounts.entries()) {
      // FAT goes to fusegate-vfat (the default policy's first choice), served in the adapter's own process.
      expect(m).toMatchObject({ source: loops[i]!.path, backend: 'fusegate-vfat', rule: 'images-and-loop-devices', unit: expect.stringMatching(/^fusegate-vfat@\d+-\d+-0\.service$/) });
      expect(m.memoryBytes as number).toBeGreaterThan(0);
      // The pid is the unit's main process, and that process holds this mount's source.
      const main = await c.execOk(['systemctl', 'show', '-p', 'MainPID', '--value', m.unit as string]);
      expect(Number(main.stdout.trim())).toBe(m.pid);
      const fds = await c.execOk(['sh', '-c', `for f in /proc/${m.pid as number}/fd/*; do readlink "$f"; done`]);
      expect(fds.stdout.split('\n')).toContain(loops[i]!.path);
    }
    expect(report.mounts[0]!.unit).not.toBe(report.mounts[1]!.unit);
    const table = await c.execOk(['fusegate', 'status']);
    expect(table.stdout).toMatch(/^SOURCE\s+MOUNTPOINT\s+BACKEND\s+RULE\s+UNIT\s+PID\s+MEMORY\n/);
    await c.execOk(['umount', '/mnt/a', '/mnt/b']);
  });

  it('uninstall stops the sockets, restores mount.ntfs and keeps the policy', async () => {
    const c = e2e.container;
    const r = await c.execOk(['fusegate', 'uninstall']);
    expect(r.stdout).toMatch(/^restored: \/usr\/sbin\/mount\.ntfs /m);
    expect(r.stdout).toMatch(/^kept: policy \/etc\/fusegate\/policy\.yaml/m);
    expect((await c.exec(['readlink', '/usr/sbin/mount.ntfs'])).stdout.trim()).toBe('mount.ntfs-3g');
    expect((await c.exec(['test', '-e', '/usr/lib/fusegate'])).code).not.toBe(0);
    expect((await c.exec(['systemctl', 'is-active', 'fusefat.socket'])).stdout.trim()).not.toBe('active');
    expect((await c.exec(['test', '-e', '/run/filesystems/fusefat'])).code).not.toBe(0);
  });
});
