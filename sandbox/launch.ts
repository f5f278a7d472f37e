/**
 * Handing over to the FUSE server: after BYEE the adapter replaces itself
 * (execve) with the unmodified server, which inherits exactly two fds —
 * /dev/fuse on 3 and the source on 4 — and the fdmap preload that makes it
 * use them instead of opening device nodes it cannot see.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Backend } from '../lib/backends';
import * as native from '../lib/native';
import type { MountHandoff } from './adapter-session';
import { allowedDeviceIoctls } from './device-ioctls';

export const FUSE_FD = 3;
export const SOURCE_FD = 4;

/**
 * The name the server opens its device by. Deliberately not the host's
 * /dev/sdX: ntfs-3g refuses a device that its (propagated) mount table shows
 * as mounted, and the name means nothing inside the sandbox anyway.
 */
export const SANDBOX_SOURCE = '/run/fusegate/source';

export interface ServerLaunch {
  file: string;
  argv: string[];
  env: string[];
  /** the empty directory given to servers that insist on a mountpoint path */
  mountpointDir: string | null;
}

/** Where the built shared objects live: FUSEGATE_LIB_DIR (set by the unit) or the package. */
export function libDir(): string {
  return process.env.FUSEGATE_LIB_DIR ?? path.resolve(__dirname, '..', '..');
}

export function preloadPath(): string {
  const candidates = [
    path.join(libDir(), 'build', 'Release', 'fdmap-preload.so'),
    path.resolve(__dirname, '..', 'build', 'Release', 'fdmap-preload.so'),
  ];
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) throw new Error(`fdmap-preload.so not found (looked in ${candidates.join(', ')}); run 'npm ci'`);
  return found;
}

function optionValue(options: readonly string[], key: string): number | undefined {
  const o = options.find((x) => x.startsWith(`${key}=`));
  const n = o === undefined ? NaN : Number(o.slice(key.length + 1));
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

export function planLaunch(backend: Backend, h: MountHandoff): ServerLaunch {
  if (!backend.argv) throw new Error(`backend ${backend.name} has no command line in the backends table`);
  // libfuse 2 and ntfs-3g want an existing, empty, writable directory; it
  // stays empty: the real mount is the helper's, outside the sandbox.
  const mountpointDir = backend.delivery === 'devfd-mountpoint' ? null : fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-mnt-'));
  const argv = backend.argv({
    source: SANDBOX_SOURCE,
    mountpoint: mountpointDir ?? '',
    readOnly: h.readOnly,
    uid: optionValue(h.args.options, 'uid') ?? 0,
    gid: optionValue(h.args.options, 'gid') ?? 0,
  });
  const mapDevFuse = backend.delivery === 'preload-devfuse';
  return {
    file: backend.binary,
    argv: [path.basename(backend.binary), ...argv],
    env: [
      'PATH=/usr/sbin:/usr/bin:/sbin:/bin',
      `LD_PRELOAD=${preloadPath()}`,
      `FUSEGATE_SOURCE_PATH=${SANDBOX_SOURCE}`,
      `FUSEGATE_SOURCE_FD=${SOURCE_FD}`,
      `FUSEGATE_FUSE_FD=${FUSE_FD}`,
      `FUSEGATE_MAP_DEV_FUSE=${mapDevFuse ? 1 : 0}`,
      'FUSEGATE_FOREGROUND=1',
    ],
    mountpointDir,
  };
}

/**
 * Puts /dev/fuse on fd 3 and the source on fd 4 (inheritable), marks every
 * other fd close-on-exec, restricts the device ioctls, and execs the server. Returns only by throwing.
 */
export function execServer(launch: ServerLaunch, h: MountHandoff, socketFd: number): never {
  // Park both above the fixed numbers first: either may currently be 3 or 4.
  const fuse = native.dupAbove(h.fuseFd, 10);
  const source = native.dupAbove(h.sourceFd, 10);
  fs.closeSync(socketFd);
  native.dup3(fuse, FUSE_FD, 0);
  native.dup3(source, SOURCE_FD, 0);
  native.closeFromOnExec(SOURCE_FD + 1);
  // Node marks stdin/stdout/stderr close-on-exec at start-up (uv_disable_stdio_inheritance):
  // without this the server's own messages never reach the journal.
  for (const fd of [0, 1, 2]) native.setCloexec(fd, false);
  // Last, after the unit's own filter: the server may query its device but
  // not detach it, change it or reread its partitions (device-ioctls.ts).
  native.restrictDeviceIoctls(allowedDeviceIoctls(h.readOnly));
  return native.execve(launch.file, launch.argv, launch.env);
}
