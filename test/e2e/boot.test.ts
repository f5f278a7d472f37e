/**
 * Smoke test of the e2e harness: a real systemd boots in a container with
 * /dev/fuse, a loop device and the host's Node, and everything is gone after
 * teardown.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { type LoopDevice, PROJECT_MOUNT, attachLoop, e2eSkip, loopsFor, makeExt4Image } from './harness';
import { containerSuite, releaseHostSetup } from './suite';

const REPO = resolve(__dirname, '../..');

describe.skipIf(e2eSkip())('e2e harness: booted systemd container', () => {
  let scratch = '';
  let image = '';
  let loop: LoopDevice | undefined;

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'fusegate-e2e-boot-'));
    image = join(scratch, 'disk.img');
    await makeExt4Image(image, { sizeMiB: 8, label: 'FGE2E' });
    loop = await attachLoop(image);
  });
  // Registered before containerSuite(): its afterAll then runs after the
  // container has stopped (after-hooks run in reverse order).
  releaseHostSetup(() => ({ suite: e2e, loops: [loop], scratch }));

  const e2e = containerSuite(() => ({ projectDir: REPO, devices: loop ? [loop.path] : [] }));

  it('boots to running or degraded', async () => {
    const c = e2e.container;
    expect(['running', 'degraded']).toContain(c.systemState);
    const r = await c.execOk(['systemctl', 'is-system-running']);
    expect(['running', 'degraded']).toContain(r.stdout.trim());
    // Boot must stay quick: every e2e suite pays it.
    expect(c.bootMs).toBeLessThan(30_000);
  });

  it('runs the host Node inside', async () => {
    const r = await e2e.container.execOk(['node', '-e', 'console.log(process.version)']);
    expect(r.stdout.trim()).toMatch(/^v20\./);
    expect(r.stderr).toBe('');
  });

  it('runs commands as a unit of the container\'s systemd when asked', async () => {
    const r = await e2e.container.exec(['sh', '-c', 'echo "$FG_PROBE"; cat /proc/self/cgroup; exit 7'], {
      inUnit: true,
      env: { FG_PROBE: 'probe' },
    });
    expect(r.code).toBe(7);
    expect(r.stdout).toMatch(/^probe$/m);
    expect(r.stdout).toMatch(/system\.slice\/run-u\d+\.service/);
  });

  it('keeps writes in the overlay, away from the cached root', async () => {
    const c = e2e.container;
    await c.execOk(['sh', '-c', 'echo probe > /etc/fusegate-e2e-overlay-probe']);
    expect(existsSync(join(c.root, 'etc/fusegate-e2e-overlay-probe'))).toBe(false);
  });

  it('binds the project read-only', async () => {
    const c = e2e.container;
    await c.execOk(['test', '-f', `${PROJECT_MOUNT}/package.json`]);
    const w = await c.exec(['touch', `${PROJECT_MOUNT}/.e2e-write-probe`]);
    expect(w.code).not.toBe(0);
    expect(w.stderr).toMatch(/Read-only file system/);
  });

  it('has a usable /dev/fuse: a squashfuse mount works', async () => {
    const c = e2e.container;
    const open = await c.execOk([
      'node',
      '-e',
      "const fs=require('fs');const fd=fs.openSync('/dev/fuse','r+');const st=fs.fstatSync(fd);console.log(st.isCharacterDevice(),st.rdev>>8,st.rdev&255)",
    ]);
    expect(open.stdout.trim()).toBe('true 10 229');
    // A real FUSE mount inside the container, by root, through the bound node.
    const r = await c.shOk(
      [
        'set -e',
        'mkdir -p /tmp/sq/src /tmp/sq/mnt',
        'echo hello-fuse > /tmp/sq/src/greeting',
        'mksquashfs /tmp/sq/src /tmp/sq/img -quiet -no-progress >/dev/null',
        'squashfuse /tmp/sq/img /tmp/sq/mnt',
        'cat /tmp/sq/mnt/greeting',
        'findmnt -n -o FSTYPE /tmp/sq/mnt',
        'umount /tmp/sq/mnt',
      ].join('\n'),
    );
    expect(r.stdout.split('\n').filter((l) => l !== '')).toEqual(['hello-fuse', 'fuse.squashfuse']);
  });

  it('sees and reads the loop device made on the host', async () => {
    const dev = loop!.path;
    const r = await e2e.container.execOk(['blkid', '-p', '-o', 'export', dev]);
    expect(r.stdout).toMatch(/^TYPE=ext4$/m);
    expect(r.stdout).toMatch(/^LABEL=FGE2E$/m);
  });

  it('exposes the journal', async () => {
    const j = await e2e.container.journal();
    expect(j).toMatch(/Startup finished|Reached target/);
  });

  it('tears down completely, by pid', async () => {
    const c = e2e.container;
    const { nspawnPid, initPid } = c;
    await c.stop();
    expect(c.running).toBe(false);
    expect(c.leftovers()).toEqual({ pids: [], mounts: [], workDir: false });
    for (const pid of [nspawnPid, initPid]) expect(() => process.kill(pid, 0)).toThrow();
    await loop!.detach();
    expect(await loopsFor(image)).toEqual([]);
  });
});
