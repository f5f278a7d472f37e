/**
 * Disk images and loop devices made on the host for a container to use.
 * A loop device must exist before boot: nspawn binds device nodes into the
 * container's private /dev only at start (one made later, even through the
 * bound /dev/loop-control, has no node inside).
 */
import { closeSync, openSync, ftruncateSync } from 'node:fs';
import { type RunResult, describeFailure, run, runOk, sleep } from './host';
import { startWatchdog } from './watchdog';

export interface LoopDevice {
  /** e.g. /dev/loop3 */
  readonly path: string;
  readonly image: string;
  /** Detaches this device (only if it still backs our image). Idempotent. */
  detach(): Promise<void>;
}

/** Creates a sparse file of sizeMiB and makes an ext4 filesystem in it. */
export async function makeExt4Image(path: string, opts: { sizeMiB?: number; label?: string } = {}): Promise<void> {
  makeSparseFile(path, opts.sizeMiB ?? 16);
  const argv = ['mkfs.ext4', '-q', '-F'];
  if (opts.label !== undefined) argv.push('-L', opts.label);
  await runOk([...argv, path], { timeoutMs: 60_000 });
}

export function makeSparseFile(path: string, sizeMiB: number): void {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, sizeMiB * 1024 * 1024);
  } finally {
    closeSync(fd);
  }
}

/** Attaches image to the first free loop device. */
export async function attachLoop(image: string, opts: { readOnly?: boolean } = {}): Promise<LoopDevice> {
  const argv = ['losetup', '--find', '--show'];
  if (opts.readOnly) argv.push('--read-only');
  const path = (await losetupFind([...argv, image])).stdout.trim();
  if (!/^\/dev\/loop\d+$/.test(path)) throw new Error(`losetup printed ${JSON.stringify(path)}`);
  let detached = false;
  // Detaches it even if the test process is killed before its afterAll.
  const dog = startWatchdog({ kind: 'loop', device: path, image });
  return {
    path,
    image,
    async detach(): Promise<void> {
      if (detached) return;
      // Check first: if it was already freed, the number may now belong to
      // someone else's image.
      if ((await loopsFor(image)).includes(path)) await runOk(['losetup', '--detach', path], { timeoutMs: 30_000 });
      detached = true;
      dog.disarm();
    },
  };
}

/**
 * `losetup --find` picks a free device and then configures it; another
 * process (tests of other suites, other users of this machine) can take the
 * same device in between, and losetup then fails with EBUSY: try again.
 */
async function losetupFind(argv: string[]): Promise<RunResult> {
  for (let attempt = 1; ; attempt++) {
    const r = await run(argv, { timeoutMs: 30_000 });
    if (r.code === 0) return r;
    if (attempt >= 5 || !/busy/i.test(r.stderr)) throw new Error(describeFailure(argv, r));
    await sleep(100 * attempt);
  }
}

/** Loop devices currently backed by image. */
export async function loopsFor(image: string): Promise<string[]> {
  const r = await run(['losetup', '--noheadings', '--output', 'NAME', '--associated', image], { timeoutMs: 30_000 });
  return r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
}
