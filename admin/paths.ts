/**
 * Where an installation lives, as seen from inside the installed system
 * ("runtime paths", what symlinks, units and the manifest contain) and from
 * the installer's side ("host paths", the runtime path under --root DIR).
 *
 * Symlinks and unit files always name runtime paths: a tree installed with
 * `--root /srv/rootfs` must work once /srv/rootfs is booted as /.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The runtime library directory; units.ts's DEFAULT_UNIT_PATHS names the same. */
export const LIB_DIR = '/usr/lib/fusegate';
export const POLICY_FILE = '/etc/fusegate/policy.yaml';
export const MANIFEST_FILE = `${LIB_DIR}/install-manifest.json`;
export const DIVERTED_DIR = `${LIB_DIR}/diverted`;
/**
 * What mount.fusegate and the mount.TYPE links point at: the loader
 * scripts/bundle.js writes, which runs the bundled helper with its V8 code
 * cache (dist/helper/main.js is a module without an entry point).
 */
export const HELPER_TARGET = `${LIB_DIR}/dist/helper/mount.fusegate.js`;
/**
 * What mount.fusegate and the mount.TYPE links point at: the POSIX sh
 * launcher that runs HELPER_TARGET, and mounts fixed fstab disks by itself
 * when Node cannot run (helper/mount-launcher.sh says how).
 */
export const LAUNCHER_TARGET = `${LIB_DIR}/helper/mount-launcher.sh`;
/** umount.fusegate: umount(8) runs it for mounts whose utab entry says helper=fusegate. */
export const UMOUNT_HELPER_TARGET = `${LIB_DIR}/dist/helper/umount.fusegate.js`;
export const CLI_TARGET = `${LIB_DIR}/dist/bin/fusegate.js`;
/**
 * Administrator-installed units go to /etc/systemd/system: fusegate is not
 * installed by the package manager, and /usr/lib/systemd/system belongs to
 * dpkg (files there that no package owns surprise every tool that audits it).
 * systemctl enable writes its WantedBy links under /etc as well, so install
 * and uninstall stay within one directory.
 */
export const UNIT_DIR = '/etc/systemd/system';
export const SOCKETS_WANTS_DIR = `${UNIT_DIR}/sockets.target.wants`;
export const BIN_DIR = '/usr/bin';

export class Layout {
  /** the --root directory ('/' for the running system) */
  readonly root: string;
  /** the directory mount(8) searches for helpers, as a runtime path */
  readonly sbinDir: string;

  constructor(root = '/') {
    this.root = path.resolve(root);
    this.sbinDir = resolveSbin(this.root);
  }

  get live(): boolean {
    return this.root === '/';
  }

  /** The host path of a runtime path. */
  host(runtimePath: string): string {
    return this.live ? runtimePath : path.join(this.root, runtimePath);
  }

  /** Where mount(8) finds a helper named `mount.<name>` (runtime path). */
  helperLink(name: string): string {
    return path.posix.join(this.sbinDir, `mount.${name}`);
  }

  /** Where umount(8) finds umount.fusegate (runtime path). */
  umountHelperLink(): string {
    return path.posix.join(this.sbinDir, 'umount.fusegate');
  }

  /** How an output line names a runtime path: as is, or under the root. */
  show(runtimePath: string): string {
    return this.live ? runtimePath : `${this.root}${runtimePath}`;
  }
}

/**
 * mount(8) looks for helpers in /sbin. On merged-usr systems (Debian 12)
 * /sbin is a symlink to usr/sbin, and writing through it would record the
 * link's path, not the file's, in the manifest; so name the real directory.
 * A root without /sbin (an empty tree) gets the merged-usr layout.
 */
function resolveSbin(root: string): string {
  const sbin = path.join(root, 'sbin');
  let st: fs.Stats;
  try {
    st = fs.lstatSync(sbin);
  } catch {
    return '/usr/sbin';
  }
  if (st.isSymbolicLink()) {
    const target = fs.readlinkSync(sbin);
    // Relative targets are relative to the root ('usr/sbin'); absolute ones name a runtime path.
    return path.posix.resolve('/', target);
  }
  return '/sbin';
}

/**
 * The package root the running code belongs to: the nearest directory above
 * this file holding fusegate's package.json. From dist/admin/ that is two
 * levels up, from the sources (vitest) one; searching covers both.
 */
export function packageRoot(from: string = __dirname): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (pkg.name === 'fusegate') return dir;
    } catch {
      /* not here */
    }
    if (path.dirname(dir) === dir) throw new Error(`no fusegate package.json above ${from}`);
  }
}
