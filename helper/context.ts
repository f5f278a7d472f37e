/**
 * Everything the helper knows about one mount, gathered in one place before
 * it acts (as util-linux libmount's context): the command line, who called,
 * the pinned source and mountpoint, the facts, the policy and its decision.
 * Authorization is decided here, by the policy; the mechanisms in
 * kernel-mount.ts and helper-session.ts only carry it out; they take what
 * they need from the decision and never read the policy again.
 */
import * as fs from 'node:fs';
import { machineAvailability } from '../lib/availability';
import { findBackend, socketPath } from '../lib/backends';
import { requireRoot as requireRootIds } from '../lib/root';
import { decide, resolveFallback } from '../policy/decide';
import { gatherFacts } from '../policy/facts';
import { loadPolicyForMount, type PolicyError } from '../policy/load';
import type { Decision, Facts, Policy } from '../policy/types';
import type { HelperArgs } from './args';
import { pinMountpoint, pinSource, type Caller, type Pinned } from './pins';
import { mark } from './timing';

export interface MountContext {
  args: HelperArgs;
  caller: Caller;
  source: Pinned;
  mountpoint: Pinned;
  facts: Facts;
  policy: Policy;
  /** set when the policy file could not be loaded and the fail-closed policy decided */
  policyError: PolicyError | null;
  /** the decision after availability was taken into account */
  decision: Decision;
  /** for the fuse action: the socket of the chosen backend */
  socket: string | null;
}

export function callerOf(): Caller {
  return { uid: process.getuid!(), gid: process.getgid!(), groups: process.getgroups!() };
}

/**
 * Refuses callers who are not root. An /etc/fstab line with `user` or
 * `users` does not make us root: mount(8) is set-uid, but libmount drops to
 * the caller's real uid before it execs a helper, so such a mount arrives
 * here as the ordinary user. Ordinary users mount through the broker
 * (`fusegate mount`, broker/), which polkit and the policy authorize.
 */
export function requireRoot(caller: Caller): void {
  requireRootIds(
    'only root may mount through fusegate for now',
    "as an ordinary user, mount it with 'fusegate mount SOURCE [DIR]' (or udisksctl), or ask an administrator to",
    { uid: caller.uid, euid: process.geteuid!() },
  );
}

/** Seams for in-process tests; the installed helper never sets them. */
export interface HelperHooks {
  /**
   * runs after the decision, right before the mount is made: tests swap
   * SOURCE or DIR for another symlink target here to prove the pins hold
   */
  beforeMount?: () => void;
}

export function buildContext(args: HelperArgs, caller: Caller): MountContext {
  const source = pinSource(args.source, caller);
  let mountpoint: Pinned | undefined;
  try {
    mountpoint = pinMountpoint(args.mountpoint, caller);
    mark('pinned');
  } catch (err) {
    fs.closeSync(source.fd);
    throw err;
  }
  return contextForPins(args, caller, source, mountpoint);
}

/**
 * The context for a source and mountpoint already pinned: by buildContext
 * from the command line's paths, or by the broker (broker/worker.ts) from
 * the fd its client opened with the user's rights. Takes ownership of both
 * fds: closes them if it throws.
 */
export function contextForPins(args: HelperArgs, caller: Caller, source: Pinned, mountpoint: Pinned): MountContext {
  try {
    // Facts about the pinned inode, not about whatever the path names now.
    const facts = gatherFacts({
      source: args.source,
      sourceFd: source.fd,
      mountpoint: args.mountpoint,
      requestedType: args.requestedType,
      options: args.options,
      caller,
      ...(caller.session !== undefined ? { session: caller.session } : {}),
    }, process.env.FUSEGATE_FSTAB ? { fstab: process.env.FUSEGATE_FSTAB } : {});
    mark('facts');
    const { policy, error } = loadPolicyForMount();
    mark('policy');
    const fsType = facts.type.value;
    const decision = resolveFallback(decide(policy, facts), machineAvailability(fsType));
    const backend = decision.action === 'fuse' && decision.backend ? findBackend(decision.backend) : undefined;
    return {
      args,
      caller,
      source,
      mountpoint,
      facts,
      policy,
      policyError: error,
      decision,
      socket: backend && fsType ? socketPath(backend, fsType) : null,
    };
  } catch (err) {
    fs.closeSync(source.fd);
    fs.closeSync(mountpoint.fd);
    throw err;
  }
}

export function releaseContext(ctx: MountContext): void {
  for (const fd of [ctx.source.fd, ctx.mountpoint.fd]) {
    try {
      fs.closeSync(fd);
    } catch {
      // already closed
    }
  }
}
