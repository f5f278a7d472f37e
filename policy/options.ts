/**
 * Mount option arithmetic: which requested options a pattern refuses, and
 * what the option list looks like once forced options and read-only are
 * applied. Forced options replace the requested option they contradict
 * (nosuid replaces suid, uid=1000 replaces uid=0) rather than being appended
 * after it, so the result never depends on which of two contradicting options
 * a filesystem driver happens to honour last.
 */
import { msFlagsOf } from '../lib/mount-flags';

const OPPOSITES: Record<string, string> = {
  suid: 'nosuid', dev: 'nodev', exec: 'noexec', ro: 'rw', sync: 'async',
  atime: 'noatime', diratime: 'nodiratime', relatime: 'norelatime',
  strictatime: 'nostrictatime', lazytime: 'nolazytime', mand: 'nomand',
  iversion: 'noiversion', dirsync: 'nodirsync',
};
for (const [a, b] of Object.entries(OPPOSITES)) if (OPPOSITES[b] === undefined) OPPOSITES[b] = a;

export function optionName(opt: string): string {
  const eq = opt.indexOf('=');
  return eq < 0 ? opt : opt.slice(0, eq);
}

/** The flag that contradicts `opt` (nosuid for suid), if it is a flag. */
export function opposite(opt: string): string | undefined {
  return opt.includes('=') ? undefined : OPPOSITES[opt];
}

/** True when forcing `forced` must drop the requested option `requested`. */
function contradicts(forced: string, requested: string): boolean {
  if (forced.includes('=')) return optionName(forced) === optionName(requested);
  return requested === forced || OPPOSITES[forced] === requested;
}

export interface ApplyResult {
  options: string[];
  /** requested options that a forced option replaced */
  overridden: string[];
}

/** Requested options with `forced` applied (and ro, when `readOnly`). */
export function applyForced(requested: readonly string[], forced: readonly string[], readOnly: boolean): ApplyResult {
  const all = readOnly && !forced.includes('ro') ? [...forced.filter((f) => f !== 'rw'), 'ro'] : forced;
  const overridden: string[] = [];
  const kept = requested.filter((r) => {
    const hit = all.find((f) => contradicts(f, r));
    if (hit === undefined) return true;
    if (hit !== r) overridden.push(r);
    return false;
  });
  return { options: dedupe([...kept, ...all]), overridden };
}

function dedupe(opts: string[]): string[] {
  return [...new Set(opts)];
}

/**
 * The options one mount is made with, in the one form that travels from
 * decide() to the mount mechanism: the list as mount(8) -o would take it
 * (the kernel path hands it to libmount, the sandbox path to the server as
 * -o), with the two views the mechanisms need split off once, here.
 */
export interface MountOptions {
  /** every option, in order */
  list: string[];
  /** the MS_* bits of the VFS flags in the list (ro, nosuid, nodev, noexec, …): forced on a FUSE mount whatever the server asks */
  msFlags: number;
  /** userspace-only options (x-*, uhelper=): recorded in utab, never given to a filesystem */
  userspace: string[];
}

export function mountOptionsOf(list: readonly string[]): MountOptions {
  return {
    list: [...list],
    msFlags: msFlagsOf(list),
    userspace: list.filter((o) => o.startsWith('uhelper=') || o.startsWith('x-')),
  };
}
