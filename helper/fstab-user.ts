/**
 * An /etc/fstab `user`/`users` entry reaches the helper as the ordinary user
 * (mount(8) drops to the real uid before it runs a helper). Such a mount is
 * the administrator's grant: it goes to the broker (`fusegate mount`'s
 * service, broker/), which reads the entry itself, asks polkit and mounts.
 * Anything else from an ordinary user is refused as before.
 *
 * The broker's client code is required from dist/broker beside this
 * bundle by a path esbuild does not follow: the kernel path's bundle and
 * start-up stay as they were.
 */
import * as path from 'node:path';
import { userEntryFor } from '../broker/fstab';
import { OWNER_OPTION } from '../broker/names';
import { optionValue, readUtab } from '../lib/utab';

function forwarder(): typeof import('../broker/fstab-forward') {
  return require(path.join(__dirname, '..', 'broker', 'fstab-forward.js')) as typeof import('../broker/fstab-forward');
}

/** The exit status of the forwarded mount, or null when no fstab entry lets users mount DIR. */
export async function forwardUserMount(mountpoint: string, say: (line: string) => void): Promise<number | null> {
  if (userEntryFor(mountpoint) === null) return null;
  return await forwarder().forwardFstabMount(mountpoint, say);
}

/**
 * umount(8) runs umount.fusegate as the user for an fstab `user` mount: a
 * mount the broker made (utab names its owner) goes back to the broker,
 * which lets its owner (or an administrator, through polkit) unmount it.
 */
export async function forwardUserUnmount(mountpoint: string, say: (line: string) => void): Promise<number | null> {
  const entry = readUtab().filter((e) => e.target === mountpoint).pop();
  if (!entry || optionValue(entry.options, OWNER_OPTION) === null) return null;
  return await forwarder().forwardUnmount(mountpoint, say);
}
