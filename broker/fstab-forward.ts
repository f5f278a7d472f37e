/**
 * The helpers' way to the broker for an /etc/fstab `user`/`users` entry:
 * mount(8) and umount(8) run helpers for those as the user, who may not
 * mount, so the helper asks the broker (MountFstab, Unmount) and reports its
 * answer as mount(8) expects. Loaded by the helper only on that path (helper/fstab-user.ts),
 * from dist/ beside the bundle: dbus-next and the bus code never weigh on
 * the kernel path's start-up.
 */
import { connectSystemBus } from '../lib/dbus/bus';
import { FusegateError, MountExit } from '../lib/errors';
import { timeoutMsOrDefault } from '../lib/timeouts';
import { BUS_NAME, INTERFACE, OBJECT_PATH } from './names';
import { brokerError } from './client';

/** mount(8) ran the helper as the user for an fstab `user` entry: MountFstab. */
export function forwardFstabMount(mountpoint: string, say: (line: string) => void): Promise<number> {
  return forward('MountFstab', mountpoint, say);
}

/** umount(8) ran umount.fusegate as the user for a mount the broker made: Unmount. */
export function forwardUnmount(mountpoint: string, say: (line: string) => void): Promise<number> {
  return forward('Unmount', mountpoint, say);
}

async function forward(member: 'MountFstab' | 'Unmount', mountpoint: string, say: (line: string) => void): Promise<number> {
  const dbus = require('dbus-next') as typeof import('dbus-next');
  try {
    const bus = await connectSystemBus(timeoutMsOrDefault('systemdBus'));
    let timer: NodeJS.Timeout | undefined;
    try {
      const limit = 2 * timeoutMsOrDefault('mount') + 120_000;
      const reply = await Promise.race([
        bus.call(new dbus.Message({ destination: BUS_NAME, path: OBJECT_PATH, interface: INTERFACE, member, signature: 's', body: [mountpoint] })),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new FusegateError(`the broker did not answer within ${limit / 1000} s`, { exitCode: MountExit.SYSTEM })), limit);
        }),
      ]);
      void reply;
      return MountExit.SUCCESS;
    } finally {
      clearTimeout(timer);
      bus.disconnect();
    }
  } catch (e) {
    const err = brokerError(e);
    if (!(err instanceof FusegateError)) throw err;
    say(err.message);
    if (err.hint) say(err.hint);
    return err.exitCode === MountExit.USAGE ? MountExit.USAGE : err.exitCode;
  }
}
