/**
 * What the helper's watchdog (lib/native: watchdogArm, armed by entry.ts)
 * undoes when it fires. It fires when the main thread is stuck, and the one
 * way the helper gets stuck for good is a FUSE request that a server has read
 * and never answers: the kernel then waits uninterruptibly, so not even
 * _exit ends the process (mount(8) would wait for it forever). Only ending
 * that connection frees it. So before the helper touches SOURCE and DIR, the
 * FUSE mounts on their way are named to the watchdog; once a sandboxed mount
 * exists, its connection and mountpoint are added.
 *
 * The paths are taken as written (absolute, without following symlinks: that
 * would itself wait on the FUSE server). A SOURCE reached through a symlink
 * into a FUSE mount is therefore not covered; that mount's server can still
 * hold the helper.
 */
import * as path from 'node:path';
import { readMountinfo } from '../lib/mountinfo';
import * as native from '../lib/native';
import { ensureFusectl, fusectlAbortFile } from './fusectl';

/** The watchdog takes at most this many connections. */
const MAX_ABORTS = 8;

let pathConnections: string[] = [];
let mount: { abortFile: string | null; mountpoint: string } | null = null;

function push(): void {
  const files = [...(mount?.abortFile ? [mount.abortFile] : []), ...pathConnections];
  // The abort files exist only where fusectl is mounted; mount it now, not when stuck.
  if (files.length > 0) ensureFusectl();
  native.watchdogCleanup([...new Set(files)].slice(0, MAX_ABORTS), mount?.mountpoint ?? null);
}

/** Whether `p` is `dir` or lies below it, as strings. */
function within(p: string, dir: string): boolean {
  return p === dir || dir === '/' || p.startsWith(dir + '/');
}

/**
 * Names to the watchdog the FUSE connections of every FUSE mount that the
 * given paths (SOURCE, DIR) pass through as written.
 */
export function guardPathsThroughFuse(paths: readonly string[]): void {
  const absolute = paths.filter((p) => p.startsWith('/') || p.startsWith('.')).map((p) => path.resolve(p));
  if (absolute.length === 0) return;
  pathConnections = readMountinfo()
    .filter((m) => m.fsType === 'fuse' || m.fsType === 'fuseblk' || m.fsType.startsWith('fuse.') || m.fsType.startsWith('fuseblk.'))
    .filter((m) => absolute.some((p) => within(p, m.mountpoint)))
    .map((m) => fusectlAbortFile(m.device))
    .filter((f): f is string => f !== null);
  if (pathConnections.length > 0) push();
}

/** The sandboxed mount now exists: should the watchdog fire, it aborts and detaches it. */
export function guardNewMount(device: string | null, mountpoint: string): void {
  mount = { abortFile: fusectlAbortFile(device), mountpoint };
  push();
}
