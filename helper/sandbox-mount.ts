/**
 * The sandbox path: connect to the chosen backend's socket (systemd starts a
 * fresh sandboxed service instance for the connection), hold the protocol
 * conversation, then confirm the new mount answers. Any failure after the
 * mount was made tears it down, so mount(8) never leaves a half-made mount.
 */
import * as fs from 'node:fs';
import { FusegateError, MountExit } from '../lib/errors';
import * as native from '../lib/native';
import { msFlagsOf } from '../lib/mount-flags';
import { Channel, ProtocolError } from '../lib/protocol';
import type { MountContext } from './context';
import { abortAndDetach } from './fuse-mount';
import { instanceForClient, instanceProcesses } from './service-instance';
import { ServiceFailed, HelperSession, type SessionEvent, type SessionResult } from './helper-session';

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
): Promise<SandboxOutcome> {
  const { args, decision } = ctx;
  if (!ctx.socket || !decision.backend) throw new FusegateError('internal: sandbox path without a backend', { exitCode: MountExit.INTERNAL });
  const rule = ctx.policy.rules.find((r) => r.name === decision.rule);
  const fd = native.socketSeqpacket();
  const channel = new Channel(fd, 'helper');
  let unit: string | null = null;
  let session: HelperSession | undefined;
  try {
    try {
      await native.connect(fd, ctx.socket);
    } catch (err) {
      throw new SandboxMountError(`cannot connect to ${ctx.socket}: ${(err as Error).message}`, null, err, decision.backend);
    }
    session = new HelperSession(
      channel,
      {
        backend: decision.backend,
        source: args.source,
        mountpoint: args.mountpoint,
        options: decision.finalOptions,
        sourceFd: ctx.source.fd,
        sourceIsBlock: ctx.source.stat.isBlockDevice(),
        mountpointFd: ctx.mountpoint.fd,
        caller: ctx.caller,
        forcedMsFlags: msFlagsOf(decision.finalOptions),
        refusedOptions: rule?.refuseOptions ?? ctx.policy.defaults.refuseOptions,
        readOnly: decision.readOnly,
        deadline,
      },
      onEvent,
    );
    const result = await session.run();
    // Looked up only now: systemd may create the instance after accepting.
    unit = instanceForClient(decision.backend, process.pid, process.getuid!());
    await confirmAnswers(args.mountpoint, Math.max(deadline - Date.now(), 1000));
    return { result, unit, serverPid: unit ? instanceProcesses(unit)[0] ?? null : null };
  } catch (err) {
    if (session?.mount) abortAndDetach(args.mountpoint, session.mount.device);
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
