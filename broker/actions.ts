/**
 * Which polkit action a request needs: the mapping, kept free of D-Bus so it
 * is tested on its own (test/unit/broker-actions.test.ts).
 *
 * The policy decides first (deny, kernel or a sandboxed server); polkit then
 * decides whether this caller may have what the policy decided. The kernel
 * driver is the dangerous one for an untrusted image: it needs an
 * administrator, while a sandboxed server is what an active local user gets.
 */
import type { Decision } from '../policy/types';
import { ACTION, type ActionId } from './names';

/** The action a mount needs, or null when the policy refused it (polkit is then not asked). */
export function mountAction(decision: Pick<Decision, 'action'>): ActionId | null {
  switch (decision.action) {
    case 'deny':
      return null;
    case 'kernel':
      return ACTION.mountKernel;
    case 'fuse':
      return ACTION.mountSandboxed;
  }
}

/** The action an unmount needs: none for your own mount, an administrator for anyone else's. */
export function unmountAction(callerUid: number, ownerUid: number | null): ActionId | null {
  return ownerUid !== null && ownerUid === callerUid ? null : ACTION.unmountOthers;
}

/** What a refusal says, and what the user can do about it. */
export function refusalWords(action: ActionId, what: string): { message: string; hint: string } {
  switch (action) {
    case ACTION.mountKernel:
      return {
        message: `${what} would be mounted with the kernel's own driver, and that needs an administrator's authorization (polkit action ${action})`,
        hint: `ask your administrator to mount it, or to grant you ${action} in /etc/polkit-1/rules.d, or to let the policy serve it sandboxed ('fusegate policy explain' shows why it chose the kernel)`,
      };
    case ACTION.mountSandboxed:
      return {
        message: `${what}: you are not authorized to mount it (polkit action ${action})`,
        hint: `sandboxed mounts are allowed in an active local session; otherwise ask your administrator to grant you ${action}`,
      };
    case ACTION.unmountOthers:
      return {
        message: `${what} was mounted by someone else, and unmounting it needs an administrator's authorization (polkit action ${action})`,
        hint: 'ask the user who mounted it, or your administrator, to unmount it',
      };
  }
}
