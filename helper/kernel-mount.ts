/**
 * The kernel path: mount with the kernel's driver, with the policy's options,
 * as `mount -i -n --no-canonicalize -t TYPE -o OPTIONS SOURCE DIR` would —
 * through libmount, the library mount(8) is built on, in this process.
 * libmount sets up a loop device for an image file, parses the options and
 * gives mount(8)'s exit code and message. Helpers are disabled (-i): the
 * helper for TYPE may be us, as /sbin/mount.<type>.
 *
 * Through the pins (issue 12, finding 4): the target is the pinned
 * directory's /proc/self/fd/N, which the kernel resolves to the pinned inode
 * itself, so a DIR swapped for a symlink after pinning cannot move the mount.
 * The source is the pinned inode's own path (for a block device a node under
 * /dev, which only root can change), and the new superblock's device is
 * checked against the pinned one before the mount is reported made. utab is
 * then written for the real paths, as the sandbox path does (libmount would
 * record /proc/self/fd/N).
 *
 * In-process because the kernel path's cost is part of every trusted mount
 * (bench/helper-startup): starting mount(8) took ~3 ms of it.
 */
import * as fs from 'node:fs';
import { MountExit } from '../lib/errors';
import type { MountinfoEntry } from '../lib/mountinfo';
import { libmountMount } from '../lib/native';
import { statSource } from '../policy/facts';
import type { MountOptions } from '../policy/options';
import { abortAndDetach, topMountAt } from './fuse-mount';
import type { Pinned } from './pins';
import { recordInUtab } from './utab';
import { mark } from './timing';

export interface KernelMountRequest {
  source: Pinned;
  mountpoint: Pinned;
  fsType: string;
  options: MountOptions;
  /** fusegate's own utab options (x-fusegate.rule=…) */
  utabOptions: string[];
  noMtab: boolean;
}

export interface KernelMountResult {
  /** mount(8)'s exit code */
  code: number;
  /** mount(8)'s message, as it would print it ("DIR: why."), or null */
  message: string | null;
}

/**
 * Whether the new mount sits on the pinned source: for a block device, its
 * device number; for an image, the loop device's backing file. libmount
 * opens an image by path to set up the loop device (it canonicalizes even
 * /proc/self/fd/N to a path), so this is checked after the fact: the kernel
 * reports both paths (the loop's backing file, the pinned fd) from the
 * inodes themselves, and two inodes never share a path at the same moment.
 */
function mountedPinnedSource(source: Pinned, made: MountinfoEntry | undefined): boolean {
  if (made === undefined) return false;
  if (source.stat.isBlockDevice()) return made.device === statSource(source.fdPath)?.device;
  const loop = /^\/dev\/(loop\d+)$/.exec(made.source)?.[1];
  if (loop === undefined) return false;
  try {
    return fs.readFileSync(`/sys/block/${loop}/loop/backing_file`, 'utf8').trimEnd() === fs.readlinkSync(source.fdPath);
  } catch {
    return false;
  }
}

export async function kernelMount(req: KernelMountRequest): Promise<KernelMountResult> {
  const shown = req.mountpoint.path;
  const r = await libmountMount({
    source: req.source.path,
    target: req.mountpoint.fdPath,
    fsType: req.fsType,
    options: req.options.list,
    noMtab: true,
    noCanonicalize: true,
  });
  if (r.code !== MountExit.SUCCESS) return { code: r.code, message: r.message === '' ? null : `${shown}: ${r.message}.` };
  mark('kernel-mounted');

  const made = topMountAt(req.mountpoint.fd);
  if (!mountedPinnedSource(req.source, made)) {
    abortAndDetach(req.mountpoint.fd, made?.device ?? null);
    return { code: MountExit.FAILURE, message: `${shown}: ${req.source.path} changed after fusegate checked it; the mount was undone.` };
  }
  mark('checked');
  if (req.noMtab) return { code: MountExit.SUCCESS, message: null };
  const utab = [...req.utabOptions, ...req.options.userspace];
  // The source as the mount shows it: for an image, the loop device libmount set up.
  const err = await recordInUtab(made?.source ?? req.source.path, shown, req.fsType, utab);
  if (err !== null) return { code: MountExit.MTAB, message: `${shown}: mounted, but utab could not be written: ${err}.` };
  return { code: MountExit.SUCCESS, message: null };
}
