/** Helpers for the vfat tests: images made by mkfs.vfat, checked by fsck.fat and read back by mtools. */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const MTOOLS_ENV = { ...process.env, MTOOLS_SKIP_CHECK: '1', MTOOLS_NO_VFAT: '0', LC_ALL: 'C.UTF-8' };

/**
 * A scratch directory, on tmpfs (/dev/shm) when it has room: the engine
 * fsyncs at every clean unmount, and on a shared disk those waits were most
 * of the vfat suites' wall time.
 */
export function tmpDir(prefix: string): string {
  let base = os.tmpdir();
  try {
    const st = fs.statfsSync('/dev/shm');
    if (st.type === 0x01021994 && st.bavail * st.bsize > 1024 * 1024 * 1024) base = '/dev/shm';
  } catch {
    // no /dev/shm
  }
  return fs.mkdtempSync(path.join(base, prefix));
}

/** Sizes (KiB) and sectors per cluster that give each FAT type with small images. */
export const GEOMETRY = {
  12: { kib: 2048, spc: 4 },
  16: { kib: 16384, spc: 2 },
  32: { kib: 36 * 1024, spc: 1 },
} as const;

export function mkfs(file: string, fatType: 12 | 16 | 32, kib: number = GEOMETRY[fatType].kib, spc: number = GEOMETRY[fatType].spc): void {
  fs.rmSync(file, { force: true });
  execFileSync('mkfs.vfat', ['-C', '-F', String(fatType), '-s', String(spc), '-n', 'TESTVOL', file, String(kib)], { stdio: 'pipe' });
}

export function fsck(file: string): { ok: boolean; output: string } {
  const r = spawnSync('fsck.fat', ['-n', '-v', file], { encoding: 'utf8' });
  const output = `${r.stdout}${r.stderr}`;
  const ok = r.status === 0 && !/Dirty bit|Leaving filesystem unchanged|lost|cross-linked|Free cluster summary wrong/i.test(output.replace(/fsck\.fat \d.*\n/, ''));
  return { ok, output };
}

export function mtools(cmd: string, args: string[], input?: Buffer): Buffer {
  return execFileSync(cmd, args, { env: MTOOLS_ENV, input, maxBuffer: 256 * 1024 * 1024, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Recursive listing through mtools: path (with long names) → size, '/' suffix for directories. */
export function mtoolsTree(image: string): Map<string, number | 'dir'> {
  const out = mtools('mdir', ['-i', image, '-/', '-a', '::/']).toString('utf8');
  const tree = new Map<string, number | 'dir'>();
  let dir = '';
  for (const line of out.split('\n')) {
    const m = /^Directory for ::(.*)$/.exec(line);
    if (m) {
      dir = m[1] === '/' ? '' : m[1];
      continue;
    }
    // "SHORT    EXT   size date time  long name"  or "<DIR>"
    const e = /^(.{8}) (.{3}) +(<DIR>|[\d ]+?) +\d{4}-\d\d-\d\d +\d\d?:\d\d(?: +(.*))?$/.exec(line);
    if (!e) continue;
    const short = e[1].trimEnd() + (e[2].trim() ? `.${e[2].trimEnd()}` : '');
    const name = e[4] !== undefined && e[4] !== '' ? e[4] : short;
    if (name === '.' || name === '..') continue;
    tree.set(`${dir}/${name}`, e[3] === '<DIR>' ? 'dir' : Number(e[3].replace(/ /g, '')));
  }
  return tree;
}

export function mtoolsRead(image: string, p: string): Buffer {
  return mtools('mtype', ['-i', image, `::${p}`]);
}

/** Bundles the server entry into one CommonJS file that `node --jitless` can run. */
export function bundleServer(outDir: string): string {
  const out = path.join(outDir, 'vfat-main.js');
  const esbuild = path.join(__dirname, '..', '..', '..', 'node_modules', '.bin', 'esbuild');
  execFileSync(esbuild, [path.join(__dirname, '..', '..', '..', 'sandbox', 'vfat', 'main.ts'), '--bundle', '--platform=node', '--target=node20', `--outfile=${out}`, '--log-level=warning']);
  return out;
}
