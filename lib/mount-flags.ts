/** Mount options that are MS_* flags: what the policy forces and DOIT carries. */
import { MS } from './native';

export const MS_FLAG_OF_OPTION: Readonly<Record<string, number>> = {
  ro: MS.RDONLY,
  nosuid: MS.NOSUID,
  nodev: MS.NODEV,
  noexec: MS.NOEXEC,
  noatime: MS.NOATIME,
  nodiratime: MS.NODIRATIME,
  sync: MS.SYNCHRONOUS,
  dirsync: MS.DIRSYNC,
  nosymfollow: MS.NOSYMFOLLOW,
};

/** The MS_* flags the options in a list stand for; other options contribute nothing. */
export function msFlagsOf(options: readonly string[]): number {
  return options.reduce((flags, o) => flags | (MS_FLAG_OF_OPTION[o] ?? 0), 0);
}
