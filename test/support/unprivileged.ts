/**
 * What unprivileged test processes run must be readable by them: the
 * adapter runs as uid 65534 in the fake sandbox, and one helper test calls
 * the helper as an ordinary user. A checkout under a 0700 directory (root's
 * home, e.g. /root/src/fusegate) is not, and such a process then fails with
 * "Cannot find module". So those tests run a staged copy of the built
 * program: dist/ and the two native objects, in a per-run directory under
 * /tmp (or FUSEGATE_TEST_STAGE_DIR) with 0755 directories and world-readable
 * files, laid out as the checkout is (the loaders and the addon find their
 * neighbours by relative path). releaseAll() removes it with the other
 * temporary directories.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir } from './devices';

const ROOT = path.resolve(__dirname, '../..');

/** What the staged copy holds, relative to the checkout and the stage alike. */
const STAGED = ['dist', 'build/Release/fusegate_native.node', 'build/Release/fdmap-preload.so'];

export interface StagedProgram {
  root: string;
  /** the helper's loader (dist/helper/mount.fusegate.js) */
  helper: string;
  /** the adapter's loader (dist/sandbox/adapter-start.js) */
  adapter: string;
}

/** Throws one line naming the first directory on the way to `dir` that others cannot enter. */
function assertReachableByOthers(dir: string): void {
  for (let d = dir; ; d = path.dirname(d)) {
    if ((fs.statSync(d).mode & 0o001) === 0) {
      throw new Error(
        `cannot stage the built program where uid 65534 can read it: ${d} is not searchable by others; set FUSEGATE_TEST_STAGE_DIR to a directory every user can reach`,
      );
    }
    if (path.dirname(d) === d) return;
  }
}

/** Directories 0755, files 0644 (0755 if executable): readable by everyone, writable by the owner. */
function openUp(p: string): void {
  const st = fs.statSync(p);
  if (st.isDirectory()) {
    fs.chmodSync(p, 0o755);
    for (const name of fs.readdirSync(p)) openUp(path.join(p, name));
  } else {
    fs.chmodSync(p, st.mode & 0o111 ? 0o755 : 0o644);
  }
}

export function stageForUnprivileged(): StagedProgram {
  const missing = STAGED.filter((rel) => !fs.existsSync(path.join(ROOT, rel)));
  if (missing.length > 0) throw new Error(`${missing.join(', ')} missing in ${ROOT}: run 'npm run build' (npm test does)`);
  const parent = process.env.FUSEGATE_TEST_STAGE_DIR ?? '/tmp';
  assertReachableByOthers(parent);
  const root = tempDir('fusegate-stage-', parent);
  for (const rel of STAGED) fs.cpSync(path.join(ROOT, rel), path.join(root, rel), { recursive: true });
  openUp(root);
  return {
    root,
    helper: path.join(root, 'dist/helper/mount.fusegate.js'),
    adapter: path.join(root, 'dist/sandbox/adapter-start.js'),
  };
}
