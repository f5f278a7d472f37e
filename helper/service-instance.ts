/**
 * The systemd service instance that serves one sandboxed mount, found
 * through the cgroup tree rather than D-Bus (no bus connection on the mount
 * path). systemd names Accept=yes instances
 * `<backend>@<n>-<client pid>-<client uid>.service`, the client being the
 * helper; the helper records the name in utab (x-fusegate.unit=) so that
 * umount.fusegate can wait for exactly those processes.
 */
import * as fs from 'node:fs';

export const SYSTEM_SLICE = process.env.FUSEGATE_CGROUP_SYSTEM_SLICE ?? '/sys/fs/cgroup/system.slice';

/** systemd escapes '-' in slice names as \x2d. */
function templateSlice(backend: string): string {
  return `${SYSTEM_SLICE}/system-${backend.replace(/-/g, '\\x2d')}.slice`;
}

/** The instance started for this process's connection to `backend`, or null outside systemd. */
export function instanceForClient(backend: string, clientPid: number, clientUid: number): string | null {
  const suffix = `-${clientPid}-${clientUid}.service`;
  try {
    return fs.readdirSync(templateSlice(backend)).find((d) => d.startsWith(`${backend}@`) && d.endsWith(suffix)) ?? null;
  } catch {
    return null;
  }
}

/** Pids in the instance's cgroup: the FUSE server (the adapter exec'd into it). Empty once it is gone. */
export function instanceProcesses(unit: string): number[] {
  const backend = unit.slice(0, unit.indexOf('@'));
  try {
    return fs
      .readFileSync(`${templateSlice(backend)}/${unit}/cgroup.procs`, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}
