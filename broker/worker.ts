/**
 * One mount for the broker, in a process of its own: the helper's pipeline
 * (contextForPins → decision → one writer → kernelMount | sandboxMount →
 * utab) for a source and mountpoint the broker pinned with the caller's
 * rights, passed as fd 3 and fd 4.
 *
 * Why a process per mount: the pieces it reuses are made for one mount per
 * process (the watchdog thread, the "decided" signal, the systemd instance
 * found by the connecting pid: two mounts from one broker pid would find
 * each other's), and a mount that crashes or hangs takes only its worker.
 *
 * The conversation with the broker, one JSON line each way:
 *   worker → {"decided": {...}}       the policy's decision, before anything is done
 *   broker → "go\n" (or closes stdin) polkit said yes (or no)
 *   worker → {"result": {...}}        mounted, refused or failed
 * So polkit is asked about the decision that is carried out, made once.
 *
 * If the broker goes away mid-mount, systemd stops the rest of its cgroup
 * with SIGTERM: a mount made but not yet recorded is torn down (and its
 * server exits with it), so no half-made mount outlives the request.
 */
import * as fs from 'node:fs';
import { FusegateError, MountExit } from '../lib/errors';
import { createLogger, type Logger } from '../lib/log';
import * as native from '../lib/native';
import { timeoutMs } from '../lib/timeouts';
import { applyForced, mountOptionsOf } from '../policy/options';
import type { HelperArgs } from '../helper/args';
import { contextForPins, releaseContext, type MountContext } from '../helper/context';
import { abortAndDetach, topMountAt } from '../helper/fuse-mount';
import { KERNEL_MECHANISM, type SessionMechanism } from '../helper/helper-session';
import { kernelMount } from '../helper/kernel-mount';
import { claimStorage, type Claim } from '../helper/one-writer';
import type { Caller, Pinned } from '../helper/pins';
import { recordInUtab, sandboxUtabOptions } from '../helper/utab';
import { FORCED_USER_OPTIONS } from './request';
import { OWNER_OPTION } from './names';
import { wantsPreflight } from '../policy/decide';

export const SOURCE_FD = 3;
export const MOUNTPOINT_FD = 4;

export interface WorkerRequest {
  caller: Caller;
  /** the caller's login name: utab's `user=`, which lets umount(8) run for the user of an fstab `user` entry */
  userName: string;
  /**
   * who opened the source: 'caller' (the client, with the user's rights: the
   * server's opens go through it with the caller's fsuid) or 'fstab' (the
   * broker, for an /etc/fstab `user` entry, which is the administrator's
   * grant: the server's opens go through it as root)
   */
  sourceOpenedBy: 'caller' | 'fstab';
  mountpoint: string;
  readOnly: boolean;
  fsType: string | undefined;
  options: string[];
}

export interface WorkerDecision {
  action: 'deny' | 'kernel' | 'fuse';
  rule: string;
  reason: string;
  fsType: string | null;
  backend: string | null;
  readOnly: boolean;
  source: string;
}

export type WorkerResult =
  | { outcome: 'mounted'; mountpoint: string; unit: string | null; backend: string | null; readOnly: boolean }
  | { outcome: 'refused' | 'failed'; message: string; hint: string | null };

function send(line: object): void {
  fs.writeSync(1, `${JSON.stringify(line)}\n`);
}

function pinnedFd(fd: number): Pinned {
  const fdPath = `/proc/self/fd/${fd}`;
  return { fd, stat: fs.fstatSync(fd), fdPath, path: fs.readlinkSync(fdPath) };
}

/** One line from stdin: the broker's go-ahead; anything else (or end of file) is a no. */
async function waitForGo(deadline: number): Promise<boolean> {
  return await new Promise<boolean>((resolve) => {
    let text = '';
    const timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()));
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d: string) => {
      text += d;
      if (text.includes('\n')) {
        clearTimeout(timer);
        resolve(text.startsWith('go\n'));
      }
    });
    process.stdin.on('end', () => {
      clearTimeout(timer);
      resolve(text.startsWith('go\n'));
    });
  });
}

/**
 * What an ordinary user's mount is made with, whatever the policy allowed:
 * nosuid,nodev always, and for a sandboxed server the caller's uid and gid
 * (the backends' argv hands them to servers that take them: FAT, exFAT, NTFS).
 */
export function forceUserOptions(ctx: MountContext): void {
  const d = ctx.decision;
  if (d.action === 'deny' || ctx.caller.uid === 0) return;
  const forced: string[] = [...FORCED_USER_OPTIONS];
  if (d.action === 'fuse') forced.push(`uid=${ctx.caller.uid}`, `gid=${ctx.caller.gid}`);
  d.mountOptions = mountOptionsOf(applyForced(d.mountOptions.list, forced, d.readOnly).options);
  d.finalOptions = d.mountOptions.list;
}

/** The session's reopen of the source as root, for an fstab `user` entry (the fd's own access mode still bounds it: see WorkerRequest). */
const FSTAB_MECHANISM: SessionMechanism = {
  ...KERNEL_MECHANISM,
  openAsCaller: (p, flags) => native.openAs(p, flags, 0, { uid: 0, gid: 0 }),
};

async function carryOut(ctx: MountContext, log: Logger, started: number, req: WorkerRequest): Promise<WorkerResult> {
  const userName = req.userName;
  let d = ctx.decision;
  const deadline = started + timeoutMs('mount');
  // Who asked: fusegate's record (the broker's ownership check) and libmount's (umount(8)'s, for fstab `user` entries).
  const owner = [`${OWNER_OPTION}=${ctx.caller.uid}`, `user=${userName}`];
  let claim: Claim | null = null;
  const before = topMountAt(ctx.mountpoint.fd)?.id ?? null;
  // From here until the mount is recorded, SIGTERM (the broker stopped) undoes it.
  let committed = false;
  const onTerm = (): void => {
    if (!committed) {
      const top = topMountAt(ctx.mountpoint.fd);
      if (top !== undefined && top.id !== before) abortAndDetach(ctx.mountpoint.fd, top.device);
    }
    native.exitNow(MountExit.INTERRUPT);
  };
  process.on('SIGTERM', onTerm);
  try {
    claim = await claimStorage(ctx.source.fd, { source: ctx.args.source, mountpoint: ctx.args.mountpoint, readOnly: d.readOnly, backend: d.backend }, deadline);
    if (!claim.verdict.allow) return { outcome: 'refused', message: claim.verdict.what, hint: claim.verdict.todo };
    if (d.action === 'kernel') {
      const { code, message } = await kernelMount({
        source: ctx.source,
        mountpoint: ctx.mountpoint,
        fsType: d.fsType!,
        options: d.mountOptions,
        utabOptions: [`x-fusegate.rule=${d.rule}`, ...owner],
        noMtab: false,
      });
      committed = true;
      if (code !== MountExit.SUCCESS) return { outcome: 'failed', message: message ?? `the kernel mount failed (mount(8) exit code ${code})`, hint: null };
      return { outcome: 'mounted', mountpoint: ctx.mountpoint.path, unit: null, backend: null, readOnly: d.readOnly };
    }
    // The same sandboxed check before a read-write mount as the helper's (docs/preflight.md).
    if (wantsPreflight(d)) {
      const { preflightBeforeMount } = await import('../helper/preflight.js');
      const pf = await preflightBeforeMount(ctx, log, deadline);
      if (pf.action === 'refused') return { outcome: 'refused', message: pf.line ?? `the preflight check refused ${ctx.args.source}`, hint: pf.hint };
      // read-only: the result says so (readOnly), the journal entry says why
      d = ctx.decision;
    }
    const { sandboxMount } = await import('../helper/sandbox-mount.js');
    const { result, unit } = await sandboxMount(ctx, deadline, (e) => {
      if (e.kind === 'refused') log.warning(`refused ${e.command}: ${e.why}`, { FUSEGATE_RULE: d.rule, FUSEGATE_REFUSED: e.command });
    }, req.sourceOpenedBy === 'fstab' ? FSTAB_MECHANISM : KERNEL_MECHANISM);
    const options = [...sandboxUtabOptions({ backend: d.backend!, unit, rule: d.rule, mount: d.mountOptions, server: result }), ...owner];
    const err = await recordInUtab(ctx.args.source, ctx.mountpoint.path, `fuse.${d.backend}`, options);
    if (err !== null) {
      // Without the record nobody could prove ownership: the mount must not stay.
      const top = topMountAt(ctx.mountpoint.fd);
      if (top !== undefined && top.id !== before) abortAndDetach(ctx.mountpoint.fd, top.device);
      return { outcome: 'failed', message: `the mount could not be recorded in utab: ${err}`, hint: null };
    }
    committed = true;
    return { outcome: 'mounted', mountpoint: ctx.mountpoint.path, unit, backend: d.backend, readOnly: d.readOnly };
  } catch (err) {
    return {
      outcome: 'failed',
      message: (err as Error).message,
      hint: err instanceof FusegateError ? (err.hint ?? null) : null,
    };
  } finally {
    claim?.release();
  }
}

export async function runWorker(requestJson: string): Promise<number> {
  const started = Date.now();
  const req = JSON.parse(requestJson) as WorkerRequest;
  const log = createLogger({ identifier: 'fusegate-broker', fallback: 'silent' });
  const source = pinnedFd(SOURCE_FD);
  const args: HelperArgs = {
    source: source.path,
    mountpoint: req.mountpoint,
    options: [...req.options, ...(req.readOnly && !req.options.includes('ro') ? ['ro'] : [])].filter((o) => o !== 'rw' || !req.readOnly),
    requestedType: req.fsType,
    fake: false,
    noMtab: false,
    verbose: false,
    sloppy: false,
    namespace: undefined,
    invokedAs: 'fusegate-broker',
  };
  let ctx: MountContext;
  try {
    ctx = contextForPins(args, req.caller, source, pinnedFd(MOUNTPOINT_FD));
  } catch (err) {
    send({ decided: null, result: { outcome: 'failed', message: (err as Error).message, hint: err instanceof FusegateError ? (err.hint ?? null) : null } });
    return MountExit.FAILURE;
  }
  try {
    forceUserOptions(ctx);
    const d = ctx.decision;
    const decided: WorkerDecision = {
      action: d.action,
      rule: d.rule,
      reason: d.reason,
      fsType: d.fsType ?? null,
      backend: d.backend ?? null,
      readOnly: d.readOnly,
      source: ctx.args.source,
    };
    send({ decided });
    if (d.action === 'deny') return MountExit.FAILURE;
    if (!(await waitForGo(started + timeoutMs('mount')))) return MountExit.FAILURE;
    const result = await carryOut(ctx, log, Date.now(), req);
    send({ result });
    return result.outcome === 'mounted' ? MountExit.SUCCESS : MountExit.FAILURE;
  } finally {
    releaseContext(ctx);
  }
}
