/**
 * The file operations install and uninstall are made of, each idempotent and
 * each a no-op in a dry run. Files are written to a temporary name in the
 * same directory and renamed into place, so a reader (mount(8) running the
 * helper while an upgrade installs it) sees the old file or the new one,
 * never half of one. Every directory created is remembered, so uninstall can
 * remove exactly the directories install made.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Layout } from './paths';

export type WriteResult = 'installed' | 'unchanged';

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (e) {
    // ENOTDIR: a parent is not a directory; ensureDir reports which one.
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw e;
  }
}

export class TreeWriter {
  /** directories this run created (or would create), as runtime paths */
  readonly createdDirs = new Set<string>();

  constructor(
    readonly layout: Layout,
    readonly dryRun: boolean,
  ) {}

  lstat(runtimePath: string): fs.Stats | null {
    return lstatOrNull(this.layout.host(runtimePath));
  }

  /** Creates a directory and its missing parents (0755), recording each one made. */
  ensureDir(runtimeDir: string): void {
    const missing: string[] = [];
    for (let d = runtimeDir; d !== '/' && !this.createdDirs.has(d); d = path.posix.dirname(d)) {
      const st = lstatOrNull(this.layout.host(d));
      if (st?.isDirectory()) break;
      // A symlink to a directory (merged-usr /sbin) counts as existing.
      if (st?.isSymbolicLink() && fs.statSync(this.layout.host(d), { throwIfNoEntry: false })?.isDirectory()) break;
      if (st) throw new Error(`${this.layout.show(d)} exists and is not a directory`);
      missing.unshift(d);
    }
    for (const d of missing) {
      if (!this.dryRun) fs.mkdirSync(this.layout.host(d), { mode: 0o755 });
      this.createdDirs.add(d);
    }
  }

  /** Writes `content` with `mode` unless the file already holds exactly that. */
  writeFile(runtimePath: string, content: Buffer, mode: number): WriteResult {
    const host = this.layout.host(runtimePath);
    const st = this.lstat(runtimePath);
    if (st?.isFile() && st.size === content.length && (st.mode & 0o7777) === mode && fs.readFileSync(host).equals(content)) {
      return 'unchanged';
    }
    if (st?.isDirectory()) throw new Error(`${this.layout.show(runtimePath)} is a directory`);
    this.ensureDir(path.posix.dirname(runtimePath));
    if (this.dryRun) return 'installed';
    const tmp = path.join(path.dirname(host), `.${path.basename(host)}.fusegate-tmp-${process.pid}`);
    try {
      fs.writeFileSync(tmp, content, { mode, flag: 'wx' });
      fs.chmodSync(tmp, mode); // the umask applied to the open
      fs.renameSync(tmp, host);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw e;
    }
    return 'installed';
  }

  /** Points `runtimePath` at `target`; the caller has decided that replacing whatever is there is right. */
  symlink(runtimePath: string, target: string): WriteResult {
    const host = this.layout.host(runtimePath);
    const st = this.lstat(runtimePath);
    if (st?.isSymbolicLink() && fs.readlinkSync(host) === target) return 'unchanged';
    if (st?.isDirectory()) throw new Error(`${this.layout.show(runtimePath)} is a directory`);
    this.ensureDir(path.posix.dirname(runtimePath));
    if (this.dryRun) return 'installed';
    const tmp = path.join(path.dirname(host), `.${path.basename(host)}.fusegate-tmp-${process.pid}`);
    fs.rmSync(tmp, { force: true });
    fs.symlinkSync(target, tmp);
    try {
      fs.renameSync(tmp, host);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw e;
    }
    return 'installed';
  }

  /** Removes a file or symlink; false when it was not there. */
  remove(runtimePath: string): boolean {
    const st = this.lstat(runtimePath);
    if (st === null) return false;
    if (st.isDirectory()) throw new Error(`${this.layout.show(runtimePath)} is a directory`);
    if (!this.dryRun) fs.unlinkSync(this.layout.host(runtimePath));
    return true;
  }

  /** Removes a directory if it is empty; false when it is not (or not there). */
  removeDirIfEmpty(runtimeDir: string): boolean {
    const host = this.layout.host(runtimeDir);
    const st = lstatOrNull(host);
    if (!st?.isDirectory()) return false;
    if (fs.readdirSync(host).length > 0) return false;
    if (!this.dryRun) fs.rmdirSync(host);
    return true;
  }

  /**
   * Moves a file or symlink as is (a symlink stays a symlink, modes and
   * owners are kept), replacing `to`. rename(2) where it can; across
   * filesystems a copy, then the original is removed.
   */
  move(from: string, to: string): void {
    this.ensureDir(path.posix.dirname(to));
    if (this.dryRun) return;
    const src = this.layout.host(from);
    const dst = this.layout.host(to);
    try {
      fs.renameSync(src, dst);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    }
    const st = fs.lstatSync(src);
    fs.rmSync(dst, { force: true });
    if (st.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(src), dst);
    else {
      fs.copyFileSync(src, dst);
      fs.chmodSync(dst, st.mode & 0o7777);
      fs.chownSync(dst, st.uid, st.gid);
    }
    fs.unlinkSync(src);
  }
}
