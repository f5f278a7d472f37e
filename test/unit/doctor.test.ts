/**
 * `fusegate doctor --root`: against a fresh install tree (with stand-in FUSE
 * servers and node) every check passes; against an empty tree each missing
 * piece is a FAIL line with its fix. The checks of the running machine are
 * skipped with --root, so these results do not depend on this host.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS } from '../../lib/backends';
import { main, runDoctor, type Check } from '../../admin/doctor';
import { install } from '../../admin/install';
import { adaptedBackends } from '../../admin/units';

const temps: string[] = [];
function tempRoot(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-doctor-'));
  temps.push(d);
  return d;
}

function run(args: string[]): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const code = main(args, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

const quiet = { out: () => {}, err: () => {} };

function putExecutable(root: string, p: string): void {
  fs.mkdirSync(path.join(root, path.dirname(p)), { recursive: true });
  fs.writeFileSync(path.join(root, p), '#!/bin/sh\n', { mode: 0o755 });
}

afterAll(() => {
  for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
});

describe('fusegate doctor --root on a complete install', () => {
  let root: string;
  let checks: Check[];

  beforeAll(() => {
    root = tempRoot();
    expect(install({ root, takeOver: false, dryRun: false, node: '/usr/bin/node' }, quiet)).toBe(0);
    // The tree's own FUSE servers and node, as the distribution would provide them.
    for (const b of BACKENDS) if (b.delivery !== 'native-service') putExecutable(root, b.binary);
    putExecutable(root, '/usr/bin/node');
    checks = runDoctor(root);
  });

  it('skips the checks of the running machine', () => {
    const names = checks.map((c) => c.name);
    for (const runtime of ['root', '/dev/fuse', 'kernel', 'node', 'systemd']) expect(names).not.toContain(runtime);
  });

  it('passes every check, with fuse4fs reported as optional', () => {
    const notOk = checks.filter((c) => c.status !== 'ok');
    expect(notOk).toEqual([expect.objectContaining({ status: 'info', name: 'backend fuse4fs', detail: expect.stringMatching(/^not installed/) })]);
    const ok = checks.map((c) => c.name);
    for (const n of ['native addon', 'preload library', 'mount.fusegate', 'service adapter', 'policy', 'mount.TYPE links', ...adaptedBackends().map((b) => `units ${b.name}`)]) {
      expect(ok).toContain(n);
    }
  });

  it('prints ok lines and exits 0', () => {
    const r = run(['--root', root]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/^checking the install tree .* \(checks of the running machine skipped\)$/m);
    expect(r.out).toMatch(/^ok {4}native addon: .* loads and makes a SOCK_SEQPACKET pair$/m);
    expect(r.out).toMatch(/^ok {4}mount\.fusegate: .*\/usr\/sbin\/mount\.fusegate -> \/usr\/lib\/fusegate\/helper\/mount-launcher\.sh -> \/usr\/lib\/fusegate\/dist\/helper\/mount\.fusegate\.js$/m);
    expect(r.out).toMatch(/^ok {4}units fusefat: fusefat\.socket, fusefat@\.service: installed, enabled$/m);
    expect(r.out).toMatch(/^info  backend fuse4fs: not installed/m);
    expect(r.out).toMatch(/^ok {4}backend fusegate-vfat: built in: \/usr\/lib\/fusegate\/dist\/sandbox\/adapter-start\.js serves vfat in-process$/m);
    expect(r.out).toMatch(/^ok {4}units fusegate-vfat: fusegate-vfat\.socket, fusegate-vfat@\.service: installed, enabled$/m);
    expect(r.out).toMatch(/^ready: \d+ ok, 0 warning\(s\), 0 failure\(s\)$/m);
  });

  it('notices a disabled socket, a missing server, a stale unit and a helper that is not ours', () => {
    const broken = tempRoot();
    expect(install({ root: broken, takeOver: false, dryRun: false, node: '/usr/bin/node' }, quiet)).toBe(0);
    putExecutable(broken, '/usr/bin/node');
    fs.unlinkSync(path.join(broken, 'etc/systemd/system/sockets.target.wants/fusefat.socket'));
    fs.appendFileSync(path.join(broken, 'etc/systemd/system/squashfuse@.service'), 'Environment=EDITED=1\n');
    fs.rmSync(path.join(broken, 'usr/sbin/mount.exfat'));
    fs.writeFileSync(path.join(broken, 'usr/sbin/mount.exfat'), '#!/bin/sh\n');
    fs.rmSync(path.join(broken, 'usr/sbin/mount.ext2'));
    fs.rmSync(path.join(broken, 'usr/sbin/mount.ext3'));
    const r = run(['--root', broken, '--json']);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.out) as { ok: boolean; failures: number; checks: Check[] };
    expect(report.ok).toBe(false);
    const find = (name: string) => report.checks.find((c) => c.name === name)!;
    expect(find('units fusefat')).toMatchObject({ status: 'FAIL', detail: expect.stringMatching(/fusefat\.socket is not enabled/), hint: 'systemctl enable --now fusefat.socket' });
    expect(find('units squashfuse')).toMatchObject({ status: 'warn', detail: expect.stringMatching(/differ from what this fusegate generates/) });
    expect(find('backend fusefat')).toMatchObject({ status: 'FAIL', hint: 'apt-get install fusefat' });
    expect(find('mount.exfat')).toMatchObject({ status: 'warn', hint: expect.stringMatching(/--take-over=exfat/) });
    expect(report.checks.find((c) => c.name === 'mount.TYPE links' && c.status === 'warn')).toMatchObject({
      detail: expect.stringMatching(/^mount\.ext2 mount\.ext3 missing from .*: mounts of these types do not go through fusegate$/),
      hint: 'run fusegate install',
    });
  });
});

describe('fusegate doctor --root on an empty tree', () => {
  it('fails each missing piece with a fix', () => {
    const root = tempRoot();
    const r = run(['--root', root]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^FAIL  native addon: .*fusegate_native\.node is missing\n {6}fix: run fusegate install$/m);
    expect(r.out).toMatch(/^FAIL  preload library: .*fdmap-preload\.so is missing\n {6}fix: run fusegate install/m);
    expect(r.out).toMatch(/^FAIL  mount\.fusegate: .*\/usr\/sbin\/mount\.fusegate is missing\n {6}fix: run fusegate install$/m);
    expect(r.out).toMatch(/^FAIL  policy: .*\/etc\/fusegate\/policy\.yaml is missing: mounts fail closed.*\n {6}fix: run fusegate install/m);
    expect(r.out).toMatch(/^FAIL  backend fuse2fs: \/usr\/bin\/fuse2fs is not installed.*\n {6}fix: apt-get install fuse2fs$/m);
    for (const b of adaptedBackends()) {
      expect(r.out).toMatch(new RegExp(`^FAIL  units ${b.name}: ${b.name}\\.socket, ${b.name}@\\.service missing from .*\\n {6}fix: run fusegate install$`, 'm'));
    }
    expect(r.out).toMatch(/^not ready: 0 ok, \d+ warning\(s\), \d+ failure\(s\)$/m);
  });

  it('shows the first diagnostics of a policy that does not load', () => {
    const root = tempRoot();
    fs.mkdirSync(path.join(root, 'etc/fusegate'), { recursive: true });
    fs.writeFileSync(path.join(root, 'etc/fusegate/policy.yaml'), 'version: 1\nrules:\n  - name: a\n    action: kernal\n');
    const c = runDoctor(root).find((x) => x.name === 'policy')!;
    expect(c.status).toBe('FAIL');
    expect(c.more?.[0]).toMatch(/policy\.yaml:4:\d+: error: .*kernal/);
    expect(c.hint).toMatch(/fusegate policy check/);
  });

  it('rejects unknown arguments and a missing root', () => {
    expect(run(['--frobnicate']).code).toBe(1);
    expect(run(['--root', '/nonexistent/fusegate-doctor']).code).toBe(1);
    expect(run(['--help'])).toMatchObject({ code: 0, out: expect.stringMatching(/^SYNOPSIS$/m) });
  });
});

describe('fusegate doctor on this machine', () => {
  it('runs the runtime checks and reports systemd honestly', () => {
    const checks = runDoctor('/');
    const names = checks.map((c) => c.name);
    for (const n of ['root', '/dev/fuse', 'kernel', 'node', 'systemd']) expect(names).toContain(n);
    const systemd = checks.find((c) => c.name === 'systemd')!;
    if (fs.existsSync('/run/systemd/system')) expect(systemd.status).toBe('ok');
    else expect(systemd).toMatchObject({ status: 'warn', detail: expect.stringMatching(/sandboxed mounts need systemd; kernel mounts still work/) });
    expect(checks.find((c) => c.name === 'node')!.status).toBe('ok');
  });
});
