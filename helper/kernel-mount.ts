/**
 * The kernel path: hand the mount to mount(8) with `-i`, so it does not call
 * a helper again (which may be us, as /sbin/mount.<type>), and with the
 * policy's options. mount(8) sets up loop devices for image files, writes
 * utab for the x-fusegate.* options and returns mount(8)'s own exit codes.
 */
import { spawnSync } from 'node:child_process';
import { MountExit } from '../lib/errors';

export const MOUNT_BIN = process.env.FUSEGATE_MOUNT_BIN ?? '/bin/mount';

export interface KernelMountRequest {
  source: string;
  mountpoint: string;
  fsType: string;
  options: string[];
  /** userspace-only options for utab (x-fusegate.rule=…) */
  utabOptions: string[];
  noMtab: boolean;
  verbose: boolean;
}

export interface KernelMountResult {
  exitCode: number;
  /** what mount(8) printed on stderr, for our one-line report */
  stderr: string;
}

export function kernelMount(req: KernelMountRequest): KernelMountResult {
  const options = [...req.options, ...(req.noMtab ? [] : req.utabOptions)];
  const argv = [
    '-i',
    ...(req.noMtab ? ['-n'] : []),
    ...(req.verbose ? ['-v'] : []),
    '-t',
    req.fsType,
    ...(options.length > 0 ? ['-o', options.join(',')] : []),
    req.source,
    req.mountpoint,
  ];
  const r = spawnSync(MOUNT_BIN, argv, { stdio: ['ignore', 'inherit', 'pipe'], encoding: 'utf8' });
  if (r.error) return { exitCode: MountExit.SYSTEM, stderr: `cannot run ${MOUNT_BIN}: ${r.error.message}` };
  return { exitCode: r.status ?? MountExit.SYSTEM, stderr: (r.stderr ?? '').trim() };
}
