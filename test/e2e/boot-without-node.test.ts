/**
 * Boot-safe interception: a machine whose Node is gone still boots and
 * mounts its own disks. fusegate is installed into the root (mount.ext4 is
 * its launcher), the container boots with no /usr/bin/node at all, and:
 *
 *   - an fstab ext4 entry on a fixed disk (a zram device: root-only, not
 *     removable, not a loop device) is mounted at boot, by the launcher's
 *     fail-closed rule, with the kernel driver;
 *   - an fstab entry on a loop device (an image) is refused, and so is a
 *     mount of it by hand;
 *   - the system reaches multi-user.target, and the kernel log says what the
 *     launcher did.
 *
 * systemd's fstab generator ignores device entries in a container (its /sys
 * is read-only), so the two fstab lines are also written as the .mount
 * units the generator would have made; the launcher still reads /etc/fstab.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LoopDevice, attachLoop, e2eRequired, e2eSkip, ensureRoot, makeExt4Image } from './harness';
import { runOk } from './host';
import { containerSuite } from './suite';

const REPO = resolve(__dirname, '../..');

/** A fresh zram device on the host: a fixed, non-removable disk only root can make. */
function addZram(sizeMiB: number): { dev: string; remove(): void } {
  const id = readFileSync('/sys/class/zram-control/hot_add', 'utf8').trim();
  const sys = `/sys/block/zram${id}`;
  writeFileSync(`${sys}/disksize`, `${sizeMiB << 20}`);
  return {
    dev: `/dev/zram${id}`,
    remove() {
      try {
        writeFileSync(`${sys}/reset`, '1');
        writeFileSync('/sys/class/zram-control/hot_remove', id);
      } catch {
        /* already gone */
      }
    },
  };
}

function unitName(where: string): string {
  return `${where.slice(1).replace(/\//g, '-')}.mount`;
}

function mountUnit(what: string, where: string): string {
  return `[Unit]\nDescription=${where} (as systemd-fstab-generator writes it)\nBefore=local-fs.target\n\n[Mount]\nWhat=${what}\nWhere=${where}\nType=ext4\nOptions=defaults\n`;
}

// zram stands in for a fixed disk; without it the test may skip, unless CI requires every e2e test.
const NO_ZRAM = !existsSync('/sys/class/zram-control');

describe.skipIf(e2eSkip() || (NO_ZRAM && !e2eRequired()))('e2e: booting with Node unavailable', () => {
  let scratch = '';
  let merged = '';
  let zram: { dev: string; remove(): void } | undefined;
  let loop: LoopDevice | undefined;

  beforeAll(async () => {
    if (NO_ZRAM) throw new Error('no /sys/class/zram-control: the kernel lacks zram (CONFIG_ZRAM), which stands in for a fixed disk');
    scratch = mkdtempSync(join(tmpdir(), 'fusegate-e2e-nonode-'));
    zram = addZram(32);
    await runOk(['mkfs.ext4', '-q', '-F', '-L', 'FIXED', zram.dev], { timeoutMs: 60_000 });
    const image = join(scratch, 'image.img');
    await makeExt4Image(image, { sizeMiB: 8, label: 'IMAGE' });
    loop = await attachLoop(image);

    // The cached root under an overlay of our own, with fusegate installed
    // into it as `fusegate install --root` does, and the two fstab entries.
    const lower = (await ensureRoot()).path;
    merged = join(scratch, 'root');
    for (const d of ['upper', 'work', 'root']) mkdirSync(join(scratch, d));
    await runOk(['mount', '-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${scratch}/upper,workdir=${scratch}/work`, merged]);
    await runOk([process.execPath, join(REPO, 'dist/bin/fusegate.js'), 'install', '--root', merged], { timeoutMs: 120_000 });
    expect(existsSync(join(merged, 'usr/bin/node'))).toBe(false);
    writeFileSync(join(merged, 'etc/fstab'), `${zram.dev} /mnt/fixed ext4 defaults 0 2\n${loop.path} /mnt/image ext4 defaults,nofail 0 2\n`);
    const wants = join(merged, 'etc/systemd/system/local-fs.target.wants');
    mkdirSync(wants, { recursive: true });
    for (const [what, where] of [[zram.dev, '/mnt/fixed'], [loop.path, '/mnt/image']] as const) {
      mkdirSync(join(merged, where), { recursive: true });
      writeFileSync(join(merged, 'etc/systemd/system', unitName(where)), mountUnit(what, where));
      symlinkSync(`../${unitName(where)}`, join(wants, unitName(where)));
    }
  }, 300_000);

  afterAll(async () => {
    if (merged) spawnSync('umount', [merged]);
    await loop?.detach();
    zram?.remove();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  const e2e = containerSuite(() => ({ root: merged, node: false, devices: [zram!.dev, loop!.path], bootTimeoutMs: 90_000 }));

  it('has no node inside', async () => {
    const r = await e2e.container.exec(['sh', '-c', 'command -v node']);
    expect(r.code).not.toBe(0);
  });

  it('reaches multi-user.target', async () => {
    const c = e2e.container;
    expect(['running', 'degraded']).toContain(c.systemState);
    const r = await c.exec(['systemctl', 'is-active', 'multi-user.target']);
    expect(r.stdout.trim()).toBe('active');
  });

  it('mounted the fixed fstab disk with the kernel driver, through the launcher', async () => {
    const c = e2e.container;
    const r = await c.execOk(['findmnt', '-n', '-o', 'SOURCE,FSTYPE', '/mnt/fixed']);
    expect(r.stdout.trim().split(/\s+/)).toEqual([zram!.dev, 'ext4']);
    const j = await c.journal();
    expect(j).toMatch(new RegExp(`fusegate\\[\\d+\\]: launcher fail-closed: ${zram!.dev} on /mnt/fixed \\(ext4\\) is a fixed disk listed in /etc/fstab: kernel driver \\(node was not found\\)`));
  });

  it('refused the loop device fstab names, at boot and by hand', async () => {
    const c = e2e.container;
    expect((await c.exec(['findmnt', '/mnt/image'])).code).not.toBe(0);
    expect(c.failedUnits).toContain('mnt-image.mount');
    expect(await c.journal()).toMatch(new RegExp(`fusegate\\[\\d+\\]: launcher fail-closed: refused ${loop!.path} on /mnt/image: loop\\d+ is a loop device`));
    const r = await c.exec(['mount', '-t', 'ext4', loop!.path, '/mnt/image']);
    expect(r.code).toBe(32);
    expect(r.stderr).toMatch(/refused: loop\d+ is a loop device \(node was not found; .*\); repair: /);
    expect((await c.exec(['findmnt', '/mnt/image'])).code).not.toBe(0);
  });

  it('mount.fusegate -V says the launcher runs in fail-closed mode, and why', async () => {
    const c = e2e.container;
    const r = await c.exec(['/usr/sbin/mount.fusegate', '-V']);
    expect(r.stdout).toMatch(/fail-closed mode: node was not found/);
  });
});
