/**
 * What of the package tree goes into /usr/lib/fusegate: the compiled
 * program, the two native objects, the policy files, and the node_modules the
 * program needs at run time — the production dependencies and theirs,
 * resolved the way Node resolves them, so the copy resolves identically.
 * Build tools and test frameworks (typescript, vitest and their hundreds of
 * files) stay behind.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FusegateError, MountExit } from '../lib/errors';

/** Which line of install's output a file is reported under. */
export type FileGroup = 'program' | 'native addon' | 'preload library' | 'node modules';

export interface ProgramFile {
  /** path relative to the package root, '/'-separated */
  rel: string;
  mode: number;
  group: FileGroup;
}

/** The bundles of the helper's lazy parts, as scripts/bundle.js names them (entry basename + .bundle.js). */
export const HELPER_LAZY_BUNDLES = ['sandbox-mount.bundle.js', 'preflight.bundle.js', 'validate.bundle.js'];

/** Files that must exist in a built tree; their absence means "not built". */
export const REQUIRED = [
  'package.json',
  // The mount path runs bundles (scripts/bundle.js, part of `npm run build`): the loader and its bundle each.
  'dist/helper/mount.fusegate.js',
  'dist/helper/mount.fusegate.bundle.js',
  // the helper's parts it loads on first use (scripts/bundle.js): the sandbox path, the preflight, the policy validator
  ...HELPER_LAZY_BUNDLES.map((b) => `dist/helper/${b}`),
  // What the mount.TYPE links run: Node, or its own fail-closed rule when Node cannot run.
  'helper/mount-launcher.sh',
  'dist/helper/umount.fusegate.js',
  'dist/helper/umount.fusegate.bundle.js',
  'dist/sandbox/adapter-start.js',
  'dist/sandbox/adapter-start.bundle.js',
  'dist/sandbox/check-start.js',
  'dist/sandbox/check-start.bundle.js',
  'dist/bin/fusegate.js',
  'build/Release/fusegate_native.node',
  'build/Release/fdmap-preload.so',
  'policy/default-policy.yaml',
];

/** Run directly by mount(8) and by administrators: executable whatever tsc made them. */
const EXECUTABLES = new Set([
  'helper/mount-launcher.sh',
  'dist/helper/mount.fusegate.js',
  'dist/helper/umount.fusegate.js',
  'dist/sandbox/adapter-start.js',
  'dist/sandbox/check-start.js',
  'dist/bin/fusegate.js',
]);

/**
 * dist/ holds everything tsc compiled; the benchmarks, the demo and the e2e
 * harness are not part of the program, and the man pages go to
 * /usr/share/man (admin/man-pages.ts).
 */
const DIST_EXCLUDE = new Set(['dist/bench', 'dist/scripts', 'dist/test', 'dist/man']);

function modeOf(rel: string, st: fs.Stats): number {
  if (EXECUTABLES.has(rel)) return 0o755;
  return st.mode & 0o111 ? 0o755 : 0o644;
}

/** Every regular file under `relDir`, skipping `skip(rel)` subtrees and nested node_modules. */
function walk(root: string, relDir: string, group: FileGroup, out: ProgramFile[], skip: (rel: string) => boolean): void {
  for (const ent of fs.readdirSync(path.join(root, relDir), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const rel = `${relDir}/${ent.name}`;
    if (skip(rel)) continue;
    if (ent.isDirectory()) {
      // A package's own dependencies are collected by resolution, not by copying its node_modules.
      if (ent.name !== 'node_modules') walk(root, rel, group, out, skip);
    } else if (ent.isFile()) {
      out.push({ rel, mode: modeOf(rel, fs.statSync(path.join(root, rel))), group });
    }
    // Symlinks (node_modules/.bin) and other types are not part of a runtime package.
  }
}

function readPackage(dir: string): { name?: string; dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> } {
  return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
}

/** Node's lookup: <dir>/node_modules/<name>, then each parent's, never inside a node_modules dir itself. */
function resolvePackageDir(root: string, fromDir: string, name: string): string | null {
  for (let d = fromDir; ; d = path.dirname(d)) {
    if (path.basename(d) !== 'node_modules') {
      const candidate = path.join(d, 'node_modules', name);
      if (fs.existsSync(path.join(candidate, 'package.json'))) return candidate;
    }
    if (d === root || path.dirname(d) === d) return null;
  }
}

/**
 * The package directories (relative to root) of the production dependency
 * closure. Optional dependencies that were not installed (dbus-next's
 * usocket, which does not build here: docs/platform.md §3) are left out, as Node
 * leaves them out at run time.
 */
export function runtimePackages(root: string): string[] {
  const found = new Set<string>();
  const visit = (fromDir: string, deps: string[], optional: Set<string>): void => {
    for (const name of deps) {
      const dir = resolvePackageDir(root, fromDir, name);
      if (dir === null) {
        if (optional.has(name)) continue;
        throw new FusegateError(`runtime dependency '${name}' (needed by ${path.relative(root, fromDir) || 'fusegate'}) is not installed`, {
          hint: `run 'npm ci' in ${root}`,
          exitCode: MountExit.SYSTEM,
        });
      }
      const rel = path.relative(root, dir).split(path.sep).join('/');
      if (found.has(rel)) continue;
      found.add(rel);
      const pkg = readPackage(dir);
      const opt = Object.keys(pkg.optionalDependencies ?? {});
      visit(dir, [...Object.keys(pkg.dependencies ?? {}), ...opt], new Set(opt));
    }
  };
  const pkg = readPackage(root);
  const opt = Object.keys(pkg.optionalDependencies ?? {});
  visit(root, [...Object.keys(pkg.dependencies ?? {}), ...opt], new Set(opt));
  return [...found].sort();
}

/** Everything install copies into the library directory, in a stable order. */
export function programFiles(root: string): ProgramFile[] {
  const missing = REQUIRED.filter((rel) => !fs.existsSync(path.join(root, rel)));
  if (missing.length > 0) {
    throw new FusegateError(`${root} is not a built fusegate tree: missing ${missing.join(', ')}`, {
      hint: `build it first: cd ${root} && npm ci && npm run build (tsc, then the mount-path bundles)`,
      exitCode: MountExit.SYSTEM,
    });
  }
  const out: ProgramFile[] = [];
  const single = (rel: string, group: FileGroup) => {
    const p = path.join(root, rel);
    if (fs.existsSync(p)) out.push({ rel, mode: modeOf(rel, fs.statSync(p)), group });
  };
  single('package.json', 'program');
  single('README.md', 'program');
  walk(root, 'dist', 'program', out, (rel) => DIST_EXCLUDE.has(rel));
  single('helper/mount-launcher.sh', 'program');
  single('policy/default-policy.yaml', 'program');
  single('policy/README.md', 'program');
  single('build/Release/fusegate_native.node', 'native addon');
  single('build/Release/fdmap-preload.so', 'preload library');
  for (const pkgDir of runtimePackages(root)) walk(root, pkgDir, 'node modules', out, () => false);
  return out;
}
