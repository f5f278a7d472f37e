/**
 * End-to-end harness: a real systemd booted with systemd-nspawn over a cached
 * Debian bookworm root (docs/testing.md §5). This module is the entry point tests
 * import; it holds the availability check and re-exports the pieces:
 *
 *   rootfs.ts     build and cache the root (debootstrap, once per machine)
 *   container.ts  boot, exec, install, journal, stop
 *   loop.ts       disk images and loop devices on the host
 *   suite.ts      vitest wiring (boot in beforeAll, journal on failure, stop)
 *
 * Skips: a test may skip only when the machine lacks the means. With
 * FUSEGATE_REQUIRE_E2E=1 (set by CI) a missing means fails instead.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { HOST_NODE } from './container';
import { which } from './host';
import { rootIsCached } from './rootfs';

export { Container, HOST_NODE, PROJECT_MOUNT } from './container';
export type { Bind, BootOptions, ExecOptions, ExecResult, InstallOptions } from './container';
export { attachLoop, loopsFor, makeExt4Image, makeSparseFile } from './loop';
export type { LoopDevice } from './loop';
export { aptMirror, cacheDir, ensureRoot, rootKey, rootPath } from './rootfs';
export type { EnsureRootOptions, RootInfo } from './rootfs';

export type E2eAvailability = { ok: true } | { ok: false; why: string };

const REQUIRED_TOOLS = ['systemd-nspawn', 'nsenter', 'losetup', 'journalctl', 'mkfs.ext4'];

/** Whether this machine has what booting a container needs, and if not, why. */
export function e2eAvailable(): E2eAvailability {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('not running as root');
  if (!isCharDevice('/dev/fuse')) missing.push('no /dev/fuse');
  if (!isCharDevice('/dev/loop-control')) missing.push('no /dev/loop-control');
  for (const tool of REQUIRED_TOOLS) if (which(tool) === null) missing.push(`no ${tool}`);
  if (!rootIsCached() && which('debootstrap') === null) missing.push('no debootstrap and no cached root');
  if (!existsSync(HOST_NODE)) missing.push(`no ${HOST_NODE}`);
  if (!overlayfsAvailable()) missing.push('no overlayfs in the kernel');
  return missing.length === 0 ? { ok: true } : { ok: false, why: missing.join('; ') };
}

/** True when CI asked that every e2e test run: a missing means is then a failure. */
export function e2eRequired(): boolean {
  return process.env.FUSEGATE_REQUIRE_E2E === '1';
}

/**
 * For describe.skipIf(): true only when the means are missing and not
 * required. When they are required and missing this is false, so the suite
 * runs and assertE2eAvailable() in its beforeAll fails it.
 */
export function e2eSkip(): boolean {
  const a = e2eAvailable();
  if (a.ok || e2eRequired()) return false;
  // vitest shows a skip without a reason: say it here.
  e2eLog(`skipping e2e tests: ${a.why}`);
  return true;
}

/** Throws with the reason when the means are missing. */
export function assertE2eAvailable(): void {
  const a = e2eAvailable();
  if (!a.ok) {
    throw new Error(`e2e tests cannot run here: ${a.why}${e2eRequired() ? ' (FUSEGATE_REQUIRE_E2E=1 forbids skipping)' : ''}`);
  }
}

function isCharDevice(path: string): boolean {
  try {
    return statSync(path).isCharacterDevice();
  } catch {
    return false;
  }
}

/** --volatile=overlay needs overlayfs; it may be a module not loaded yet. */
function overlayfsAvailable(): boolean {
  try {
    if (/\toverlay$/m.test(readFileSync('/proc/filesystems', 'utf8'))) return true;
  } catch {
    /* fall through */
  }
  return spawnSync('modinfo', ['overlay'], { stdio: 'ignore' }).status === 0;
}

/** Harness progress lines (build and boot timings) on stderr. */
export function e2eLog(line: string): void {
  process.stderr.write(`[e2e] ${line}\n`);
}
