/**
 * Who is asking, as the bus daemon and logind know it (never as the caller
 * says): uid, gids and pid from GetConnectionCredentials, then the logind
 * session of that pid, whose active/remote state polkit decides on as well.
 */
import type { Variant } from 'dbus-next';
import type { SessionState } from '../policy/types';

export interface BusCall {
  call(destination: string, path: string, iface: string, member: string, signature: string, body: unknown[]): Promise<unknown[]>;
}

export interface BusCaller {
  /** the unique bus name (":1.42"): polkit's subject */
  sender: string;
  uid: number;
  gid: number;
  groups: number[];
  pid: number;
  /**
   * As polkit sees it: 'active' or 'inactive' for a session on a seat (a
   * local login), 'remote' for one without a seat or with a remote host (ssh:
   * polkit then applies allow_any), 'none' for no logind session at all (a
   * service, cron, su without pam_systemd)
   */
  session: SessionState;
}

export type { SessionState };

export async function callerCredentials(bus: BusCall, sender: string): Promise<BusCaller> {
  const [creds] = (await bus.call('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus', 'GetConnectionCredentials', 's', [sender])) as [Record<string, Variant>];
  const uid = creds.UnixUserID?.value;
  const pid = creds.ProcessID?.value;
  if (typeof uid !== 'number' || typeof pid !== 'number') throw new Error(`the bus did not say who ${sender} is`);
  const gids = Array.isArray(creds.UnixGroupIDs?.value) ? (creds.UnixGroupIDs!.value as number[]) : [];
  const gid = primaryGid(uid) ?? gids[0] ?? uid;
  return { sender, uid, gid, groups: gids, pid, session: await sessionState(bus, pid) };
}

/** The primary group from /etc/passwd (the bus gives the list, not which one is primary). */
function primaryGid(uid: number): number | null {
  try {
    const fs = require('node:fs') as typeof import('node:fs');
    for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length >= 4 && Number(f[2]) === uid) return Number(f[3]);
    }
  } catch {
    // no passwd: fall back on the bus's list
  }
  return null;
}

async function sessionState(bus: BusCall, pid: number): Promise<SessionState> {
  let sessionPath: string;
  try {
    [sessionPath] = (await bus.call('org.freedesktop.login1', '/org/freedesktop/login1', 'org.freedesktop.login1.Manager', 'GetSessionByPID', 'u', [pid])) as [string];
  } catch {
    return 'none'; // NoSessionForPID, or no logind at all
  }
  const get = async (prop: string): Promise<unknown> => {
    const [v] = (await bus.call('org.freedesktop.login1', sessionPath, 'org.freedesktop.DBus.Properties', 'Get', 'ss', ['org.freedesktop.login1.Session', prop])) as [Variant];
    return v?.value;
  };
  try {
    // polkit calls a session local only when it sits on a seat (its implicit allow_active/allow_inactive).
    const seat = (await get('Seat')) as [string, string] | undefined;
    if ((await get('Remote')) === true || !seat || seat[0] === '') return 'remote';
    return (await get('Active')) === true ? 'active' : 'inactive';
  } catch {
    return 'none';
  }
}
