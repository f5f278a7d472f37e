/**
 * The sandbox path: connect to the chosen backend's socket (systemd starts a
 * fresh sandboxed service instance for the connection), hold the protocol
 * conversation, then confirm the new mount answers. Any failure after the
 * mount was made tears it down, so mount(8) never leaves a half-made mount.
 */
import * as fs from 'node:fs';
import { FusegateError, MountExit } from '../lib/errors';
import * as native from '../lib/native';
import { Channel, ProtocolError } from '../lib/protocol';
import type { MountContext } from './context';
import { abortAndDetach } from './fuse-mount';
import { instanceForClient, instanceProcesses } from '../lib/instance';
import { TIMEOUTS } from '../lib/timeouts';
import { guardNewMount } from './watchdog';
import { KERNEL_MECHANISM, ServiceFailed, HelperSession, type SessionEvent, type SessionMechanism, type SessionResult } from './helper-session';

export interface SandboxOutcome {
  result: SessionResult;
  /** the systemd service instance serving the mount, found in the cgroup tree */
  unit: string | null;
  /** the FUSE server's pid (the adapter exec'd into it), from the instance's cgroup */
  serverPid: number | null;
}

export class SandboxMountError extends FusegateError {
  constructor(
    message: string,
    readonly unit: string | null,
    cause?: unknown,
    backend = '<backend>',
  ) {
    super(message, {
      // A refused mount's instance is gone (collected) by now: name the backend's instances.
      hint: unit ? `see the service's log: journalctl -u ${unit}` : `see the service log: journalctl -u "${backend}@*"`,
      exitCode: MountExit.FAILURE,
      cause,
    });
  }
}

/** statfs() of the new mount, with a limit: a hung server must not hang mount(8). */
async function confirmAnswers(mountpoint: string, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the new mount did not answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([fs.promises.statfs(mountpoint), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export async function sandboxMount(
  ctx: MountContext,
  deadline: number,
  onEvent: (e: SessionEvent) => void,
  /** how the session opens files: the broker's fstab path reopens the source as root (broker/worker.ts) */
  mechanism: SessionMechanism = KERNEL_MECHANISM,
): Promise<SandboxOutcome> {
  const { args, decision } = ctx;
  if (!ctx.socket || !decision.backend) throw new FusegateError('internal: sandbox path without a backend', { exitCode: MountExit.INTERNAL });
  const fd = native.socketSeqpacket();
  // The server never sends fds to the helper (only FILE carries one, and only
  // the helper sends FILE): have the kernel refuse them, so a hostile server
  // cannot push an fd into root's process at all (fails soft before Linux 6.16).
  native.refusePassedFds(fd);
  const channel = new Channel(fd, 'helper');
  let unit: string | null = null;
  let session: HelperSession | undefined;
  try {
    try {
      await native.connect(fd, ctx.socket, deadline - Date.now());
    } catch (err) {
      throw new SandboxMountError(`cannot connect to ${ctx.socket}: ${(err as Error).message}`, null, err, decision.backend);
    }
    session = new HelperSession(
      channel,
      {
        backend: decision.backend,
        source: args.source,
        mountpoint: args.mountpoint,
        options: decision.mountOptions,
        sourceFd: ctx.source.fd,
        sourceIsBlock: ctx.source.stat.isBlockDevice(),
        blockSourcePath: ctx.source.path,
        mountpointFd: ctx.mountpoint.fd,
        caller: ctx.caller,
        refusePatterns: decision.refusedOptions.patterns,
        readOnly: decision.readOnly,
        deadline,
      },
      onEvent,
      mechanism,
    );
    const result = await session.run();
    // From here a mount exists: should the watchdog fire, it undoes it.
    if (session.mount) guardNewMount(session.mount.device, args.mountpoint);
    // Looked up only now: systemd may create the instance after accepting.
    unit = instanceForClient(decision.backend, process.pid, process.getuid!());
    await confirmAnswers(ctx.mountpoint.path, Math.max(deadline - Date.now(), TIMEOUTS.mountAnswerMinimum.defaultMs));
    return { result, unit, serverPid: unit ? instanceProcesses(unit)[0] ?? null : null };
  } catch (err) {
    if (session?.mount) abortAndDetach(ctx.mountpoint.fd, session.mount.device);
    if (err instanceof SandboxMountError) throw err;
    const why =
      err instanceof ServiceFailed
        ? err.message
        : err instanceof ProtocolError
          ? err.message
          : `the mount failed: ${(err as Error).message}`;
    throw new SandboxMountError(why, unit, err, decision.backend);
  } finally {
    channel.close();
  }
}
