/**
 * Mount options, as udisks2 passes them for vfat
 * (uid=,gid=,shortname=mixed,utf8=1,showexec,flush) and as the kernel's
 * vfat driver honours them. Unknown options are refused, never ignored.
 */
import { MountRefused } from './errors';
import { ShortnameMode } from './names';

export interface FatOptions {
  uid: number;
  gid: number;
  /** permission bits removed from directories and files */
  dmask: number;
  fmask: number;
  shortname: ShortnameMode;
  /** execute bits only for .EXE/.COM/.BAT files */
  showexec: boolean;
  /** as Linux's vfat: a file written through a handle is made durable (fsync) when the handle is closed */
  flush: boolean;
  readOnly: boolean;
}

export const DEFAULT_OPTIONS: FatOptions = {
  uid: 0,
  gid: 0,
  dmask: 0o022,
  fmask: 0o022,
  shortname: 'mixed',
  showexec: false,
  flush: false,
  readOnly: false,
};

function id(key: string, v: string | undefined): number {
  if (v === undefined || !/^\d+$/.test(v) || Number(v) > 0xfffffffe) throw new MountRefused(`option ${key}= needs a numeric id`);
  return Number(v);
}

function mask(key: string, v: string | undefined): number {
  if (v === undefined || !/^[0-7]{1,4}$/.test(v)) throw new MountRefused(`option ${key}= needs an octal mask`);
  return parseInt(v, 8) & 0o777;
}

/** Parses "uid=1000,gid=1000,shortname=mixed,utf8,..." (or an array of options). */
export function parseOptions(input: string | string[] | undefined, base: Partial<FatOptions> = {}): FatOptions {
  const o: FatOptions = { ...DEFAULT_OPTIONS, ...base };
  const list = input === undefined ? [] : Array.isArray(input) ? input : input.split(',');
  for (const item of list) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    const v = eq < 0 ? undefined : item.slice(eq + 1);
    switch (key) {
      case 'uid': o.uid = id(key, v); break;
      case 'gid': o.gid = id(key, v); break;
      case 'umask': o.dmask = o.fmask = mask(key, v); break;
      case 'dmask': o.dmask = mask(key, v); break;
      case 'fmask': o.fmask = mask(key, v); break;
      case 'shortname':
        if (v !== 'mixed' && v !== 'lower' && v !== 'win95' && v !== 'winnt') throw new MountRefused(`shortname=${v} is not one of lower, win95, winnt, mixed`);
        o.shortname = v;
        break;
      case 'utf8':
        if (v !== undefined && v !== '1' && v !== 'yes' && v !== 'true') throw new MountRefused('only utf8 names are supported (utf8=0 refused)');
        break;
      case 'iocharset':
        if (v !== 'utf8' && v !== 'utf-8') throw new MountRefused(`iocharset=${v}: only utf8 is supported`);
        break;
      case 'codepage':
        if (v !== '437') throw new MountRefused(`codepage=${v}: only 437 is supported`);
        break;
      case 'tz':
        // the engine reads and writes FAT's zone-less times as UTC
        if (v !== 'UTC') throw new MountRefused(`tz=${v}: only tz=UTC is supported`);
        break;
      case 'showexec': o.showexec = v === undefined ? true : bool(key, v); break;
      case 'flush': o.flush = v === undefined ? true : bool(key, v); break;
      case 'ro': o.readOnly = true; break;
      case 'rw': o.readOnly = false; break;
      default:
        throw new MountRefused(`unknown mount option "${item}"`);
    }
  }
  return o;
}

function bool(key: string, v: string): boolean {
  if (v === '1' || v === 'yes' || v === 'true') return true;
  if (v === '0' || v === 'no' || v === 'false') return false;
  throw new MountRefused(`option ${key}=${v} is not a boolean`);
}

/**
 * Options on a mount(8) command line that are not the filesystem's: VFS
 * flags the kernel applies to the mount itself (nosuid, noatime, …), and
 * what only mount(8), fstab or utab read (uhelper=, x-*, noauto, …). The
 * helper hands the whole list to the sandbox; these never reach the engine,
 * which refuses options it does not know.
 */
const NOT_FAT_OPTIONS = new Set([
  'ro', 'rw', 'suid', 'nosuid', 'dev', 'nodev', 'exec', 'noexec', 'sync', 'async', 'dirsync', 'nodirsync',
  'atime', 'noatime', 'diratime', 'nodiratime', 'relatime', 'norelatime', 'strictatime', 'nostrictatime',
  'lazytime', 'nolazytime', 'mand', 'nomand', 'silent', 'loud', 'nosymfollow', 'symfollow', 'iversion', 'noiversion',
  'defaults', 'auto', 'noauto', 'user', 'nouser', 'users', 'owner', 'group', 'nofail', '_netdev', 'uhelper', 'helper',
]);

/** The FAT engine's part of a mount's option list (kernel vfat options only). */
export function fatOptionsOf(mountOptions: readonly string[]): string[] {
  return mountOptions.filter((o) => {
    const eq = o.indexOf('=');
    const key = eq < 0 ? o : o.slice(0, eq);
    return o !== '' && !NOT_FAT_OPTIONS.has(key) && !key.startsWith('x-');
  });
}
