/** Observing and cleaning up real mounts. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';

export interface MountRow {
  mountpoint: string;
  fsType: string;
  source: string;
  options: string;
}

export function mountsAt(dir: string): MountRow[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [pre, post = ''] = l.split(' - ');
      const f = pre!.split(' ');
      const p = post.split(' ');
      return { mountpoint: f[4]!, fsType: p[0]!, source: p[1]!, options: `${f[5]},${p[2]}` };
    })
    .filter((m) => m.mountpoint === dir);
}

export function utabLine(dir: string): string | undefined {
  try {
    return fs.readFileSync('/run/mount/utab', 'utf8').split('\n').find((l) => l.includes(`TARGET=${dir} `));
  } catch {
    return undefined;
  }
}

/** Unmounts everything at `dir` (lazily, so a hung FUSE mount cannot block the test). */
export function unmountAll(dir: string): void {
  while (mountsAt(dir).length > 0) {
    try {
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
    } catch {
      break;
    }
  }
}

/** Pids of processes whose command line contains `needle` (to check a server exited). */
export function pidsWithArg(needle: string): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(needle);
      } catch {
        return false;
      }
    })
    .map(Number);
}

export async function waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}
