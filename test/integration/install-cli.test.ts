/**
 * The compiled `fusegate install / doctor / status / uninstall` as an
 * administrator runs them, into a temporary --root; and the installed tree
 * on its own: its helper, its CLI and its runtime modules work without the
 * checkout they came from.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS } from '../../lib/backends';

const PKG = path.resolve(__dirname, '../..');
const CLI = path.join(PKG, 'dist/bin/fusegate.js');
let root: string;

function fusegate(args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

beforeAll(() => {
  for (const f of ['dist/admin/install.js', 'dist/admin/doctor.js', 'dist/admin/status.js']) {
    if (!fs.existsSync(path.join(PKG, f))) throw new Error(`${f} missing: run 'npm run build' (npm test does)`);
  }
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-install-cli-'));
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describe('fusegate install, doctor, status and uninstall from the command line', () => {
  it('installs, then finds nothing to change', () => {
    const first = fusegate(['install', '--root', root]);
    expect(first.code, first.out + first.err).toBe(0);
    expect(first.out).toMatch(/^installed: mount\.fusegate /m);
    const second = fusegate(['install', '--root', root]);
    expect(second.code).toBe(0);
    expect(second.out).not.toMatch(/^(installed|removed|diverted):/m);
    expect(second.out).toMatch(/: \d+ unchanged\n/);
  });

  it('the installed tree runs on its own', () => {
    // Node resolves modules from the installed node_modules only: nothing above the temp root has any.
    const lib = path.join(root, 'usr/lib/fusegate');
    const check = spawnSync(process.execPath, [path.join(lib, 'dist/bin/fusegate.js'), 'policy', 'check', path.join(root, 'etc/fusegate/policy.yaml')], { encoding: 'utf8' });
    expect(check.status, check.stderr).toBe(0);
    expect(check.stdout).toMatch(/policy\.yaml: OK/);
    // The helper through its mount.fusegate link, as mount(8) runs it (the link is absolute: resolve it in the tree).
    // The link names the launcher, which runs the helper from the runtime library directory: here, the tree's.
    const helper = path.join(root, fs.readlinkSync(path.join(root, 'usr/sbin/mount.fusegate')));
    const version = spawnSync(helper, ['--version'], { encoding: 'utf8', env: { ...process.env, FUSEGATE_LIB_DIR: lib } });
    expect(version.stdout).toMatch(/^mount\.fusegate from fusegate \d/);
    const dbusNext = spawnSync(process.execPath, ['-e', `require(require.resolve('dbus-next', { paths: [${JSON.stringify(path.join(lib, 'dist/service'))}] })).systemBus`], { encoding: 'utf8' });
    expect(dbusNext.status, dbusNext.stderr).toBe(0);
  });

  it('doctor --root passes once the tree has its FUSE servers and node', () => {
    // Stand-ins for the servers that are binaries of their own (not a native
    // service's, not fusegate's in-process one, which is part of the tree).
    const servers = BACKENDS.filter((b) => b.delivery !== 'native-service' && b.delivery !== 'in-process');
    for (const b of servers) {
      fs.mkdirSync(path.join(root, path.dirname(b.binary)), { recursive: true });
      fs.writeFileSync(path.join(root, b.binary), '#!/bin/sh\n', { mode: 0o755 });
    }
    fs.writeFileSync(path.join(root, 'usr/bin/node'), '#!/bin/sh\n', { mode: 0o755 });
    const r = fusegate(['doctor', '--root', root]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/^ready: /m);
    const json = JSON.parse(fusegate(['doctor', '--root', root, '--json']).out) as { ok: boolean };
    expect(json.ok).toBe(true);
    for (const b of servers) fs.rmSync(path.join(root, b.binary), { force: true });
    fs.rmSync(path.join(root, 'usr/bin/node'));
  });

  it('status runs without systemd and prints valid JSON', () => {
    const r = fusegate(['status', '--json'], { DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${root}/no-bus` });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ systemd: { available: false } });
  });

  it('uninstall --purge leaves the root empty again', () => {
    // Directories the test itself made for the stand-ins go first, so the tree holds only what install made.
    for (const d of ['usr/bin', 'usr/sbin']) {
      for (const f of fs.readdirSync(path.join(root, d))) {
        const p = path.join(root, d, f);
        if (!fs.lstatSync(p).isSymbolicLink()) fs.rmSync(p);
      }
    }
    const r = fusegate(['uninstall', '--root', root, '--purge']);
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toMatch(/^removed: program /m);
    expect(fs.readdirSync(root)).toEqual([]);
  });

  it('usage errors exit 1', () => {
    expect(fusegate(['install', '--nope']).code).toBe(1);
    expect(fusegate(['doctor', '--nope']).code).toBe(1);
    expect(fusegate(['status', '--nope']).code).toBe(1);
  });
});
