/**
 * Options fusegate imposes whatever the policy file says: a policy may add
 * options, never remove these (issue 12, finding 1).
 *
 * A filesystem image is data its author wrote: a setuid-root binary or a
 * device node on it must never take effect. So every sandboxed mount is
 * nosuid,nodev, and so is a kernel-path mount of anything but a fixed
 * internal disk. A request or a rule asking for suid or dev on such a mount
 * is refused (decide.ts), and `fusegate policy check` reports a fuse rule
 * that forces them (validate.ts).
 */
import type { Facts } from './types';

/** What every sandboxed mount gets, and every kernel mount of untrusted media. */
export const MANDATORY_OPTIONS: readonly string[] = ['nosuid', 'nodev'];

/** The options that would undo MANDATORY_OPTIONS. */
export const FORBIDDEN_OPTIONS: readonly string[] = ['suid', 'dev'];

/**
 * True only for a fixed internal disk: the one source the kernel path may
 * mount without nosuid,nodev. It is the policy's fixed_disk fact, so the
 * kernel path's mandatory options and the fstab trust rules never disagree.
 */
export function isFixedInternalDisk(facts: Facts): boolean {
  // policy/fixed-disk.ts follows partitions, dm/md slaves, loop, USB and the
  // Thunderbolt domain down to the real devices.
  return facts.kind.value === 'block' && facts.fixedDisk.value;
}

/** The options fusegate adds to a mount on `action`, whatever the policy says. */
export function mandatoryOptions(action: 'kernel' | 'fuse', facts: Facts): readonly string[] {
  if (action === 'fuse') return MANDATORY_OPTIONS;
  return isFixedInternalDisk(facts) ? [] : MANDATORY_OPTIONS;
}

/** The options in `options` that undo a mandatory one (suid, dev). */
export function forbiddenIn(options: readonly string[], mandatory: readonly string[]): string[] {
  if (mandatory.length === 0) return [];
  return options.filter((o) => FORBIDDEN_OPTIONS.includes(o));
}
