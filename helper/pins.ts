/**
 * Pinning: the helper opens SOURCE and DIR once, as the caller, before it
 * asks the policy anything, and from then on works only through those fds.
 * A path swapped for a symlink or another device after the policy looked at
 * it can then not change what is opened or where the mount lands.
 */
import * as fs from 'node:fs';
import { FusegateError, MountExit } from '../lib/errors';
import * as native from '../lib/native';
import type { SessionState } from '../policy/types';

const O_PATH = 0o10000000;

export interface Pinned {
  /** O_PATH fd, opened as the caller */
  fd: number;
  /** fstat of the fd */
  stat: fs.Stats;
  /** `/proc/self/fd/N`: names the pinned inode itself, wherever its path now leads */
  fdPath: string;
  /**
   * the kernel's path of the pinned inode when it was pinned (readlink of
   * fdPath): symlinks resolved, for what a mount shows and utab records
   */
  path: string;
}

export interface Caller {
  uid: number;
  gid: number;
  groups: number[];
  /** the caller's logind session, when the broker asked logind (policy fact `session`) */
  session?: SessionState;
}

function pin(file: string, caller: Caller, what: string): Pinned {
  let fd: number;
  try {
    fd = native.openAs(file, O_PATH, 0, caller);
  } catch (err) {
    const code = err instanceof native.SyscallError ? err.code : 'EIO';
    const hint =
      code === 'ENOENT' ? `check that ${what} ${file} exists` : code === 'EACCES' ? `you may not access ${file}` : undefined;
    throw new FusegateError(`cannot open ${what} ${file}: ${(err as Error).message}`, {
      hint,
      exitCode: MountExit.FAILURE,
    });
  }
  const fdPath = `/proc/self/fd/${fd}`;
  return { fd, stat: fs.fstatSync(fd), fdPath, path: fs.readlinkSync(fdPath) };
}

export function pinSource(source: string, caller: Caller): Pinned {
  const p = pin(source, caller, 'source');
  if (!p.stat.isBlockDevice() && !p.stat.isFile()) {
    fs.closeSync(p.fd);
    throw new FusegateError(`${source} is neither a block device nor an image file`, { exitCode: MountExit.FAILURE });
  }
  return p;
}

export function pinMountpoint(dir: string, caller: Caller): Pinned {
  const p = pin(dir, caller, 'mountpoint');
  if (!p.stat.isDirectory() && !p.stat.isFile()) {
    fs.closeSync(p.fd);
    throw new FusegateError(`mountpoint ${dir} is neither a directory nor a regular file`, { exitCode: MountExit.FAILURE });
  }
  return p;
}
