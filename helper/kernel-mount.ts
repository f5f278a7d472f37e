/**
 * The kernel path: mount with the kernel's driver, with the policy's options,
 * exactly as `mount -i -t TYPE -o OPTIONS SOURCE DIR` would — through
 * libmount, the library mount(8) is built on, in this process. libmount sets
 * up a loop device for an image file, parses the options, writes utab for the
 * x-fusegate.* ones, and gives mount(8)'s exit code and message. Helpers are
 * disabled (-i): the helper for TYPE may be us, as /sbin/mount.<type>.
 *
 * In-process because the kernel path's cost is part of every trusted mount
 * (bench/helper-startup): starting mount(8) took ~3 ms of it.
 */
import { libmountMount } from '../lib/native';

export interface KernelMountRequest {
  source: string;
  mountpoint: string;
  fsType: string;
  options: string[];
  /** userspace-only options for utab (x-fusegate.rule=…) */
  utabOptions: string[];
  noMtab: boolean;
}

export interface KernelMountResult {
  /** mount(8)'s exit code */
  code: number;
  /** mount(8)'s message, as it would print it ("DIR: why."), or null */
  message: string | null;
}

export async function kernelMount(req: KernelMountRequest): Promise<KernelMountResult> {
  const r = await libmountMount({
    source: req.source,
    target: req.mountpoint,
    fsType: req.fsType,
    options: [...req.options, ...(req.noMtab ? [] : req.utabOptions)],
    noMtab: req.noMtab,
  });
  return { code: r.code, message: r.message === '' ? null : `${req.mountpoint}: ${r.message}.` };
}
