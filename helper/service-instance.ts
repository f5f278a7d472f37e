/**
 * The systemd service instance that serves one sandboxed mount, found
 * through the cgroup tree rather than D-Bus (no bus connection on the mount
 * path). systemd names Accept=yes instances
 * `<backend>@<n>-<client pid>-<client uid>.service`, the client being the
 * helper; the helper records the name in utab (x-fusegate.unit=) so that
 * umount.fusegate can wait for exactly those processes.
 */
import * as fs from 'node:fs';

/** system.slice in the unified hierarchy, the hybrid one, and cgroup v1's name=systemd tree. */
const SYSTEM_SLICES = process.env.FUSEGATE_CGROUP_SYSTEM_SLICE
  ? [process.env.FUSEGATE_CGROUP_SYSTEM_SLICE]
  : ['/sys/fs/cgroup/system.slice', '/sys/fs/cgroup/unified/system.slice', '/sys/fs/cgroup/systemd/system.slice'];

/**
 * The slice directories an instance of `backend` can be in, that exist here:
 * fusegate.slice (the units' Slice=, admin/units.ts), beside system.slice,
 * then the template's default slice inside system.slice (units from before
 * the slice); systemd escapes '-' in slice names as \x2d.
 */
function templateSlices(backend: string): string[] {
  const fusegate = SYSTEM_SLICES.map((s) => `${s.slice(0, s.lastIndexOf('/'))}/fusegate.slice`);
  const template = SYSTEM_SLICES.map((s) => `${s}/system-${backend.replace(/-/g, '\\x2d')}.slice`);
  return [...fusegate, ...template].filter((d) => fs.existsSync(d));
}

/** The instance started for this process's connection to `backend`, or null outside systemd. */
export function instanceForClient(backend: string, clientPid: number, clientUid: number): string | null {
  const suffix = `-${clientPid}-${clientUid}.service`;
  for (const slice of templateSlices(backend)) {
    const found = fs.readdirSync(slice).find((d) => d.startsWith(`${backend}@`) && d.endsWith(suffix));
    if (found) return found;
  }
  return null;
}

/** Pids in the instance's cgroup: the FUSE server (the adapter exec'd into it). Empty once it is gone. */
export function instanceProcesses(unit: string): number[] {
  const backend = unit.slice(0, unit.indexOf('@'));
  for (const slice of templateSlices(backend)) {
    try {
      return fs.readFileSync(`${slice}/${unit}/cgroup.procs`, 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      // not in this hierarchy
    }
  }
  return [];
}
