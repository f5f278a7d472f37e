/**
 * What this machine can do for a mount right now: which backends' sockets
 * exist and whether the kernel has a driver. The helper decides with it, and
 * `fusegate policy explain` shows the same decision the helper would make.
 */
import * as fs from 'node:fs';
import { BACKENDS, socketPath } from './backends';

/** Whether the running kernel lists `fsType` in /proc/filesystems (a driver built in or loaded). */
export function kernelListsFilesystem(fsType: string, file = '/proc/filesystems'): boolean {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return false;
  }
  // "nodev\tfuse" or "\text4": the name is the last tab-separated field.
  return text.split('\n').some((l) => l.split('\t').pop() === fsType);
}

/** Whether a mount of `fsType` can use a kernel driver: one listed now, or a module on disk. */
export function kernelHasDriver(fsType: string): boolean {
  if (kernelListsFilesystem(fsType)) return true;
  // Not loaded yet: a module on disk will be loaded by the mount itself.
  try {
    const release = fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
    return fs.existsSync(`/lib/modules/${release}/kernel/fs/${fsType}`);
  } catch {
    return false;
  }
}

/** Backends whose socket exists now, for the probed type. */
export function availableBackends(fsType: string | null): string[] {
  if (fsType === null) return [];
  return BACKENDS.filter((b) => {
    try {
      return fs.statSync(socketPath(b, fsType)).isSocket();
    } catch {
      return false;
    }
  }).map((b) => b.name);
}

/** The availability resolveFallback() needs, as this machine has it now. */
export function machineAvailability(fsType: string | null): { fuse: boolean; backends: string[]; kernel: boolean } {
  return {
    fuse: fs.existsSync('/dev/fuse'),
    backends: availableBackends(fsType),
    kernel: fsType !== null && kernelHasDriver(fsType),
  };
}
