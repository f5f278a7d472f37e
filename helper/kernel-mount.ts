/**
 * The kernel path: hand the mount to mount(8) with `-i`, so it does not call
 * a helper again (which may be us, as /sbin/mount.<type>), and with the
 * policy's options. mount(8) sets up loop devices for image files, writes
 * utab for the x-fusegate.* options, prints its own error on failure and
 * returns mount(8)'s exit codes, which we pass on.
 */
import { MountExit } from '../lib/errors';
import { run } from '../lib/native';

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

export async function kernelMount(req: KernelMountRequest): Promise<number> {
  const options = [...req.options, ...(req.noMtab ? [] : req.utabOptions)];
  const argv = [
    'mount',
    '-i',
    ...(req.noMtab ? ['-n'] : []),
    ...(req.verbose ? ['-v'] : []),
    '-t',
    req.fsType,
    ...(options.length > 0 ? ['-o', options.join(',')] : []),
    req.source,
    req.mountpoint,
  ];
  const status = await run(MOUNT_BIN, argv);
  return status.signal !== 0 ? MountExit.SYSTEM : status.code;
}
