/**
 * The one check that a command runs as root (real and effective uid 0), for
 * the mount helpers and the administrator's commands alike. Each caller says
 * in its own words what needs root and what to do instead.
 */
import { FusegateError, MountExit } from './errors';

export interface Ids {
  uid: number;
  euid: number;
}

export function isRoot(ids: Ids = { uid: process.getuid!(), euid: process.geteuid!() }): boolean {
  return ids.uid === 0 && ids.euid === 0;
}

/** Throws a usage error (mount(8)'s exit status 1) unless root runs this. */
export function requireRoot(message: string, hint: string | undefined, ids?: Ids): void {
  if (!isRoot(ids)) throw new FusegateError(message, { hint, exitCode: MountExit.USAGE });
}
