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
import { FusegateError, MountExit } from '../lib/errors';
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
 * Refuses callers who are not root. A privileged broker for ordinary users
 * is future work; until then root mounts for them. An fstab line with `user`
 * does not help: libmount drops to the real uid before it runs a helper, so
 * such a mount reaches us as the user and is refused here. udisks2 runs
 * mount(8), and so this helper, as root.
 */
export function requireRoot(caller: Caller): void {
  if (caller.uid !== 0 || process.geteuid!() !== 0) {
    throw new FusegateError('only root may mount through fusegate for now', {
      hint: 'mount it with udisksctl mount -b DEVICE (udisks2 mounts as root), or ask an administrator to mount it',
      exitCode: MountExit.USAGE,
    });
  }
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
    // Facts about the pinned inode, not about whatever the path names now.
    const facts = gatherFacts({
      source: args.source,
      sourceFd: source.fd,
      mountpoint: args.mountpoint,
      requestedType: args.requestedType,
      options: args.options,
      caller,
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
    if (mountpoint) fs.closeSync(mountpoint.fd);
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
