/**
 * What the helper's kernel-path benchmarks (helper-startup, helper-instructions)
 * mount: a 32 MiB ext4 image on a loop device, an empty mountpoint, and a
 * policy that gives loop devices the kernel driver; all removed afterwards,
 * mounted or not.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface KernelPathScratch {
  dir: string;
  loop: string;
  mnt: string;
  /**
   * The caller's environment without NODE_EXTRA_CA_CERTS (set in this
   * machine's login environment, ~50 ms on every Node start) and
   * NODE_OPTIONS: the helper's shebang drops both, so whatever it is
   * compared with must run without them too.
   */
  clean: NodeJS.ProcessEnv;
  /** Writes a policy that mounts loop devices with the kernel driver as `name`.yaml; its path. */
  writePolicy(name: string): string;
}

export function withKernelPathScratch<T>(fn: (s: KernelPathScratch) => T): T {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-bench-'));
  const img = path.join(dir, 'ext4.img');
  const mnt = path.join(dir, 'mnt');
  fs.mkdirSync(mnt);
  fs.writeFileSync(img, '');
  fs.truncateSync(img, 32 << 20);
  execFileSync('mkfs.ext4', ['-q', '-F', img]);
  const loop = execFileSync('losetup', ['--find', '--show', img], { encoding: 'utf8' }).trim();
  const clean = { ...process.env };
  delete clean.NODE_EXTRA_CA_CERTS;
  delete clean.NODE_OPTIONS;
  const writePolicy = (name: string) => {
    const file = path.join(dir, `${name}.yaml`);
    fs.writeFileSync(file, 'version: 1\nrules:\n  - name: bench-loop\n    match: { loop: true }\n    action: kernel\n');
    return file;
  };
  try {
    return fn({ dir, loop, mnt, clean, writePolicy });
  } finally {
    try {
      execFileSync('umount', [mnt], { stdio: 'ignore' });
    } catch {
      // not mounted
    }
    execFileSync('losetup', ['-d', loop]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
