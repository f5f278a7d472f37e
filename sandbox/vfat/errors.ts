/**
 * The one error type the FAT engine throws on purpose. `code` is the errno
 * name the FUSE layer answers with; `reason` says what was wrong, for logs
 * and for a refused mount. Anything else escaping the engine is a bug.
 */
export type FatErrno =
  | 'EIO' | 'ENOENT' | 'EEXIST' | 'ENOTDIR' | 'EISDIR' | 'ENOTEMPTY' | 'ENOSPC'
  | 'ENAMETOOLONG' | 'EINVAL' | 'EPERM' | 'EROFS' | 'EBADF' | 'EFBIG' | 'EBUSY';

export class FatError extends Error {
  constructor(
    readonly code: FatErrno,
    readonly reason: string,
  ) {
    super(`${code}: ${reason}`);
    this.name = 'FatError';
  }
}

/** Thrown when a volume cannot be mounted at all (bad boot sector, geometry, options). */
export class MountRefused extends FatError {
  constructor(reason: string) {
    super('EINVAL', reason);
    this.name = 'MountRefused';
  }
}

/** Receives one line per inconsistency found on the volume. */
export type FatLogger = (message: string) => void;

export const ERRNO: Record<FatErrno, number> = {
  EPERM: 1, ENOENT: 2, EIO: 5, EBADF: 9, EBUSY: 16, EEXIST: 17, ENOTDIR: 20, EISDIR: 21,
  EINVAL: 22, EFBIG: 27, ENOSPC: 28, EROFS: 30, ENAMETOOLONG: 36, ENOTEMPTY: 39,
};
