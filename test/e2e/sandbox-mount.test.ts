/**
 * fusegate on a real systemd, as an administrator meets it: `fusegate
 * install`, then plain mount(8) on loop devices and fstab entries.
 *
 * - an ext4 loop device (untrusted by the default policy) is served by a
 *   fuse2fs@….service instance, read-only by default; after the
 *   administrator opts in to writing, data survives umount and remount;
 * - an fstab entry naming a trusted image's loop device by path gets the
 *   kernel's ext4 driver (root's image, in root-only directories);
 * - policy denials fail the mount with the policy's reason, in the journal;
 * - a service killed in the middle of a mount, or while serving, leaves no
 *   stale mount and no service instance;
 * - one structured journal decision entry per mount, with its rule;
 * - the running instance scores <= 0.2 in `systemd-analyze security`, and
 *   runs in fusegate.slice with its caps.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { type LoopDevice, attachLoop, e2eSkip, makeSparseFile } from './harness';
import { makeImage, sampleFiles } from './images';
import {
  addToRule,
  findmnt,
  journalCursor,
  journalSince,
  listUnits,
  prependRule,
  readPolicy,
  unitProperty,
  utabOptions,
  waitForJournal,
  waitForNoUnits,
  waitForUnit,
  writePolicy,
} from './scenario';
import { containerSuite, releaseHostSetup } from './suite';

const REPO = resolve(__dirname, '../..');
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe.skipIf(e2eSkip())('sandboxed mounts on a real systemd', () => {
  let scratch = '';
  const loops: Record<'data' | 'trusted' | 'minix' | 'quarantine', LoopDevice | undefined> = {
    data: undefined,
    trusted: undefined,
    minix: undefined,
    quarantine: undefined,
  };
  const dev = (k: keyof typeof loops): string => loops[k]!.path;
  let defaultPolicy = '';

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'fusegate-e2e-mount-'));
    await makeImage('ext4', join(scratch, 'data.img'), { scratch, label: 'FGDATA' });
    await makeImage('ext4', join(scratch, 'trusted.img'), { scratch, label: 'TRUSTED' });
    await makeImage('ext4', join(scratch, 'quarantine.img'), { scratch, label: 'QUARANTINE', empty: true, sizeMiB: 8 });
    makeSparseFile(join(scratch, 'minix.img'), 4);
    execFileSync('mkfs.minix', [join(scratch, 'minix.img')], { stdio: 'ignore' });
    for (const k of Object.keys(loops) as Array<keyof typeof loops>) loops[k] = await attachLoop(join(scratch, `${k}.img`));
  });
  releaseHostSetup(() => ({ suite: e2e, loops: Object.values(loops), scratch }));

  // The images are bound in at their host paths, read-only: the policy trusts
  // the fstab-listed loop device only after inspecting the file behind it
  // (root's, in root-only directories, the inode the loop device serves).
  const e2e = containerSuite(() => ({
    projectDir: REPO,
    devices: Object.values(loops).map((l) => l!.path),
    binds: [{ host: scratch, readOnly: true }],
  }));

  beforeAll(async () => {
    const c = e2e.container;
    await c.install();
    await c.execOk(['mkdir', '-p', '/mnt/data', '/mnt/other', '/srv/trusted']);
    defaultPolicy = await readPolicy(c);
  });

  it('mount(8) of an untrusted ext4 loop device goes through a sandboxed fuse2fs@ instance, read-only by default', async () => {
    const c = e2e.container;
    const m = await c.exec(['mount', dev('data'), '/mnt/data']);
    expect(m.code, m.stderr).toBe(0);

    const row = await findmnt(c, '/mnt/data');
    // A FUSE mount served by fuse2fs (fuse.fuse2fs, or fuseblk.fuse2fs should block devices become fuseblk mounts).
    expect(row).toMatchObject({ source: dev('data'), fstype: expect.stringMatching(/^fuse(blk)?\.fuse2fs$/) });
    // The safety default: Debian 12's fuse2fs cannot write the ext4 journal,
    // so the default policy mounts it read-only (docs/architecture.md §5).
    expect(row!.options).toContain('ro');
    expect(row!.options).toEqual(expect.arrayContaining(['nosuid', 'nodev']));
    expect(await utabOptions(c, '/mnt/data')).toEqual(
      expect.arrayContaining(['x-fusegate.backend=fuse2fs', 'x-fusegate.rule=images-and-loop-devices']),
    );

    const units = await listUnits(c, 'fuse2fs@*');
    expect(units).toHaveLength(1);
    expect(units[0]).toMatchObject({ load: 'loaded', active: 'active', sub: 'running' });
    // The adapter has become the FUSE server: no Node stays per mount.
    const pid = await unitProperty(c, units[0]!.unit, 'MainPID');
    expect((await c.execOk(['cat', `/proc/${pid}/comm`])).stdout.trim()).toBe('fuse2fs');
    // utab names the instance (umount.fusegate waits for it), and the outcome
    // entry names it and its real server, not whoever listened on the socket.
    expect(await utabOptions(c, '/mnt/data')).toContain(`x-fusegate.unit=${units[0]!.unit}`);
    const outcome = await c.execOk(['journalctl', '--no-pager', '-o', 'json', 'SYSLOG_IDENTIFIER=fusegate', 'FUSEGATE_OUTCOME=mounted', `FUSEGATE_UNIT=${units[0]!.unit}`]);
    const entry = JSON.parse(outcome.stdout.trim().split('\n').pop()!) as Record<string, string>;
    expect(entry.FUSEGATE_SERVER_PID).toBe(pid);

    for (const [rel, data] of sampleFiles()) {
      const r = await c.execOk(['sha256sum', `/mnt/data/${rel}`]);
      expect(r.stdout.split(' ')[0], rel).toBe(sha256(data));
    }
    const w = await c.exec(['sh', '-c', 'echo no > /mnt/data/new.txt']);
    expect(w.code).not.toBe(0);
    expect(w.stderr).toMatch(/Read-only file system/);

    await c.execOk(['umount', '/mnt/data']);
    expect(await findmnt(c, '/mnt/data')).toBeNull();
    expect(await waitForNoUnits(c, 'fuse2fs@*')).toEqual([]);
  });

  it('after the administrator opts in to writing, data written survives umount and a second mount', async () => {
    const c = e2e.container;
    await writePolicy(c, addToRule(defaultPolicy, 'images-and-loop-devices', ['allow_unsafe_write: true']));
    try {
      await c.execOk(['mount', dev('data'), '/mnt/data']);
      expect((await findmnt(c, '/mnt/data'))!.options).toContain('rw');
      await c.execOk([
        'sh',
        '-c',
        'set -e; mkdir -p /mnt/data/written/deeper; echo "written through the sandbox" > /mnt/data/written/deeper/hello.txt; ' +
          'head -c 1048576 /dev/urandom > /mnt/data/written/random.bin; sha256sum /mnt/data/written/random.bin > /root/random.sum; ' +
          'rm /mnt/data/README.TXT; sync',
      ]);
      await c.execOk(['umount', '/mnt/data']);
      expect(await findmnt(c, '/mnt/data')).toBeNull();
      expect(await waitForNoUnits(c, 'fuse2fs@*')).toEqual([]);

      await c.execOk(['mount', dev('data'), '/mnt/data']);
      expect((await c.execOk(['cat', '/mnt/data/written/deeper/hello.txt'])).stdout).toBe('written through the sandbox\n');
      await c.execOk(['sha256sum', '-c', '/root/random.sum']);
      expect((await c.exec(['test', '-e', '/mnt/data/README.TXT'])).code).not.toBe(0);
      expect((await c.execOk(['sha256sum', '/mnt/data/DATA.BIN'])).stdout.split(' ')[0]).toBe(sha256(sampleFiles().get('DATA.BIN')!));
      const units = await listUnits(c, 'fuse2fs@*');
      expect(units).toHaveLength(1);
      await c.execOk(['umount', '/mnt/data']);
      expect(await waitForNoUnits(c, 'fuse2fs@*')).toEqual([]);
    } finally {
      await c.exec(['umount', '/mnt/data']);
      await writePolicy(c, defaultPolicy);
    }
    // On the image itself, read on the host by e2fsprogs: the data is there and the filesystem is consistent.
    const cat = execFileSync('debugfs', ['-R', 'cat /written/deeper/hello.txt', loops.data!.image], { stdio: ['ignore', 'pipe', 'ignore'] });
    expect(cat.toString()).toBe('written through the sandbox\n');
    execFileSync('e2fsck', ['-fn', loops.data!.image], { stdio: 'pipe' });
  });

  it('an fstab entry for a trusted image gets the kernel driver; the same device elsewhere is sandboxed', async () => {
    const c = e2e.container;
    await c.execOk(['sh', '-c', `echo '${dev('trusted')} /srv/trusted ext4 defaults 0 2' >> /etc/fstab`]);
    const m = await c.exec(['mount', '/srv/trusted']);
    expect(m.code, m.stderr).toBe(0);
    const row = await findmnt(c, '/srv/trusted');
    expect(row).toMatchObject({ source: dev('trusted'), fstype: 'ext4' });
    expect(row!.options).toContain('rw');
    expect(await utabOptions(c, '/srv/trusted')).toContain('x-fusegate.rule=fstab-fixed-disks');
    expect(await listUnits(c, 'fuse2fs@*')).toEqual([]);
    await c.execOk(['sh', '-c', 'echo kernel-written > /srv/trusted/kernel.txt']);
    expect((await c.execOk(['cat', '/srv/trusted/DOCS/DEEP/LEAF.TXT'])).stdout).toBe('the deepest file\n');
    await c.execOk(['umount', '/srv/trusted']);
    expect(await findmnt(c, '/srv/trusted')).toBeNull();

    // fstab names the device *and* the mountpoint: elsewhere it is just a loop device.
    await c.execOk(['mount', dev('trusted'), '/mnt/other']);
    expect(await findmnt(c, '/mnt/other')).toMatchObject({ fstype: expect.stringMatching(/^fuse(blk)?\.fuse2fs$/) });
    expect((await c.execOk(['cat', '/mnt/other/kernel.txt'])).stdout).toBe('kernel-written\n');
    await c.execOk(['umount', '/mnt/other']);
    expect(await waitForNoUnits(c, 'fuse2fs@*')).toEqual([]);
  });

  it('policy deny: a filesystem fusegate cannot sandbox is refused, with the reason on stderr and in the journal', async () => {
    const c = e2e.container;
    const cursor = await journalCursor(c);
    const m = await c.exec(['mount', dev('minix'), '/mnt/other']);
    expect(m.code).toBe(32);
    expect(m.stderr).toMatch(
      /refused by rule 'no-sandbox-for-removable': fusegate has no sandboxed driver for this filesystem and does not give removable media or images to the kernel/,
    );
    expect(m.stderr).toMatch(new RegExp(`to see why: fusegate policy explain ${dev('minix')} /mnt/other`));
    expect(await findmnt(c, '/mnt/other')).toBeNull();
    expect(await listUnits(c, '*@*-*-*.service')).toEqual([]);

    const entries = await waitForJournal(c, cursor, ['SYSLOG_IDENTIFIER=fusegate', `FUSEGATE_SOURCE=${dev('minix')}`], (es) => es.length >= 2);
    const decision = entries.filter((e) => e.MESSAGE?.startsWith('decision:'));
    expect(decision).toHaveLength(1);
    expect(decision[0]).toMatchObject({
      PRIORITY: '4',
      FUSEGATE_DECISION: 'deny',
      FUSEGATE_RULE: 'no-sandbox-for-removable',
      FUSEGATE_FSTYPE: 'minix',
      FUSEGATE_REASON: 'fusegate has no sandboxed driver for this filesystem and does not give removable media or images to the kernel',
    });
    expect(entries.filter((e) => e.FUSEGATE_OUTCOME === 'refused')).toHaveLength(1);
  });

  it("policy deny: an administrator's own deny rule refuses with its reason", async () => {
    const c = e2e.container;
    const reason = 'this stick is quarantined by the IT department (ticket 4711)';
    await writePolicy(
      c,
      prependRule(defaultPolicy, [
        '  - name: quarantined-sticks',
        '    match: { label: QUARANTINE }',
        '    action: deny',
        `    reason: ${reason}`,
      ]),
    );
    try {
      const cursor = await journalCursor(c);
      const m = await c.exec(['mount', dev('quarantine'), '/mnt/other']);
      expect(m.code).toBe(32);
      expect(m.stderr).toContain(`refused by rule 'quarantined-sticks': ${reason}`);
      expect(await findmnt(c, '/mnt/other')).toBeNull();
      const entries = await waitForJournal(c, cursor, ['SYSLOG_IDENTIFIER=fusegate', 'FUSEGATE_RULE=quarantined-sticks'], (es) => es.length >= 2);
      const decision = entries.filter((e) => e.MESSAGE?.startsWith('decision:'));
      expect(decision).toHaveLength(1);
      expect(decision[0]).toMatchObject({ FUSEGATE_DECISION: 'deny', FUSEGATE_REASON: reason, FUSEGATE_SOURCE: dev('quarantine') });
      // Other devices are not affected by the new rule.
      await c.execOk(['mount', dev('data'), '/mnt/data']);
      await c.execOk(['umount', '/mnt/data']);
    } finally {
      await writePolicy(c, defaultPolicy);
    }
    expect(await waitForNoUnits(c, 'fuse2fs@*')).toEqual([]);
  });

  it('the service killed in the middle of a mount: mount fails at once, no stale mount, no instance left', async () => {
    const c = e2e.container;
    // Test-only: make the service slow to start, so it can be killed while activating.
    await c.execOk(['mkdir', '-p', '/etc/systemd/system/fuse2fs@.service.d']);
    await c.execOk(['sh', '-c', 'printf "[Service]\\nExecStartPre=/bin/sleep 5\\n" > /etc/systemd/system/fuse2fs@.service.d/slow.conf']);
    await c.execOk(['systemctl', 'daemon-reload']);
    try {
      const t0 = Date.now();
      const mount = c.exec(['mount', dev('data'), '/mnt/data'], { env: { FUSEGATE_TIMEOUT: '20' }, timeoutMs: 40_000 });
      const unit = await waitForUnit(c, 'fuse2fs@*', ['activating'], 5_000);
      expect(unit, 'no fuse2fs@ instance activating').not.toBeNull();
      const tKill = Date.now();
      await c.execOk(['systemctl', 'kill', '--signal=KILL', unit!.unit]);
      const m = await mount;
      const afterKill = Date.now() - tKill;
      expect(m.timedOut).toBe(false);
      expect(m.code).toBe(32);
      expect(m.stderr).toMatch(/server closed the connection/);
      // Well within its timeout (20 s) and before the slow start would have finished.
      expect(afterKill).toBeLessThan(3_000);
      expect(Date.now() - t0).toBeLessThan(5_000);
      expect(await findmnt(c, '/mnt/data')).toBeNull();
      expect(await waitForNoUnits(c, 'fuse2fs@*', 5_000)).toEqual([]);
    } finally {
      await c.execOk(['rm', '-rf', '/etc/systemd/system/fuse2fs@.service.d']);
      await c.execOk(['systemctl', 'daemon-reload']);
    }
  });

  it('a service that does not answer: mount gives up at its timeout, and the instance goes once it notices', async () => {
    const c = e2e.container;
    await c.execOk(['mkdir', '-p', '/etc/systemd/system/fuse2fs@.service.d']);
    await c.execOk(['sh', '-c', 'printf "[Service]\\nExecStartPre=/bin/sleep 4\\n" > /etc/systemd/system/fuse2fs@.service.d/slow.conf']);
    await c.execOk(['systemctl', 'daemon-reload']);
    try {
      const t0 = Date.now();
      const m = await c.exec(['mount', dev('data'), '/mnt/data'], { env: { FUSEGATE_TIMEOUT: '2' }, timeoutMs: 30_000 });
      const took = Date.now() - t0;
      expect(m.code).toBe(32);
      expect(m.stderr).toMatch(/timeout/);
      expect(took).toBeGreaterThanOrEqual(1_900);
      expect(took).toBeLessThan(3_500);
      expect(await findmnt(c, '/mnt/data')).toBeNull();
      // The adapter starts after the slow ExecStartPre, finds the helper gone and exits.
      expect(await waitForNoUnits(c, 'fuse2fs@*', 10_000)).toEqual([]);
    } finally {
      await c.execOk(['rm', '-rf', '/etc/systemd/system/fuse2fs@.service.d']);
      await c.execOk(['systemctl', 'daemon-reload']);
    }
  });

  it('the FUSE server killed while serving: the mount answers ENOTCONN, umount cleans it up, no instance left', async () => {
    const c = e2e.container;
    await c.execOk(['mount', dev('data'), '/mnt/data']);
    const unit = (await listUnits(c, 'fuse2fs@*'))[0]!;
    expect(unit.active).toBe('active');
    await c.execOk(['systemctl', 'kill', '--signal=KILL', unit.unit]);
    expect(await waitForNoUnits(c, 'fuse2fs@*', 5_000)).toEqual([]);
    const ls = await c.exec(['ls', '/mnt/data']);
    expect(ls.code).not.toBe(0);
    expect(ls.stderr).toMatch(/Transport endpoint is not connected/);
    const u = await c.exec(['umount', '/mnt/data']);
    expect(u.code, u.stderr).toBe(0);
    expect(await findmnt(c, '/mnt/data')).toBeNull();
    // The next mount of the same device works again.
    await c.execOk(['mount', dev('data'), '/mnt/data']);
    await c.execOk(['test', '-f', '/mnt/data/DATA.BIN']);
    await c.execOk(['umount', '/mnt/data']);
    expect(await waitForNoUnits(c, 'fuse2fs@*')).toEqual([]);
  });

  it('the journal holds one structured decision entry per mount, findable by rule', async () => {
    const c = e2e.container;
    const cursor = await journalCursor(c);
    for (let i = 0; i < 2; i++) {
      await c.execOk(['mount', dev('data'), '/mnt/data']);
      await c.execOk(['umount', '/mnt/data']);
    }
    await c.execOk(['mount', '/srv/trusted']);
    await c.execOk(['umount', '/srv/trusted']);
    expect((await c.exec(['mount', dev('minix'), '/mnt/other'])).code).toBe(32);

    const expected: Array<[string, number, string, string]> = [
      ['images-and-loop-devices', 2, 'fuse', dev('data')],
      ['fstab-fixed-disks', 1, 'kernel', dev('trusted')],
      ['no-sandbox-for-removable', 1, 'deny', dev('minix')],
    ];
    for (const [rule, count, action, source] of expected) {
      // A decision and an outcome per mount.
      const entries = await waitForJournal(c, cursor, ['SYSLOG_IDENTIFIER=fusegate', `FUSEGATE_RULE=${rule}`], (es) => es.length >= 2 * count);
      const decisions = entries.filter((e) => e.MESSAGE?.startsWith('decision:'));
      expect(decisions, rule).toHaveLength(count);
      for (const d of decisions) {
        expect(d).toMatchObject({ FUSEGATE_RULE: rule, FUSEGATE_DECISION: action, FUSEGATE_SOURCE: source, FUSEGATE_CALLER_UID: '0' });
        expect(d.FUSEGATE_MOUNTPOINT).toMatch(/^\/(mnt|srv)\//);
        expect(d.FUSEGATE_FSTYPE).toMatch(/^(ext4|minix)$/);
        expect(d.MESSAGE).toContain(rule);
      }
      const outcomes = entries.filter((e) => e.FUSEGATE_OUTCOME !== undefined);
      expect(outcomes.map((e) => e.FUSEGATE_OUTCOME)).toEqual(Array(count).fill(action === 'deny' ? 'refused' : 'mounted'));
    }
    // What an administrator types finds the same decisions (the whole journal, no cursor).
    for (const [rule] of expected) {
      const r = await c.exec(['journalctl', '--no-pager', '-o', 'json', 'SYSLOG_IDENTIFIER=fusegate', `FUSEGATE_RULE=${rule}`]);
      const typed = r.stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, string>);
      const all = await journalSince(c, '', ['SYSLOG_IDENTIFIER=fusegate', `FUSEGATE_RULE=${rule}`]);
      expect(typed.filter((e) => e.MESSAGE?.startsWith('decision:')).length, rule).toBe(all.filter((e) => e.MESSAGE?.startsWith('decision:')).length);
      expect(typed.every((e) => e.FUSEGATE_RULE === rule)).toBe(true);
    }
    // Nothing else was decided meanwhile: one decision per mount attempt in all.
    await new Promise((r) => setTimeout(r, 500));
    const all = await journalSince(c, cursor, ['SYSLOG_IDENTIFIER=fusegate']);
    expect(all.filter((e) => e.MESSAGE?.startsWith('decision:'))).toHaveLength(4);
  });

  it('systemd-analyze security rates the running instance <= 0.2, and its process holds no privilege', async () => {
    const c = e2e.container;
    await c.execOk(['mount', dev('data'), '/mnt/data']);
    try {
      const unit = (await listUnits(c, 'fuse2fs@*'))[0]!.unit;
      const r = await c.execOk(['systemd-analyze', 'security', '--no-pager', unit]);
      const m = /Overall exposure level for (\S+): (\d+\.\d+) (\w+)/.exec(r.stdout);
      expect(m, r.stdout.slice(-2000)).not.toBeNull();
      expect(m![1]).toBe(unit);
      expect(Number(m![2])).toBeLessThanOrEqual(0.2);

      // The real server process: a throwaway uid, no capabilities, seccomp, no device nodes;
      // it reads the device only through the descriptor it was given.
      const pid = await unitProperty(c, unit, 'MainPID');
      const status = (await c.execOk(['cat', `/proc/${pid}/status`])).stdout;
      const field = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(status)?.[1]?.trim();
      const uid = Number(field('Uid')!.split(/\s+/)[0]);
      expect(uid).toBeGreaterThanOrEqual(61184);
      expect(uid).toBeLessThanOrEqual(65519);
      expect(field('CapEff')).toBe('0000000000000000');
      expect(field('CapBnd')).toBe('0000000000000000');
      expect(field('NoNewPrivs')).toBe('1');
      expect(field('Seccomp')).toBe('2');
      // Every instance runs in fusegate.slice, whose caps bound all of them together.
      expect(await unitProperty(c, unit, 'Slice')).toBe('fusegate.slice');
      expect((await c.execOk(['cat', `/proc/${pid}/cgroup`])).stdout).toContain(`/fusegate.slice/${unit}`);
      expect(await unitProperty(c, 'fusegate.slice', 'TasksMax')).toBe('512');
      expect(await unitProperty(c, 'fusegate.slice', 'MemoryMax')).toMatch(/^\d+$/); // 25% of RAM, in bytes
      expect(await unitProperty(c, unit, 'CPUQuotaPerSecUSec')).toBe('1s');
      expect((await c.execOk(['readlink', `/proc/${pid}/fd/4`])).stdout.trim()).toBe(dev('data'));
      const devs = (await c.execOk(['ls', `/proc/${pid}/root/dev`])).stdout.split('\n');
      expect(devs).not.toContain(dev('data').slice('/dev/'.length));
      expect(devs).not.toContain('fuse');
    } finally {
      await c.exec(['umount', '/mnt/data']);
    }
    expect(await waitForNoUnits(c, 'fuse2fs@*')).toEqual([]);
  });
});
