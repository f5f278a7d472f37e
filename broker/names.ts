/**
 * The broker's names on the system bus and in polkit: one place, so the
 * service, the client, the bus policy, the activation file, the unit and
 * the polkit actions file cannot disagree (broker/files.ts writes those).
 */
export const BUS_NAME = 'org.fusegate.Mount1';
export const OBJECT_PATH = '/org/fusegate/Mount1';
export const INTERFACE = 'org.fusegate.Mount1';
export const UNIT_NAME = 'fusegate-broker.service';

/** Errors the broker answers with; the client prints their text (and hint) as is. */
export const ERROR = {
  /** the arguments are malformed (not a directory, an unknown option…) */
  invalidArgs: 'org.fusegate.Mount1.Error.InvalidArgs',
  /** polkit said no (or the caller dismissed the authentication) */
  notAuthorized: 'org.fusegate.Mount1.Error.NotAuthorized',
  /** the policy refused, or the mount itself failed */
  failed: 'org.fusegate.Mount1.Error.Failed',
  /** no fusegate mount at that place */
  notMounted: 'org.fusegate.Mount1.Error.NotMounted',
} as const;

/** polkit actions (the ids in org.fusegate.policy). */
export const ACTION = {
  /** mount through a sandboxed FUSE server: allowed in an active local session */
  mountSandboxed: 'org.fusegate.mount',
  /** mount with the kernel's own driver: an administrator, kept for a while */
  mountKernel: 'org.fusegate.mount-kernel',
  /** unmount a mount someone else made: an administrator */
  unmountOthers: 'org.fusegate.unmount-others',
} as const;

export type ActionId = (typeof ACTION)[keyof typeof ACTION];

/** utab option that records who asked the broker for a mount: ownership survives a broker restart. */
export const OWNER_OPTION = 'x-fusegate.owner';

/** Where a mount without DIR goes, as udisks2 does: /run/media/$USER/<label>. */
export const MEDIA_DIR = '/run/media';
