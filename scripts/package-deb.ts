#!/usr/bin/env node
/**
 * Builds fusegate_<version>_<arch>.deb with dpkg-deb, offline, from the
 * built tree (`npm run package` builds first).
 *
 * The package holds what `fusegate install` puts in place, from the same
 * modules: the program files (admin/install-program.ts), the units
 * (admin/units.ts), the entry points (admin/paths.ts), the default policy
 * (as a conffile), plus man pages and docs. What install records in its
 * manifest, dpkg records here: the intercepted types' helpers are taken over
 * with dpkg-divert (packaging/debian/preinst) and given back on remove
 * (postrm); the sockets are enabled by postinst.
 *
 *   node dist/scripts/package-deb.js [--out DIR]
 */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { programFiles } from '../admin/install-program';
import { manPages } from '../admin/man-pages';
import { CLI_TARGET, LAUNCHER_TARGET, LIB_DIR, POLICY_FILE, UMOUNT_HELPER_TARGET, packageRoot } from '../admin/paths';
import { allUnits } from '../admin/units';
import { brokerSharedFiles, brokerUnit } from '../broker/files';
import { UNIT_NAME as BROKER_UNIT } from '../broker/names';
import { VERSION } from '../lib/version';
import { loadPolicy } from '../policy/load';

/** Where Debian 12 packages still ship mount helpers and units (usrmerge keeps the aliases). */
const SBIN = '/sbin';
const UNIT_DIR = '/lib/systemd/system';
const DOC_DIR = '/usr/share/doc/fusegate';

const DESCRIPTION = `mount untrusted filesystems through sandboxed FUSE servers
 fusegate sits where mount(8), /etc/fstab and udisks2 call mount helpers
 and, for every mount, lets a trust policy decide: the kernel's own driver,
 an unmodified FUSE server (fuse2fs, fusefat, exfat-fuse, ntfs-3g,
 squashfuse) sandboxed in a systemd service of its own, or refusal.
 .
 The package takes over the mount helpers of the types the default policy
 intercepts (mount.ext4, mount.vfat, mount.ntfs, ...) with dpkg-divert and
 gives them back on removal. When Node cannot run, the helpers still mount
 fixed disks listed in /etc/fstab and refuse everything else.`;

/**
 * What of install's file list a package leaves out: npm's packaging leftovers
 * and the test and example folders some dependencies ship, which nothing
 * loads (lintian: package-contains-npm-ignore-file, embedded test libraries).
 */
function shipped(rel: string): boolean {
  if (path.posix.basename(rel) === '.npmignore') return false;
  return !/^node_modules\/(?:@[^/]+\/)?[^/]+\/(?:test|tests|examples)\//.test(rel);
}

function sh(argv: string[], opts: { cwd?: string } = {}): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', cwd: opts.cwd });
  if (r.error || r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.error?.message ?? r.stderr.trim()}`);
  return r.stdout;
}

class Tree {
  readonly md5 = new Map<string, string>();
  constructor(readonly dir: string) {}

  private host(p: string): string {
    return path.join(this.dir, p);
  }

  file(p: string, content: Buffer | string, mode = 0o644): void {
    fs.mkdirSync(path.dirname(this.host(p)), { recursive: true, mode: 0o755 });
    fs.writeFileSync(this.host(p), content, { mode });
    fs.chmodSync(this.host(p), mode);
    this.md5.set(p, crypto.createHash('md5').update(fs.readFileSync(this.host(p))).digest('hex'));
  }

  /** Documentation, compressed as Debian policy asks (gzip -9n: no name, no time stamp). */
  gzFile(p: string, content: Buffer | string): void {
    this.file(`${p}.gz`, zlib.gzipSync(content, { level: 9 }).fill(0, 4, 8));
  }

  symlink(p: string, target: string): void {
    fs.mkdirSync(path.dirname(this.host(p)), { recursive: true, mode: 0o755 });
    fs.symlinkSync(target, this.host(p));
  }
}

/** The Debian changelog of a native package: one entry for this version. */
function changelog(version: string, maintainer: string): string {
  const date = new Date(Number(process.env.SOURCE_DATE_EPOCH ?? 0) * 1000 || Date.now()).toUTCString().replace(/GMT$/, '+0000');
  return `fusegate (${version}) unstable; urgency=medium\n\n  * Release ${version}; the project's own history is its git log.\n\n -- ${maintainer}  ${date}\n`;
}

export interface BuiltPackage {
  file: string;
  version: string;
  arch: string;
  /** the intercepted types whose /sbin/mount.TYPE the package takes over */
  types: string[];
  sockets: string[];
}

export function buildDeb(outDir: string, root = packageRoot()): BuiltPackage {
  const arch = sh(['dpkg', '--print-architecture']).trim();
  const maintainer = process.env.DEB_MAINTAINER ?? 'fusegate developers <fusegate@example.org>';
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-deb-'));
  try {
    fs.chmodSync(stage, 0o755);
    const t = new Tree(stage);

    // The program, exactly what `fusegate install` copies.
    for (const f of programFiles(root)) {
      if (!shipped(f.rel)) continue;
      t.file(`${LIB_DIR}/${f.rel}`, fs.readFileSync(path.join(root, f.rel)), f.mode);
    }
    // Debian ships shared objects without debugging symbols.
    for (const so of ['build/Release/fusegate_native.node', 'build/Release/fdmap-preload.so']) {
      const p = path.join(stage, LIB_DIR, so);
      sh(['strip', '--strip-unneeded', '--remove-section=.comment', '--remove-section=.note', p]);
      t.file(`${LIB_DIR}/${so}`, fs.readFileSync(p), 0o644);
    }

    // The entry points: mount(8) finds helpers in /sbin.
    const shippedPolicy = path.join(root, 'policy/default-policy.yaml');
    const types = loadPolicy(shippedPolicy, { cacheDir: null }).intercept;
    t.symlink(`${SBIN}/mount.fusegate`, LAUNCHER_TARGET);
    t.symlink(`${SBIN}/umount.fusegate`, UMOUNT_HELPER_TARGET);
    for (const type of types) t.symlink(`${SBIN}/mount.${type}`, LAUNCHER_TARGET);
    // Within /usr: relative, as Debian policy 10.5 asks.
    t.symlink('/usr/bin/fusegate', path.posix.relative('/usr/bin', CLI_TARGET));

    // The units, generated as install generates them, in the package's unit directory.
    const units = allUnits({ libDir: LIB_DIR, node: '/usr/bin/node', socketDir: '/run/filesystems' });
    for (const u of units) t.file(`${UNIT_DIR}/${u.name}`, u.text);
    const sockets = units.filter((u) => u.name.endsWith('.socket')).map((u) => u.name);
    // The broker for ordinary users: bus-activated, so nothing to enable; dpkg removes these files itself.
    t.file(`${UNIT_DIR}/${BROKER_UNIT}`, brokerUnit({ libDir: LIB_DIR, node: '/usr/bin/node' }));
    for (const f of brokerSharedFiles()) t.file(f.path, f.text);

    // The default policy: a conffile, so an administrator's edits survive upgrades.
    t.file(POLICY_FILE, fs.readFileSync(shippedPolicy));

    // Man pages (scripts/man.ts writes them at build time), where install puts them, compressed.
    for (const page of manPages(root)) t.gzFile(page.target, fs.readFileSync(path.join(root, page.rel)));
    t.file('/usr/share/lintian/overrides/fusegate', fs.readFileSync(path.join(root, 'packaging/debian/lintian-overrides')));
    t.file(`${DOC_DIR}/copyright`, fs.readFileSync(path.join(root, 'packaging/debian/copyright')));
    t.gzFile(`${DOC_DIR}/changelog`, changelog(VERSION, maintainer));
    t.gzFile(`${DOC_DIR}/README.md`, fs.readFileSync(path.join(root, 'README.md')));
    t.gzFile(`${DOC_DIR}/policy.md`, fs.readFileSync(path.join(root, 'policy/README.md')));

    // The control area.
    const control = path.join(stage, 'DEBIAN');
    fs.mkdirSync(control, { mode: 0o755 });
    const installedKb = Number(sh(['du', '-sk', '--apparent-size', '--exclude=DEBIAN', stage]).split(/\s/)[0]);
    fs.writeFileSync(path.join(control, 'control'), [
      'Package: fusegate',
      `Version: ${VERSION}`,
      `Architecture: ${arch}`,
      `Maintainer: ${maintainer}`,
      `Installed-Size: ${installedKb}`,
      // util-linux (findmnt, blkid) and bsdutils (logger) are Essential: not listed.
      'Depends: nodejs (>= 20), libc6 (>= 2.34), libblkid1 (>= 2.38), libmount1 (>= 2.38), mount, systemd',
      // dbus and polkitd: only `fusegate mount` (the broker) needs them.
      'Recommends: fuse3, fuse2fs, fusefat, exfat-fuse, ntfs-3g, squashfuse, dbus, polkitd',
      'Suggests: udisks2',
      'Section: admin',
      'Priority: optional',
      `Description: ${DESCRIPTION}`,
      '',
    ].join('\n'));
    fs.writeFileSync(path.join(control, 'conffiles'), `${POLICY_FILE}\n`);
    fs.writeFileSync(path.join(control, 'md5sums'), [...t.md5].sort(([a], [b]) => a.localeCompare(b)).map(([p, sum]) => `${sum}  ${p.slice(1)}\n`).join(''));
    for (const script of ['preinst', 'postinst', 'prerm', 'postrm']) {
      const text = fs.readFileSync(path.join(root, 'packaging/debian', script), 'utf8')
        .replaceAll('@TYPES@', types.join(' '))
        .replaceAll('@SOCKETS@', sockets.join(' '));
      fs.writeFileSync(path.join(control, script), text, { mode: 0o755 });
      fs.chmodSync(path.join(control, script), 0o755);
    }

    fs.mkdirSync(outDir, { recursive: true });
    const file = path.join(outDir, `fusegate_${VERSION}_${arch}.deb`);
    sh(['dpkg-deb', '--root-owner-group', '-Zxz', '--build', stage, file]);
    return { file, version: VERSION, arch, types, sockets };
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const i = process.argv.indexOf('--out');
  const out = i > 0 ? process.argv[i + 1]! : packageRoot();
  const built = buildDeb(path.resolve(out));
  process.stdout.write(`${built.file}\n`);
}
