/**
 * `fusegate mount SOURCE [DIR]` and `fusegate unmount DIR`: an ordinary
 * user's front end of the broker (broker/service.ts).
 *
 * The client opens SOURCE itself, with the user's own rights, and passes the
 * fd: the broker can then mount only what this user could read (and write
 * only what this user could write). DIR goes as an absolute path; the broker
 * opens it again with the user's rights.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseCommandLine, stringValue } from '../lib/cli-args';
import { connectSystemBus } from '../lib/dbus/bus';
import { FusegateError, MountExit } from '../lib/errors';
import { processIo, type Io } from '../lib/output';
import { timeoutMsOrDefault } from '../lib/timeouts';
import { BUS_NAME, ERROR, INTERFACE, OBJECT_PATH } from './names';

export const MOUNT_HELP = `NAME
    fusegate mount, fusegate unmount - mount an image or device as an ordinary user

SYNOPSIS
    fusegate mount [-r] [-t TYPE] [-o OPTIONS] SOURCE [DIR]
    fusegate unmount DIR

DESCRIPTION
    mount asks fusegate's broker (org.fusegate.Mount1 on the system bus) to
    mount SOURCE, an image file or a block device you can read, on DIR, a
    directory you own; without DIR on /run/media/$USER/<label>, as udisks2
    does. The trust policy decides how (usually a sandboxed FUSE server),
    and polkit whether you may: a sandboxed mount is allowed in an active
    local session, the kernel's own driver needs an administrator.

    Files show as yours; the mount is always nosuid,nodev. If you cannot
    write SOURCE, it is mounted read-only.

    unmount takes away a mount you made (someone else's needs an
    administrator).

OPTIONS
    -r, --read-only   mount read-only
    -t, --type TYPE   the type you expect; the probe decides anyway
    -o, --options O   comma-separated: ro, rw, noatime, relatime, nodiratime,
                      noexec, exec, sync, async, dirsync
    -h, --help        show this text

EXIT STATUS
    0 mounted (unmounted); 1 usage error; 2 no system bus or broker;
    32 refused (not authorized, or by the policy) or failed

SEE ALSO
    fusegate policy explain --uid, pkaction --action-id org.fusegate.mount --verbose`;

const O_RDONLY = fs.constants.O_RDONLY;
const O_RDWR = fs.constants.O_RDWR;
const O_CLOEXEC = 0o2000000;

interface Reply {
  body: unknown[];
}

async function callBroker(member: string, signature: string, body: unknown[], timeoutMs: number): Promise<Reply> {
  const dbus = require('dbus-next') as typeof import('dbus-next');
  const bus = await connectSystemBus(timeoutMsOrDefault('systemdBus'));
  let timer: NodeJS.Timeout | undefined;
  try {
    const msg = new dbus.Message({ destination: BUS_NAME, path: OBJECT_PATH, interface: INTERFACE, member, signature, body });
    return (await Promise.race([
      bus.call(msg),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new FusegateError(`the broker did not answer within ${timeoutMs / 1000} s`, { exitCode: MountExit.SYSTEM })), timeoutMs);
      }),
    ])) as Reply;
  } catch (e) {
    throw brokerError(e);
  } finally {
    clearTimeout(timer);
    bus.disconnect();
  }
}

/** A D-Bus error from the broker as a FusegateError: its text is "message\nhint". */
export function brokerError(e: unknown): unknown {
  if (e instanceof FusegateError) return e;
  const type = (e as { type?: string }).type;
  const text = (e as { text?: string }).text ?? (e as Error).message;
  if (typeof type !== 'string') return e;
  const [message, ...hint] = String(text).split('\n');
  if (type === ERROR.invalidArgs) return new FusegateError(message!, { hint: hint.join(' ') || undefined, exitCode: MountExit.USAGE });
  if (type.startsWith('org.fusegate.')) return new FusegateError(message!, { hint: hint.join(' ') || undefined, exitCode: MountExit.FAILURE });
  if (type === 'org.freedesktop.DBus.Error.ServiceUnknown' || type === 'org.freedesktop.DBus.Error.Spawn.ServiceNotFound') {
    return new FusegateError(`the fusegate broker is not installed (${type})`, { hint: "an administrator installs it with 'fusegate install'", exitCode: MountExit.SYSTEM });
  }
  if (type === 'org.freedesktop.DBus.Error.AccessDenied') {
    return new FusegateError(`the system bus refused the call: ${message}`, { hint: `is /usr/share/dbus-1/system.d/${BUS_NAME}.conf installed?`, exitCode: MountExit.SYSTEM });
  }
  return new FusegateError(`the broker failed: ${type}: ${message}`, { exitCode: MountExit.FAILURE });
}

/** Opens SOURCE as this user: read-write when asked and allowed, else read-only. */
export function openSource(source: string, readOnly: boolean): { fd: number; readOnly: boolean } {
  const tryOpen = (flags: number): number => fs.openSync(source, flags | O_CLOEXEC);
  try {
    if (!readOnly) {
      try {
        return { fd: tryOpen(O_RDWR), readOnly: false };
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'EACCES' && code !== 'EROFS' && code !== 'EPERM' && code !== 'EBUSY') throw e;
      }
    }
    return { fd: tryOpen(O_RDONLY), readOnly: true };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FusegateError(`cannot open ${source}: ${code === 'EACCES' ? 'permission denied' : (e as Error).message}`, {
      hint: code === 'EACCES' ? 'you can mount only what you can read yourself' : code === 'ENOENT' ? `check that ${source} exists` : undefined,
      exitCode: MountExit.FAILURE,
    });
  }
}

export async function mountMain(args: string[], io: Io = processIo): Promise<number> {
  const p = parseCommandLine(args, {
    options: { 'read-only': { type: 'boolean', short: 'r' }, type: { type: 'string', short: 't', valueName: 'a type' }, options: { type: 'string', short: 'o', valueName: 'options' } },
    maxPositionals: 2,
    prefix: 'mount: ',
    hint: "see 'fusegate mount --help'",
  });
  if (p.help) {
    io.out(MOUNT_HELP + '\n');
    return MountExit.SUCCESS;
  }
  const [source, dir] = p.positionals;
  if (source === undefined) throw new FusegateError('mount: SOURCE is missing', { hint: "see 'fusegate mount --help'", exitCode: MountExit.USAGE });
  const opts = stringValue(p.values, 'options');
  const wantRo = p.values['read-only'] === true || (opts ?? '').split(',').includes('ro');
  const { fd, readOnly } = openSource(source, wantRo);
  const { Variant } = require('dbus-next') as typeof import('dbus-next');
  const options: Record<string, InstanceType<typeof Variant>> = { 'read-only': new Variant('b', readOnly) };
  const type = stringValue(p.values, 'type');
  if (type !== undefined) options.type = new Variant('s', type);
  if (opts !== undefined) options.options = new Variant('s', opts);
  try {
    const reply = await callBroker('Mount', 'hsa{sv}', [fd, dir === undefined ? '' : path.resolve(dir), options], 2 * timeoutMsOrDefault('mount') + 120_000);
    io.out(`mounted ${source} at ${String(reply.body[0])}${readOnly && !wantRo ? ' (read-only: you cannot write it)' : ''}\n`);
    return MountExit.SUCCESS;
  } finally {
    fs.closeSync(fd);
  }
}

export async function unmountMain(args: string[], io: Io = processIo): Promise<number> {
  const p = parseCommandLine(args, { options: {}, maxPositionals: 1, prefix: 'unmount: ', hint: "see 'fusegate unmount --help'" });
  if (p.help) {
    io.out(MOUNT_HELP + '\n');
    return MountExit.SUCCESS;
  }
  const [dir] = p.positionals;
  if (dir === undefined) throw new FusegateError('unmount: DIR is missing', { hint: "see 'fusegate unmount --help'", exitCode: MountExit.USAGE });
  await callBroker('Unmount', 's', [path.resolve(dir)], 2 * timeoutMsOrDefault('mount') + 120_000);
  io.out(`unmounted ${path.resolve(dir)}\n`);
  return MountExit.SUCCESS;
}
