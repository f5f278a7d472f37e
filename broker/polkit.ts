/**
 * polkit's CheckAuthorization for the caller's bus name: polkitd looks up the
 * name's process, uid and session itself, so nothing the caller claims
 * enters the question. The caller may be asked to authenticate (an agent in
 * its session: pkttyagent, a desktop's); the wait for that is bounded.
 */
import type { BusCall } from './caller';
import type { ActionId } from './names';

const AUTHORITY = 'org.freedesktop.PolicyKit1';
const AUTHORITY_PATH = '/org/freedesktop/PolicyKit1/Authority';
const AUTHORITY_IFACE = 'org.freedesktop.PolicyKit1.Authority';
/** CheckAuthorizationFlags.AllowUserInteraction */
const ALLOW_USER_INTERACTION = 1;

export interface PolkitAnswer {
  authorized: boolean;
  /** polkit could authorize after an authentication nobody could answer (no agent) */
  challenge: boolean;
}

export async function checkAuthorization(
  bus: BusCall,
  dbus: typeof import('dbus-next'),
  sender: string,
  action: ActionId,
  details: Record<string, string>,
): Promise<PolkitAnswer> {
  const subject = ['system-bus-name', { name: new dbus.Variant('s', sender) }];
  const [result] = (await bus.call(AUTHORITY, AUTHORITY_PATH, AUTHORITY_IFACE, 'CheckAuthorization', '(sa{sv})sa{ss}us', [
    subject,
    action,
    details,
    ALLOW_USER_INTERACTION,
    '',
  ])) as [[boolean, boolean, Record<string, string>]];
  return { authorized: result[0] === true, challenge: result[1] === true };
}
