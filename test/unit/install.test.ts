/**
 * `fusegate install` / `uninstall` into temporary --root trees: what lands
 * where, that a second install changes nothing, that helpers fusegate did not
 * install are left alone (or diverted and restored with --take-over), that
 * an administrator's policy is kept, and that uninstall leaves the tree as
 * it found it. Installs from this checkout, so dist/ must be built.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { install, installMain, uninstall, uninstallMain, type InstallOptions } from '../../admin/install';
import { readManifest } from '../../admin/manifest';
import { Layout } from '../../admin/paths';
import { allUnits, adaptedBackends } from '../../admin/units';
import { HELPER_LAZY_BUNDLES } from '../../admin/install-program';
const ROOT = path.resolve(__dirname, '../..');
import { brokerSharedFiles, brokerUnit } from '../../broker/files';

const PKG = path.resolve(__dirname, '../..');
const LIB = '/usr/lib/fusegate';
// mount(8)'s entry points run the launcher, which runs the Node helper (or fails closed without it).
const HELPER = `${LIB}/helper/mount-launcher.sh`;
const DEFAULT_POLICY = fs.readFileSync(path.join(PKG, 'policy/default-policy.yaml'), 'utf8');
const INTERCEPT = /^intercept: \[(.*)\]$/m.exec(DEFAULT_POLICY)![1]!.split(',').map((s) => s.trim());

const temps: string[] = [];
function tempRoot(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-install-'));
  temps.push(d);
  return d;
}

interface Run {
  code: number;
  out: string;
  err: string;
  lines: string[];
}

function capture(fn: (io: { out(s: string): void; err(s: string): void }) => number): Run {
  let out = '';
  let err = '';
  const code = fn({ out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err, lines: out.split('\n').filter((l) => l !== '') };
}

const doInstall = (root: string, o: Partial<InstallOptions> = {}) =>
  capture((io) => install({ root, takeOver: false, dryRun: false, node: '/usr/bin/node', ...o }, io));
const doUninstall = (root: string, purge = false) => capture((io) => uninstall({ root, purge, dryRun: false }, io));

/** Every path under root with its type, mode, link target or content hash, and (for files) mtime. */
function snapshot(root: string, withMtimes = true): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = `${rel}/${name}`;
      const st = fs.lstatSync(path.join(root, r));
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out[r] = `link ${fs.readlinkSync(path.join(root, r))}`;
      else if (st.isDirectory()) {
        out[r] = `dir ${mode}`;
        walk(r);
      } else {
        const hash = createHash('sha256').update(fs.readFileSync(path.join(root, r))).digest('hex').slice(0, 16);
        out[r] = `file ${mode} ${hash}${withMtimes ? ` ${st.mtimeMs}` : ''}`;
      }
    }
  };
  walk('');
  return out;
}

beforeAll(() => {
  if (!fs.existsSync(path.join(PKG, 'dist/helper/mount.fusegate.js'))) throw new Error("dist/ is not built: run 'npm run build' (npm test does)");
});

afterAll(() => {
  for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
});

describe('fusegate install into an empty root', () => {
  let root: string;
  let first: Run;

  beforeAll(() => {
    root = tempRoot();
    first = doInstall(root);
  });

  it('succeeds and reports each item installed', () => {
    expect(first.code, first.out + first.err).toBe(0);
    expect(first.lines.filter((l) => /^\w+:/.test(l) && !l.startsWith('check the result')).every((l) => /^(installed|note):/.test(l) || l.startsWith('fusegate '))).toBe(true);
    expect(first.out).toMatch(/^installed: program .*\/usr\/lib\/fusegate \(\d+ files\)$/m);
    expect(first.out).toMatch(/^installed: preload library .*fdmap-preload\.so$/m);
    expect(first.out).toMatch(/^installed: default policy .*\/etc\/fusegate\/policy\.yaml$/m);
    expect(first.lines.at(-2)).toMatch(/^fusegate \d+\.\d+\.\d+ install into .*: \d+ installed$/);
  });

  it('copies the program, the native objects and only the runtime node modules', () => {
    const lib = path.join(root, LIB);
    for (const rel of ['package.json', 'dist/bin/fusegate.js', 'dist/sandbox/adapter.js', 'dist/sandbox/launch.js', 'build/Release/fusegate_native.node',
      'build/Release/fdmap-preload.so', 'policy/default-policy.yaml', 'node_modules/yaml/package.json', 'node_modules/dbus-next/package.json']) {
      expect(fs.existsSync(path.join(lib, rel)), rel).toBe(true);
    }
    expect(fs.readFileSync(path.join(lib, 'build/Release/fdmap-preload.so')).equals(fs.readFileSync(path.join(PKG, 'build/Release/fdmap-preload.so')))).toBe(true);
    // dbus-next's own dependencies come along; build and test tools do not.
    expect(fs.existsSync(path.join(lib, 'node_modules/xml2js/package.json'))).toBe(true);
    for (const dev of ['typescript', 'vitest', '@types', 'vite']) expect(fs.existsSync(path.join(lib, 'node_modules', dev)), dev).toBe(false);
    expect(fs.existsSync(path.join(lib, 'dist/bench'))).toBe(false);
    for (const exe of ['dist/helper/mount.fusegate.js', 'dist/helper/umount.fusegate.js', 'dist/sandbox/adapter-start.js', 'dist/bin/fusegate.js']) {
      expect(fs.statSync(path.join(lib, exe)).mode & 0o777, exe).toBe(0o755);
      // env node, the loaders with -S -u VAR … to drop variables that slow Node's start.
      expect(fs.readFileSync(path.join(lib, exe), 'utf8'), exe).toMatch(/^#!\/usr\/bin\/env (-S (-u \w+ )+)?node\n/);
    }
    // The bundles the loaders run, with their code caches.
    for (const f of ['dist/helper/mount.fusegate.bundle.js', 'dist/helper/umount.fusegate.bundle.js', 'dist/sandbox/adapter-start.bundle.js']) {
      expect(fs.existsSync(path.join(lib, f)), f).toBe(true);
    }
    // The helper's lazy parts: every one the build wrote is installed, with its cache, and named in HELPER_LAZY_BUNDLES
    // (what a build must have and doctor checks).
    const built = fs.readdirSync(path.join(ROOT, 'dist/helper')).filter((f) => f.endsWith('.bundle.js') && !/^u?mount\.fusegate\./.test(f));
    expect(built.sort()).toEqual([...HELPER_LAZY_BUNDLES].sort());
    for (const f of built) for (const g of [f, f + '.cache']) expect(fs.existsSync(path.join(lib, 'dist/helper', g)), g).toBe(true);
  });

  it('links mount.fusegate, the command and one mount.TYPE per intercepted type into the program', () => {
    expect(fs.readlinkSync(path.join(root, 'usr/sbin/mount.fusegate'))).toBe(HELPER);
    // umount(8) runs it for mounts whose utab entry says helper=fusegate.
    expect(fs.readlinkSync(path.join(root, 'usr/sbin/umount.fusegate'))).toBe(`${LIB}/dist/helper/umount.fusegate.js`);
    expect(fs.readlinkSync(path.join(root, 'usr/bin/fusegate'))).toBe(`${LIB}/dist/bin/fusegate.js`);
    for (const t of INTERCEPT) expect(fs.readlinkSync(path.join(root, `usr/sbin/mount.${t}`)), t).toBe(HELPER);
  });

  it('writes the generated units and enables every socket the way systemctl enable does', () => {
    const units = allUnits({ libDir: LIB, node: '/usr/bin/node', socketDir: '/run/filesystems' });
    for (const u of units) expect(fs.readFileSync(path.join(root, 'etc/systemd/system', u.name), 'utf8'), u.name).toBe(u.text);
    for (const b of adaptedBackends()) {
      expect(fs.readlinkSync(path.join(root, `etc/systemd/system/sockets.target.wants/${b.name}.socket`))).toBe(`/etc/systemd/system/${b.name}.socket`);
    }
  });

  it('installs the broker: its bus policy, activation file, unit and polkit actions (nothing enabled: the bus starts it)', () => {
    for (const f of brokerSharedFiles()) expect(fs.readFileSync(path.join(root, f.path), 'utf8'), f.path).toBe(f.text);
    expect(fs.readFileSync(path.join(root, 'etc/systemd/system/fusegate-broker.service'), 'utf8')).toBe(brokerUnit({ libDir: LIB, node: '/usr/bin/node' }));
    expect(first.out).toMatch(/^installed: broker .*fusegate-broker\.service /m);
    for (const rel of ['dist/broker/service.js', 'dist/broker/worker.js', 'dist/broker/fstab-forward.js', 'dist/lib/dbus/fd-stream.js']) {
      expect(fs.existsSync(path.join(root, LIB, rel)), rel).toBe(true);
    }
  });

  it('installs the default policy', () => {
    expect(fs.readFileSync(path.join(root, 'etc/fusegate/policy.yaml'), 'utf8')).toBe(DEFAULT_POLICY);
  });

  it('records exactly what it created in the manifest', () => {
    const m = readManifest(new Layout(root))!;
    expect(m.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(m.diversions).toEqual([]);
    expect(m.config).toEqual(['/etc/fusegate/policy.yaml']);
    // Every file and link in the tree is on record, and nothing else.
    const inTree = Object.entries(snapshot(root, false)).filter(([, v]) => !v.startsWith('dir')).map(([p]) => p).sort();
    const recorded = [...m.files, ...m.symlinks.map((s) => s.path), ...m.config, `${LIB}/install-manifest.json`].sort();
    expect(recorded).toEqual(inTree);
    const dirs = Object.entries(snapshot(root, false)).filter(([, v]) => v.startsWith('dir')).map(([p]) => p).sort();
    expect([...m.dirs].sort()).toEqual(dirs);
  });

  it('is idempotent: a second run reports everything unchanged and writes nothing', () => {
    const before = snapshot(root);
    const again = doInstall(root);
    expect(again.code).toBe(0);
    const items = again.lines.filter((l) => /^[a-z]+: /.test(l) && !l.startsWith('check the result'));
    expect(items.length).toBeGreaterThan(10);
    for (const l of items) expect(l).toMatch(/^unchanged: /);
    expect(again.lines.at(-2)).toMatch(/: \d+ unchanged$/);
    expect(snapshot(root)).toEqual(before);
  });

  it('removes files of the previous install that are no longer shipped', () => {
    const layout = new Layout(root);
    const m = readManifest(layout)!;
    const stale = `${LIB}/dist/obsolete.js`;
    fs.writeFileSync(path.join(root, stale), '// old\n');
    m.files.push(stale);
    fs.writeFileSync(path.join(root, `${LIB}/install-manifest.json`), JSON.stringify(m));
    const r = doInstall(root);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^removed: 1 file\(s\) of the previous install no longer shipped$/m);
    expect(fs.existsSync(path.join(root, stale))).toBe(false);
    expect(readManifest(layout)!.files).not.toContain(stale);
  });

  it('uninstall removes everything, keeping the policy unless --purge', () => {
    const r = doUninstall(root);
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toMatch(/^kept: policy .*\(uninstall --purge removes it\)$/m);
    expect(Object.keys(snapshot(root, false)).sort()).toEqual(['/etc', '/etc/fusegate', '/etc/fusegate/policy.yaml']);
    // The manifest is gone; --purge still takes the kept policy away.
    const p = doUninstall(root, true);
    expect(p.code).toBe(0);
    expect(p.out).toMatch(/^removed: policy /m);
    expect(fs.existsSync(path.join(root, 'etc/fusegate'))).toBe(false);
  });
});

describe('helpers and configuration fusegate did not install', () => {
  let root: string;
  let before: Record<string, string>;
  const ntfsHelper = '#!/bin/sh\n# the distribution helper\nexec /bin/ntfs-3g "$@"\n';

  beforeAll(() => {
    root = tempRoot();
    // A merged-usr tree with a distribution's helpers and some unrelated files.
    fs.mkdirSync(path.join(root, 'usr/sbin'), { recursive: true });
    fs.symlinkSync('usr/sbin', path.join(root, 'sbin'));
    fs.writeFileSync(path.join(root, 'usr/sbin/mount.ntfs'), ntfsHelper, { mode: 0o750 });
    fs.chmodSync(path.join(root, 'usr/sbin/mount.ntfs'), 0o750);
    fs.symlinkSync('/usr/bin/fusefat', path.join(root, 'usr/sbin/mount.vfat'));
    fs.mkdirSync(path.join(root, 'etc/systemd/system'), { recursive: true });
    fs.writeFileSync(path.join(root, 'etc/hostname'), 'box\n');
    fs.writeFileSync(path.join(root, 'etc/systemd/system/other.service'), '[Service]\nExecStart=/bin/true\n');
    before = snapshot(root);
  });

  it('skips existing helpers with one line each saying how to take them over', () => {
    const r = doInstall(root);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^skipped: mount\.ntfs: .*\/usr\/sbin\/mount\.ntfs exists and is not fusegate's \(a file\); to replace it, run 'fusegate install --take-over=ntfs'/m);
    expect(r.out).toMatch(/^skipped: mount\.vfat: .* \(a symlink to \/usr\/bin\/fusefat\); to replace it, run 'fusegate install --take-over=vfat'/m);
    expect(r.lines.filter((l) => l.startsWith('skipped:'))).toHaveLength(2);
    expect(fs.readFileSync(path.join(root, 'usr/sbin/mount.ntfs'), 'utf8')).toBe(ntfsHelper);
    expect(fs.readlinkSync(path.join(root, 'usr/sbin/mount.vfat'))).toBe('/usr/bin/fusefat');
    // Through the /sbin symlink, into the real directory.
    expect(fs.readlinkSync(path.join(root, 'usr/sbin/mount.exfat'))).toBe(HELPER);
    expect(fs.lstatSync(path.join(root, 'sbin')).isSymbolicLink()).toBe(true);
  });

  it('--take-over=ntfs diverts the original, keeps it intact and records it', () => {
    const r = doInstall(root, { takeOver: ['ntfs'] });
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^diverted: mount\.ntfs: .*\/usr\/sbin\/mount\.ntfs \(a file\) moved to .*\/usr\/lib\/fusegate\/diverted\/mount\.ntfs; uninstall puts it back$/m);
    expect(r.out).toMatch(/^installed: mount\.ntfs .* -> \/usr\/lib\/fusegate\/helper\/mount-launcher\.sh$/m);
    expect(r.out).toMatch(/^skipped: mount\.vfat/m);
    expect(fs.readlinkSync(path.join(root, 'usr/sbin/mount.ntfs'))).toBe(HELPER);
    const diverted = path.join(root, LIB, 'diverted/mount.ntfs');
    expect(fs.readFileSync(diverted, 'utf8')).toBe(ntfsHelper);
    expect(fs.statSync(diverted).mode & 0o777).toBe(0o750);
    expect(readManifest(new Layout(root))!.diversions).toEqual([{ path: '/usr/sbin/mount.ntfs', divertedTo: `${LIB}/diverted/mount.ntfs` }]);
  });

  it('keeps the diversion on record through a plain re-install', () => {
    const r = doInstall(root);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^unchanged: mount\.ntfs /m);
    expect(r.lines.filter((l) => l.startsWith('installed:'))).toEqual([]);
    expect(readManifest(new Layout(root))!.diversions).toHaveLength(1);
  });

  it('uninstall restores the diverted helper and leaves the tree as it was', () => {
    const r = doUninstall(root, true);
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toMatch(/^restored: .*\/usr\/sbin\/mount\.ntfs \(from .*\/diverted\/mount\.ntfs\)$/m);
    const after = snapshot(root);
    // Directory mtimes change when entries come and go; everything else must be identical.
    const noDirs = (s: Record<string, string>) => Object.fromEntries(Object.entries(s).map(([k, v]) => [k, v.startsWith('dir') ? 'dir' : v]));
    expect(noDirs(after)).toEqual(noDirs(before));
  });
});

describe('an administrator policy', () => {
  it('is kept as it is, and its intercept list decides the links', () => {
    const root = tempRoot();
    const mine = 'version: 1\nintercept: [vfat]\nrules:\n  - name: sticks\n    match: { removable: true }\n    action: fuse\n';
    fs.mkdirSync(path.join(root, 'etc/fusegate'), { recursive: true });
    fs.writeFileSync(path.join(root, 'etc/fusegate/policy.yaml'), mine);
    const r = doInstall(root);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/^kept: policy .*\/etc\/fusegate\/policy\.yaml: differs from the shipped default and is left as it is/m);
    expect(fs.readFileSync(path.join(root, 'etc/fusegate/policy.yaml'), 'utf8')).toBe(mine);
    expect(fs.readlinkSync(path.join(root, 'usr/sbin/mount.vfat'))).toBe(HELPER);
    expect(fs.existsSync(path.join(root, 'usr/sbin/mount.ext4'))).toBe(false);
    expect(readManifest(new Layout(root))!.config).toEqual([]);
    // Dropping a type from the list and re-installing removes its link.
    fs.writeFileSync(path.join(root, 'etc/fusegate/policy.yaml'), mine.replace('[vfat]', '[exfat]'));
    const again = doInstall(root);
    expect(again.out).toMatch(/^removed: .*\/usr\/sbin\/mount\.vfat$/m);
    expect(fs.readlinkSync(path.join(root, 'usr/sbin/mount.exfat'))).toBe(HELPER);
    expect(doUninstall(root).code).toBe(0);
    expect(fs.readFileSync(path.join(root, 'etc/fusegate/policy.yaml'), 'utf8')).toBe(mine.replace('[vfat]', '[exfat]'));
  });

  it('that does not load fails the install (exit 2) but keeps the links it had', () => {
    const root = tempRoot();
    expect(doInstall(root).code).toBe(0);
    fs.writeFileSync(path.join(root, 'etc/fusegate/policy.yaml'), 'version: 1\nrules:\n  - name: x\n    action: kernal\n');
    const r = doInstall(root);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/^failed: mount\.TYPE links: invalid policy .*; fix the policy/m);
    expect(fs.readlinkSync(path.join(root, 'usr/sbin/mount.vfat'))).toBe(HELPER);
    expect(readManifest(new Layout(root))!.symlinks.map((s) => s.path)).toContain('/usr/sbin/mount.vfat');
  });
});

describe('an install that fails part-way', () => {
  it('exits 2 and still records what it made, so uninstall removes it', () => {
    const root = tempRoot();
    // Units cannot be written: /etc/systemd is a file.
    fs.mkdirSync(path.join(root, 'etc'));
    fs.writeFileSync(path.join(root, 'etc/systemd'), 'not a directory\n');
    const before = snapshot(root);
    const r = doInstall(root);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/^failed: .*etc\/systemd exists and is not a directory$/m);
    const m = readManifest(new Layout(root))!;
    expect(m.files).toContain(`${LIB}/dist/bin/fusegate.js`);
    expect(m.symlinks.map((s) => s.path)).toContain('/usr/sbin/mount.fusegate');
    expect(doUninstall(root, true).code).toBe(0);
    const noDirs = (s: Record<string, string>) => Object.fromEntries(Object.entries(s).map(([k, v]) => [k, v.startsWith('dir') ? 'dir' : v]));
    expect(noDirs(snapshot(root))).toEqual(noDirs(before));
  });
});

describe('command line', () => {
  it('--dry-run prints the plan and writes nothing', () => {
    const root = tempRoot();
    const r = capture((io) => installMain(['--root', root, '--dry-run'], io));
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^\(dry run\) installed: mount\.fusegate /m);
    expect(r.out).toMatch(/dry run: nothing was changed/);
    expect(fs.readdirSync(root)).toEqual([]);
  });

  it('uninstall --dry-run lists what it would remove and removes nothing', () => {
    const root = tempRoot();
    expect(doInstall(root).code).toBe(0);
    const before = snapshot(root);
    const r = capture((io) => uninstallMain([`--root=${root}`, '--dry-run', '--purge'], io));
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^\(dry run\) removed: .*\/usr\/sbin\/mount\.fusegate$/m);
    expect(snapshot(root)).toEqual(before);
  });

  it('usage errors exit 1, --help prints the manual', () => {
    expect(capture((io) => installMain(['--bogus'], io))).toMatchObject({ code: 1, err: expect.stringMatching(/unknown argument '--bogus'/) });
    expect(capture((io) => installMain(['--root'], io)).code).toBe(1);
    expect(capture((io) => uninstallMain(['--take-over'], io)).code).toBe(1);
    expect(capture((io) => installMain(['--root', '/nonexistent/fusegate-root'], io)).code).toBe(1);
    const help = capture((io) => installMain(['--help'], io));
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^SYNOPSIS$/m);
    expect(help.out).toMatch(/--take-over/);
  });

  it('uninstall of nothing is not an error', () => {
    const root = tempRoot();
    const r = capture((io) => uninstallMain(['--root', root], io));
    expect(r).toMatchObject({ code: 0, out: expect.stringMatching(/nothing to uninstall/) });
  });
});
