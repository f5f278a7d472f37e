import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../policy/cli';
import type { FactEnv } from '../../policy/facts';

let dir: string;
let facts: FactEnv;
const DEFAULT_POLICY = path.resolve(__dirname, '../../policy/default-policy.yaml');

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { facts, out: (s) => { out += s; }, err: (s) => { err += s; } });
  return { code, out, err };
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-cli-'));
  fs.writeFileSync(path.join(dir, 'blkid'), '#!/bin/sh\necho TYPE=exfat\necho LABEL=CAMERA\necho UUID=1111-2222\n');
  fs.chmodSync(path.join(dir, 'blkid'), 0o755);
  fs.writeFileSync(path.join(dir, 'card.img'), '');
  fs.writeFileSync(path.join(dir, 'fstab'), '');
  fs.writeFileSync(path.join(dir, 'good.yaml'), 'version: 1\nrules:\n  - name: all\n    action: fuse\n    force_options: [nosuid]\n');
  fs.writeFileSync(path.join(dir, 'warn.yaml'), 'version: 1\nrules:\n  - name: t\n    match: { label: X }\n    action: kernel\n');
  fs.writeFileSync(path.join(dir, 'bad.yaml'), 'version: 1\nrules:\n  - name: a\n    action: kernal\n  - name: b\n    match: { bus: usbb }\n    action: fuse\n');
  facts = { blkid: path.join(dir, 'blkid'), fstab: path.join(dir, 'fstab') };
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('fusegate policy check', () => {
  it('exits 0 and says OK for a valid policy', async () => {
    const r = await run(['check', path.join(dir, 'good.yaml')]);
    expect(r.code).toBe(0);
    expect(r.out).toBe(`${dir}/good.yaml: OK\n`);
  });

  it('exits 0 with warnings listed', async () => {
    const r = await run(['check', path.join(dir, 'warn.yaml')]);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`${dir}/warn.yaml:3:5: warning: rule 't' trusts the kernel driver on UUID or label alone`);
    expect(r.out).toContain('OK (1 warning)');
  });

  it('exits 1 and lists every error with file:line:column and a hint', async () => {
    const r = await run(['check', path.join(dir, 'bad.yaml')]);
    expect(r.code).toBe(1);
    expect(r.out).toBe([
      `${dir}/bad.yaml:4:13: error: action must be one of kernel, fuse, deny; found "kernal"`,
      "    hint: did you mean 'kernel'?",
      `${dir}/bad.yaml:6:19: error: unknown bus 'usbb'`,
      "    hint: did you mean 'usb'? known: usb, mmc, memstick, ieee1394, thunderbolt, nvme, ata, virtio, xen, scsi, virtual, unknown",
      `${dir}/bad.yaml: 2 errors; the helper would fail closed with this policy`,
      '',
    ].join('\n'));
  });

  it('exits 1 for a missing file', async () => {
    const r = await run(['check', path.join(dir, 'missing.yaml')]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/missing\.yaml: error: cannot read the policy: ENOENT/);
  });

  it('--json gives the diagnostics to scripts', async () => {
    const r = await run(['check', '--json', path.join(dir, 'bad.yaml')]);
    const j = JSON.parse(r.out);
    expect(j.ok).toBe(false);
    expect(j.diagnostics.map((d: { line: number; column: number }) => [d.line, d.column])).toEqual([[4, 13], [6, 19]]);
  });

  it('checks the shipped default policy', async () => {
    expect((await run(['check', DEFAULT_POLICY])).code).toBe(0);
  });
});

describe('fusegate policy explain', () => {
  it('prints facts with sources, the rules tried and the decision', async () => {
    const r = await run(['explain', path.join(dir, 'card.img'), '/media/x', '-t', 'auto', '-o', 'rw,exec', '--uid', '0', '--policy', DEFAULT_POLICY]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Facts for .*card\.img on \/media\/x$/m);
    expect(r.out).toMatch(/^ {2}type +exfat +\[blkid -p\]$/m);
    expect(r.out).toMatch(/^ {2}kind +image +\[stat\(2\)\]$/m);
    expect(r.out).toMatch(/^ {2}bus +virtual +\[regular file: an image has no bus\]$/m);
    expect(r.out).toMatch(/^ {2}no {5}fstab-fixed-disks \(line \d+\)\n {11}match\[0\] fstab: false does not match true$/m);
    // the trust facts, each with where it came from
    expect(r.out).toMatch(/^ {2}fixed_disk +false +\[an image file is not a disk\]$/m);
    expect(r.out).toMatch(/^ {2}fstab_match +\(none\) +\[.*fstab: no line names this source and mountpoint\]$/m);
    expect(r.out).toMatch(/^ {2}image_owner +0\(root\) +\[fstat\(2\) of .*card\.img \(the inode stat\(2\) of the source reports\), name from \/etc\/passwd\]$/m);
    expect(r.out).toMatch(/^ {2}image_mode +0644 +\[fstat\(2\) of .*card\.img/m);
    expect(r.out).toMatch(/^ {2}image_root_only +true +\[fstat\(2\) of .*card\.img .*owner root, mode 0644, every directory above root's alone\]$/m);
    expect(r.out).toMatch(/^ {2}MATCH {2}images-and-loop-devices \(line \d+\)$/m);
    expect(r.out).toContain('(1 later rule not tried)');
    expect(r.out).toMatch(/^ {2}action +FUSE$/m);
    expect(r.out).toMatch(/^ {2}backends +exfat-fuse \(read-write\)$/m);
    expect(r.out).toMatch(/^ {2}mount -o +rw,exec,nosuid,nodev \(through exfat-fuse, the first choice\)$/m);
  });

  it('--json gives facts, trace and decision to scripts', async () => {
    const r = await run(['explain', path.join(dir, 'card.img'), '--json', '--policy', path.join(dir, 'good.yaml'), '--uid', '1000', '--gid', '100', '--groups', '6,7']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.facts.type).toEqual({ value: 'exfat', source: 'blkid -p' });
    expect(j.facts.user.value.id).toBe(1000);
    expect(j.facts.groups.value.map((g: { id: number }) => g.id)).toEqual([100, 6, 7]);
    expect(j.decision).toMatchObject({ action: 'fuse', rule: 'all', backends: ['exfat-fuse'], finalOptions: ['nosuid', 'nodev'] });
    expect(j.decision.trace).toEqual([{ rule: 'all', line: 3, matched: true, why: ['no match keys: matches every request'] }]);
    expect(j.policy).toEqual({ file: path.join(dir, 'good.yaml'), rules: 1, failClosed: null });
  });

  it('--session shows what a user in such a session would get through the broker', async () => {
    const r = await run(['explain', path.join(dir, 'card.img'), '--json', '--policy', path.join(dir, 'good.yaml'), '--uid', '1000', '--session', 'active']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).facts.session).toEqual({ value: 'active', source: 'logind, asked by the broker' });
    const without = await run(['explain', path.join(dir, 'card.img'), '--json', '--policy', path.join(dir, 'good.yaml')]);
    expect(JSON.parse(without.out).facts.session).toEqual({ value: null, source: 'not known: not a broker request' });
    const bad = await run(['explain', path.join(dir, 'card.img'), '--session', 'local']);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('--session takes one of active, inactive, remote, none');
  });

  it('with a broken policy shows the fail-closed decision and exits 1', async () => {
    const r = await run(['explain', path.join(dir, 'card.img'), '/mnt', '--policy', path.join(dir, 'bad.yaml')]);
    expect(r.code).toBe(1);
    expect(r.out).toContain('the real policy could not be loaded, so the helper fails closed');
    expect(r.out).toContain(`${dir}/bad.yaml:4:13: error: action must be one of kernel, fuse, deny`);
    expect(r.out).toMatch(/^ {2}action +DENY$/m);
    expect(r.out).toMatch(/fusegate fails closed and only mounts fixed internal disks listed in \/etc\/fstab/);
  });

  it.each([
    [['explain'], /explain takes SOURCE and optionally MOUNTPOINT/],
    [['explain', 'a', 'b', 'c'], /explain takes SOURCE and optionally MOUNTPOINT/],
    [['explain', 'a', '--uid', 'bob'], /--uid takes a number/],
    [['explain', 'a', '-o'], /-o needs a value/],
    [['explain', 'a', '--frobnicate'], /unknown option '--frobnicate'/],
    [['check', 'a', 'b'], /check takes at most one FILE/],
    [['frob'], /unknown policy command 'frob'/],
  ])('usage error %j exits 1', async (args, message) => {
    const r = await run(args);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(message);
  });
});

describe('help', () => {
  it('is a man page', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    for (const section of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'EXIT STATUS', 'FILES', 'ENVIRONMENT', 'EXAMPLES']) {
      expect(r.out).toMatch(new RegExp(`^${section}$`, 'm'));
    }
    expect(r.out).toContain('fusegate policy explain SOURCE [MOUNTPOINT] [-t TYPE] [-o OPTIONS]');
  });

  it('without a command prints usage to stderr and exits 1', async () => {
    const r = await run([]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('SYNOPSIS');
  });
});
