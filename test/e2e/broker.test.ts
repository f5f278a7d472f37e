/**
 * Ordinary users mounting through the broker (org.fusegate.Mount1) in a real
 * systemd with dbus-daemon, polkitd and logind: `fusegate mount` as alice in
 * a logind session (systemd-run -p PAMName=login: active and local, as a
 * desktop login), the broker bus-activated by its first call.
 *
 * What a user gets: an image alice owns mounts sandboxed (nosuid,nodev, files
 * hers, a fusegate-vfat@ instance serving it, ownership in utab); an image she
 * cannot read is refused; the kernel path without authorization is refused
 * with what to ask the administrator; bob cannot unmount alice's mount; a
 * polkit rule that says no is honoured; without a session (no logind
 * session: polkit's allow_any) the sandboxed mount needs an administrator.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LoopDevice, attachLoop, e2eSkip, makeExt4Image } from './harness';
import type { Container, ExecResult } from './container';
import { findmnt, journalCursor, listUnits, waitForUnit, prependRule, readPolicy, utabOptions, waitForJournal, waitForNoUnits, writePolicy } from './scenario';
import { containerSuite, releaseHostSetup } from './suite';
import { EXPOSURE } from '../../broker/files';

const REPO = resolve(__dirname, '../..');
const ALICE = 1000;
const BOB = 1001;

/**
 * A command as `user` inside a logind session on seat0 (PAMName=login,
 * XDG_SEAT=seat0), as a desktop login: polkit calls a session local only on a
 * seat, and logind makes the newest session of a seat without VTs active.
 */
function inSession(c: Container, user: string, argv: string[], timeoutMs = 90_000): Promise<ExecResult> {
  return c.exec(
    ['systemd-run', '--quiet', '--wait', '--pipe', '--collect', '--service-type=exec', `--uid=${user}`, '-p', 'PAMName=login', '-E', 'XDG_SEAT=seat0', '-p', `RuntimeMaxSec=${Math.ceil(timeoutMs / 1000)}`, '--', ...argv],
    { timeoutMs: timeoutMs + 10_000 },
  );
}

/** A command as `user` with no logind session at all (setpriv: no PAM): polkit's allow_any. */
function noSession(c: Container, user: string, argv: string[]): Promise<ExecResult> {
  return c.exec(['setpriv', `--reuid=${user}`, `--regid=${user}`, '--init-groups', '--', ...argv], { timeoutMs: 90_000 });
}

describe.skipIf(e2eSkip())('ordinary users mount through the polkit-checked broker', () => {
  // A device "udev gave alice" (uaccess): a loop device over an ext4 image the
  // policy trusts to the kernel by its label. The container cannot make loop
  // devices of its own (its /dev holds only what is bound in).
  let scratch = '';
  let loop: LoopDevice | undefined;
  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'fusegate-e2e-broker-'));
    await makeExt4Image(join(scratch, 'kernel-dev.img'), { sizeMiB: 8, label: 'KERNELME' });
    loop = await attachLoop(join(scratch, 'kernel-dev.img'));
  });
  releaseHostSetup(() => ({ suite: e2e, loops: [loop], scratch }));
  const e2e = containerSuite(() => ({ projectDir: REPO, devices: [loop!.path] }));
  let cursor = '';

  beforeAll(async () => {
    const c = e2e.container;
    await c.install();
    await c.shOk(`useradd -m -u ${ALICE} -U alice && useradd -m -u ${BOB} -U bob`);
    // Images made by their owners, private to them.
    await c.execOk(['setpriv', '--reuid=alice', '--regid=alice', '--init-groups', '--', 'sh', '-c',
      'cd /home/alice && umask 077 && mkfs.vfat -C -n FGALICE alice.img 8192 >/dev/null && truncate -s 8M kernel.img && mkfs.ext4 -q -F -L KERNELME kernel.img && mkdir mnt']);
    await c.execOk(['setpriv', '--reuid=bob', '--regid=bob', '--init-groups', '--', 'sh', '-c',
      'cd /home/bob && umask 077 && mkfs.vfat -C -n FGBOB bob.img 8192 >/dev/null && chmod 711 /home/bob']);
    // The kernel path for one image: what the administrator trusts (by label, for the test).
    const policy = await readPolicy(c);
    // And a shared image in fstab the administrator wants sandboxed (the default sends root-only fstab images to the kernel).
    await writePolicy(c, prependRule(policy, ['  - name: trusted-kernel-image', '    match: { label: KERNELME }', '    action: kernel', '  - name: shared-image', '    match: { label: SHARED }', '    action: fuse']));
    cursor = await journalCursor(c);
  });

  afterAll(async () => {
    await e2e.container.sh('umount -R /run/media/alice/* /home/alice/mnt 2>/dev/null; true').catch(() => undefined);
  });

  it("the broker's unit rates the exposure its comment states", async () => {
    const r = await e2e.container.execOk(['systemd-analyze', 'security', '--no-pager', 'fusegate-broker.service']);
    const m = /Overall exposure level for fusegate-broker\.service: (\d+\.\d) (\w+)/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    expect(`${m![1]} ${m![2]}`).toBe(EXPOSURE);
  });

  it('polkit knows the three actions with their defaults', async () => {
    const c = e2e.container;
    const r = await c.execOk(['pkaction', '--verbose', '--action-id', 'org.fusegate.mount']);
    expect(r.stdout).toMatch(/implicit active:\s+yes/);
    expect(r.stdout).toMatch(/implicit any:\s+auth_admin/);
    const k = await c.execOk(['pkaction', '--verbose', '--action-id', 'org.fusegate.mount-kernel']);
    expect(k.stdout).toMatch(/implicit active:\s+auth_admin_keep/);
  });

  it("alice's own image mounts sandboxed at /run/media/alice/<label>: nosuid,nodev, her files, a fusegate-vfat instance, ownership in utab", async () => {
    const c = e2e.container;
    const r = await inSession(c, 'alice', ['fusegate', 'mount', '/home/alice/alice.img']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout.trim()).toBe('mounted /home/alice/alice.img at /run/media/alice/FGALICE');
    const where = '/run/media/alice/FGALICE';
    const row = await findmnt(c, where);
    expect(row).toMatchObject({ fstype: 'fuse.fusegate-vfat' });
    expect(row!.options).toEqual(expect.arrayContaining(['nosuid', 'nodev', 'rw']));
    expect(row!.options).toEqual(expect.arrayContaining([`user_id=${ALICE}`]));
    expect(await utabOptions(c, where)).toEqual(expect.arrayContaining([`x-fusegate.owner=${ALICE}`, 'x-fusegate.backend=fusegate-vfat', 'helper=fusegate']));
    // Served by a sandboxed instance (DynamicUser, in fusegate.slice).
    const units = await listUnits(c, 'fusegate-vfat@*');
    expect(units).toHaveLength(1);
    expect(units[0]).toMatchObject({ active: 'active', sub: 'running' });
    // Files show as hers, and she can write.
    const w = await inSession(c, 'alice', ['sh', '-c', `echo hello > ${where}/note.txt && stat -c '%u %g' ${where}/note.txt ${where}`]);
    expect(w.code, w.stderr).toBe(0);
    expect(w.stdout.trim().split('\n')).toEqual([`${ALICE} ${ALICE}`, `${ALICE} ${ALICE}`]);
    // Others see nothing inside (a FUSE mount without allow_other).
    const b = await inSession(c, 'bob', ['ls', where]);
    expect(b.code).not.toBe(0);
    // List() shows it with its owner.
    const list = await c.execOk(['busctl', 'call', '--json=short', 'org.fusegate.Mount1', '/org/fusegate/Mount1', 'org.fusegate.Mount1', 'List']);
    expect(list.stdout).toContain(where);
    // The journal has the request: caller uid, polkit action, result.
    const entries = await waitForJournal(c, cursor, ['SYSLOG_IDENTIFIER=fusegate-broker'], (es) => es.some((e) => e.FUSEGATE_BROKER_METHOD === 'Mount'));
    expect(entries.find((e) => e.FUSEGATE_BROKER_METHOD === 'Mount')).toMatchObject({
      FUSEGATE_CALLER_UID: String(ALICE),
      FUSEGATE_POLKIT_ACTION: 'org.fusegate.mount',
      FUSEGATE_POLKIT_RESULT: 'yes',
      FUSEGATE_OUTCOME: 'done',
      FUSEGATE_CALLER_SESSION: 'active',
    });
  });

  it("bob may not unmount alice's mount; alice may", async () => {
    const c = e2e.container;
    const where = '/run/media/alice/FGALICE';
    const b = await inSession(c, 'bob', ['fusegate', 'unmount', where]);
    expect(b.code).toBe(32);
    expect(b.stderr).toContain('was mounted by someone else');
    expect(b.stderr).toContain('org.fusegate.unmount-others');
    expect(await findmnt(c, where)).not.toBeNull();
    const a = await inSession(c, 'alice', ['fusegate', 'unmount', where]);
    expect(a.code, a.stderr).toBe(0);
    expect(await findmnt(c, where)).toBeNull();
    expect(await waitForNoUnits(c, 'fusegate-vfat@*')).toEqual([]);
    // The broker's directory goes with the mount, as udisks2's do.
    expect((await c.exec(['test', '-e', where])).code).not.toBe(0);
  });

  it('an image alice cannot read is refused, and nothing is mounted', async () => {
    const c = e2e.container;
    const r = await inSession(c, 'alice', ['fusegate', 'mount', '/home/bob/bob.img', '/home/alice/mnt']);
    expect(r.code).toBe(32);
    expect(r.stderr).toContain('cannot open /home/bob/bob.img: permission denied');
    expect(r.stderr).toContain('you can mount only what you can read yourself');
    expect(await findmnt(c, '/home/alice/mnt')).toBeNull();
  });

  it('a call with the wrong argument types is refused before anything reads them', async () => {
    const c = e2e.container;
    const r = await inSession(c, 'alice', ['busctl', 'call', 'org.fusegate.Mount1', '/org/fusegate/Mount1', 'org.fusegate.Mount1', 'Mount', 'ssa{sv}', '/etc/shadow', '/home/alice/mnt', '0']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Mount takes (hsa{sv}), not (ssa{sv})');
    expect(await findmnt(c, '/home/alice/mnt')).toBeNull();
  });

  it('a mountpoint alice does not own is refused', async () => {
    const c = e2e.container;
    const r = await inSession(c, 'alice', ['fusegate', 'mount', '/home/alice/alice.img', '/tmp']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/mountpoint \/tmp is not yours/);
  });

  it('the kernel path without authorization is refused, saying what to ask the administrator', async () => {
    const c = e2e.container;
    const r = await inSession(c, 'alice', ['fusegate', 'mount', '/home/alice/kernel.img', '/home/alice/mnt']);
    expect(r.code).toBe(32);
    expect(r.stderr).toContain("with the kernel's own driver, and that needs an administrator's authorization (polkit action org.fusegate.mount-kernel)");
    expect(r.stderr).toContain('ask your administrator');
    expect(await findmnt(c, '/home/alice/mnt')).toBeNull();
  });

  it('the kernel path with an administrator\'s grant (a polkit rule) mounts a device alice may read, nosuid,nodev', async () => {
    const c = e2e.container;
    await c.execOk(['chown', 'alice', loop!.path]);
    await c.shOk(`cat > /etc/polkit-1/rules.d/20-alice-kernel.rules <<'EOF'
polkit.addRule(function(action, subject) {
  if (action.id == "org.fusegate.mount-kernel" && subject.user == "alice") return polkit.Result.YES;
});
EOF`);
    try {
      let r: ExecResult | undefined;
      for (let i = 0; i < 20; i++) {
        r = await inSession(c, 'alice', ['fusegate', 'mount', loop!.path, '/home/alice/mnt']);
        if (r.code === 0 || !r.stderr.includes('org.fusegate.mount-kernel')) break;
        await new Promise((res) => setTimeout(res, 500));
      }
      expect(r!.code, r!.stderr).toBe(0);
      const row = await findmnt(c, '/home/alice/mnt');
      expect(row).toMatchObject({ fstype: 'ext4' });
      expect(row!.source).toBe(loop!.path);
      expect(row!.options).toEqual(expect.arrayContaining(['nosuid', 'nodev']));
      expect(await utabOptions(c, '/home/alice/mnt')).toEqual(expect.arrayContaining([`x-fusegate.owner=${ALICE}`, 'x-fusegate.rule=trusted-kernel-image']));
      const u = await inSession(c, 'alice', ['fusegate', 'unmount', '/home/alice/mnt']);
      expect(u.code, u.stderr).toBe(0);
      expect(await findmnt(c, '/home/alice/mnt')).toBeNull();
    } finally {
      await c.shOk('rm -f /etc/polkit-1/rules.d/20-alice-kernel.rules');
      await c.sh('umount /home/alice/mnt 2>/dev/null; true');
    }
  });

  it('without a logind session the sandboxed mount needs an administrator (allow_any)', async () => {
    const c = e2e.container;
    const r = await noSession(c, 'alice', ['fusegate', 'mount', '/home/alice/alice.img', '/home/alice/mnt']);
    expect(r.code).toBe(32);
    expect(r.stderr).toContain('not authorized to mount it (polkit action org.fusegate.mount)');
    expect(await findmnt(c, '/home/alice/mnt')).toBeNull();
  });

  it('a polkit rule in /etc/polkit-1/rules.d that says no is honoured', async () => {
    const c = e2e.container;
    await c.shOk(`cat > /etc/polkit-1/rules.d/10-no-fusegate-alice.rules <<'EOF'
polkit.addRule(function(action, subject) {
  if (action.id == "org.fusegate.mount" && subject.user == "alice") return polkit.Result.NO;
});
EOF`);
    try {
      // polkitd re-reads rules.d when it changes; give it a moment.
      let r: ExecResult | undefined;
      for (let i = 0; i < 20; i++) {
        r = await inSession(c, 'alice', ['fusegate', 'mount', '/home/alice/alice.img', '/home/alice/mnt']);
        if (r.code !== 0) break;
        await inSession(c, 'alice', ['fusegate', 'unmount', '/home/alice/mnt']);
        await new Promise((res) => setTimeout(res, 500));
      }
      expect(r!.code).toBe(32);
      expect(r!.stderr).toContain('polkit action org.fusegate.mount');
      expect(await findmnt(c, '/home/alice/mnt')).toBeNull();
    } finally {
      await c.shOk('rm -f /etc/polkit-1/rules.d/10-no-fusegate-alice.rules');
    }
    // Without the rule the very same request is allowed again: it was the rule that said no.
    let ok: ExecResult | undefined;
    for (let i = 0; i < 20; i++) {
      ok = await inSession(c, 'alice', ['fusegate', 'mount', '/home/alice/alice.img', '/home/alice/mnt']);
      if (ok.code === 0) break;
      await new Promise((res) => setTimeout(res, 500));
    }
    expect(ok!.code, ok!.stderr).toBe(0);
    expect(await findmnt(c, '/home/alice/mnt')).toMatchObject({ fstype: 'fuse.fusegate-vfat' });
    expect((await inSession(c, 'alice', ['fusegate', 'unmount', '/home/alice/mnt'])).code).toBe(0);
    expect(await findmnt(c, '/home/alice/mnt')).toBeNull();
  });
  it('20 concurrent user mounts (10 FAT, 10 ext4) all succeed, each sandboxed and owned, and all unmount', async () => {
    const c = e2e.container;
    await c.execOk(['setpriv', '--reuid=alice', '--regid=alice', '--init-groups', '--', 'sh', '-c',
      'cd /home/alice && for i in $(seq 1 10); do mkfs.vfat -C -n FAT$i fat$i.img 4096 >/dev/null && truncate -s 8M ext$i.img && mkfs.ext4 -q -F -L EXT$i ext$i.img && mkdir -p m/fat$i m/ext$i || exit 1; done']);
    const t0 = Date.now();
    const r = await inSession(c, 'alice', ['sh', '-c',
      'cd /home/alice; pids=; for i in $(seq 1 10); do fusegate mount fat$i.img m/fat$i > out.fat$i 2>&1 & pids="$pids $!"; fusegate mount ext$i.img m/ext$i > out.ext$i 2>&1 & pids="$pids $!"; done; fail=0; for p in $pids; do wait $p || fail=$((fail+1)); done; cat out.*; echo failed=$fail'], 180_000);
    const mountMs = Date.now() - t0;
    expect(r.stdout, r.stderr).toContain('failed=0');
    const rows = (await c.execOk(['findmnt', '-rn', '-o', 'TARGET,FSTYPE'])).stdout.split('\n').filter((l) => l.startsWith('/home/alice/m/'));
    expect(rows.filter((l) => l.endsWith(' fuse.fusegate-vfat'))).toHaveLength(10);
    expect(rows.filter((l) => l.endsWith(' fuse.fuse2fs'))).toHaveLength(10);
    expect(await listUnits(c, 'fusegate-vfat@*')).toHaveLength(10);
    expect(await listUnits(c, 'fuse2fs@*')).toHaveLength(10);
    const owners = (await c.execOk(['grep', '-c', `x-fusegate.owner=${ALICE}`, '/run/mount/utab'])).stdout.trim();
    expect(Number(owners)).toBe(20);
    const t1 = Date.now();
    const u = await inSession(c, 'alice', ['sh', '-c',
      'cd /home/alice; pids=; for d in m/*; do fusegate unmount $d 2>&1 & pids="$pids $!"; done; fail=0; for p in $pids; do wait $p || fail=$((fail+1)); done; echo failed=$fail'], 180_000);
    const unmountMs = Date.now() - t1;
    expect(u.stdout, u.stderr).toContain('failed=0');
    expect((await c.execOk(['findmnt', '-rn', '-o', 'TARGET'])).stdout).not.toContain('/home/alice/m/');
    expect(await waitForNoUnits(c, 'fusegate-vfat@*', 20_000)).toEqual([]);
    expect(await waitForNoUnits(c, 'fuse2fs@*', 20_000)).toEqual([]);
    process.stderr.write(`broker e2e: 20 concurrent mounts in ${mountMs} ms, their unmounts in ${unmountMs} ms\n`);
  });

  it('the broker killed mid-mount leaves no mount and no instance', async () => {
    const c = e2e.container;
    // Hold the instance in its start so the kill lands mid-mount.
    await c.shOk('mkdir -p /etc/systemd/system/fusegate-vfat@.service.d && printf "[Service]\\nExecStartPre=/bin/sleep 4\\n" > /etc/systemd/system/fusegate-vfat@.service.d/slow.conf && systemctl daemon-reload');
    try {
      const pending = inSession(c, 'alice', ['fusegate', 'mount', '/home/alice/alice.img', '/home/alice/mnt']);
      expect(await waitForUnit(c, 'fusegate-vfat@*', ['activating'], 20_000)).not.toBeNull();
      const pid = (await c.execOk(['systemctl', 'show', '-p', 'MainPID', '--value', 'fusegate-broker.service'])).stdout.trim();
      expect(Number(pid)).toBeGreaterThan(0);
      await c.execOk(['kill', '-KILL', pid]);
      const r = await pending;
      expect(r.code).not.toBe(0);
      expect(await waitForNoUnits(c, 'fusegate-vfat@*', 20_000)).toEqual([]);
      expect(await findmnt(c, '/home/alice/mnt')).toBeNull();
      expect((await c.exec(['grep', '-q', '/home/alice/mnt', '/run/mount/utab'])).code).not.toBe(0);
      // Its workers went with it (the unit's cgroup), and the next call starts a new broker.
      // ([w]: not matching nsenter's own command line, which holds the pattern)
      expect((await c.exec(['pgrep', '-f', 'dist/broker/[w]orker'])).code).not.toBe(0);
    } finally {
      await c.shOk('rm -rf /etc/systemd/system/fusegate-vfat@.service.d && systemctl daemon-reload');
    }
    const again = await inSession(c, 'alice', ['fusegate', 'mount', '/home/alice/alice.img', '/home/alice/mnt']);
    expect(again.code, again.stderr).toBe(0);
    expect((await inSession(c, 'alice', ['fusegate', 'unmount', '/home/alice/mnt'])).code).toBe(0);
  });
  it("an /etc/fstab 'user' entry: mount(8) and umount(8) as alice go through the broker", async () => {
    const c = e2e.container;
    // A root-owned image alice cannot read: the administrator's fstab line is the grant.
    await c.shOk('mkfs.vfat -C -n SHARED /srv/shared.img 4096 >/dev/null && chmod 600 /srv/shared.img && mkdir -p /mnt/shared /mnt/private'
      + ' && echo "/srv/shared.img /mnt/shared fusegate user,noauto 0 0" >> /etc/fstab && echo "/srv/shared.img /mnt/private fusegate noauto 0 0" >> /etc/fstab');
    const m = await inSession(c, 'alice', ['mount', '/mnt/shared']);
    expect(m.code, m.stderr).toBe(0);
    const row = await findmnt(c, '/mnt/shared');
    expect(row).toMatchObject({ fstype: 'fuse.fusegate-vfat' });
    expect(row!.options).toEqual(expect.arrayContaining(['nosuid', 'nodev', 'noexec', `user_id=${ALICE}`]));
    expect(await utabOptions(c, '/mnt/shared')).toEqual(expect.arrayContaining([`x-fusegate.owner=${ALICE}`, 'user=alice']));
    const w = await inSession(c, 'alice', ['sh', '-c', 'touch /mnt/shared/x && stat -c %u /mnt/shared/x']);
    expect(w.stdout.trim(), w.stderr).toBe(String(ALICE));
    // bob may not take it away; alice's umount(8) goes back through the broker.
    const b = await inSession(c, 'bob', ['umount', '/mnt/shared']);
    expect(b.code).not.toBe(0);
    expect(await findmnt(c, '/mnt/shared')).not.toBeNull();
    const u = await inSession(c, 'alice', ['umount', '/mnt/shared']);
    expect(u.code, u.stderr).toBe(0);
    expect(await findmnt(c, '/mnt/shared')).toBeNull();
    // A line without 'user' stays root's.
    const p = await inSession(c, 'alice', ['mount', '/mnt/private']);
    expect(p.code).not.toBe(0);
    expect(await findmnt(c, '/mnt/private')).toBeNull();
  });
});
