/**
 * The two questions `fusegate status` asks systemd over D-Bus: which
 * <backend>@*.service instances are running, and each one's main process
 * and memory. Plain method calls built as dbus-next Messages (docs/platform.md §3):
 * no introspection round trips, no proxy objects.
 *
 * dbus-next is required inside the function, so only `fusegate status` ever
 * loads it; the mount path never does.
 */
import * as fs from 'node:fs';
import type { Message as DBusMessage, MessageBus } from 'dbus-next';
import { FusegateError, MountExit } from '../lib/errors';
import { TIMEOUTS } from '../lib/timeouts';

export const SYSTEM_BUS_ADDRESS = 'unix:path=/run/dbus/system_bus_socket';

const SYSTEMD = 'org.freedesktop.systemd1';
const MANAGER_PATH = '/org/freedesktop/systemd1';
const MANAGER = 'org.freedesktop.systemd1.Manager';
const SERVICE = 'org.freedesktop.systemd1.Service';
const PROPERTIES = 'org.freedesktop.DBus.Properties';
/** The D-Bus header flag; dbus-next's types.d.ts numbers MessageFlag from 0, its runtime (and the spec) says 2. */
const NO_AUTO_START = 2;
/** systemd's "no value" for MemoryCurrent (accounting off, or not a cgroup yet). */
const UINT64_MAX = (1n << 64n) - 1n;

export interface ServiceInfo {
  /** e.g. fusefat@3-1234-0.service */
  name: string;
  activeState: string;
  /** the FUSE server (the adapter execs into it); null while there is none */
  mainPid: number | null;
  /** bytes charged to the unit's cgroup; null when systemd does not know */
  memoryCurrent: bigint | null;
}

/** systemd cannot be asked: no bus, no systemd on it, or no answer in time. */
export class SystemdUnavailable extends FusegateError {
  constructor(message: string, cause?: unknown) {
    super(message, { hint: 'sandboxed mounts need systemd (and its D-Bus); kernel mounts work without it', exitCode: MountExit.SYSTEM, cause });
  }
}

/** The system bus address: $DBUS_SYSTEM_BUS_ADDRESS as every D-Bus client honours it, else the standard socket. */
export function systemBusAddress(): string {
  return process.env.DBUS_SYSTEM_BUS_ADDRESS || SYSTEM_BUS_ADDRESS;
}

/** The socket of a unix:path= address, to tell "no bus here" apart from a failure. */
function socketOf(address: string): string | null {
  const m = /^unix:path=([^,;]+)/.exec(address);
  return m ? m[1]! : null;
}

type ListUnitsRow = [string, string, string, string, string, string, string, number, string, string];

interface Caller {
  call(destination: string, path: string, iface: string, member: string, signature: string, body: unknown[]): Promise<unknown[]>;
}

/** ListUnitsByPatterns, then MainPID and MemoryCurrent of each unit. */
export async function queryServices(c: Caller, patterns: string[]): Promise<ServiceInfo[]> {
  const [rows] = (await c.call(SYSTEMD, MANAGER_PATH, MANAGER, 'ListUnitsByPatterns', 'asas', [['active', 'activating', 'deactivating'], patterns])) as [ListUnitsRow[]];
  const out: ServiceInfo[] = [];
  for (const row of rows ?? []) {
    const [name, , , activeState, , , objectPath] = row;
    const get = async (prop: string): Promise<unknown> => {
      try {
        const [variant] = (await c.call(SYSTEMD, objectPath, PROPERTIES, 'Get', 'ss', [SERVICE, prop])) as [{ value: unknown }];
        return variant?.value;
      } catch {
        return undefined; // a unit that went away meanwhile, or an older systemd without the property
      }
    };
    const pid = await get('MainPID');
    const mem = await get('MemoryCurrent');
    out.push({
      name,
      activeState,
      mainPid: typeof pid === 'number' && pid > 0 ? pid : null,
      memoryCurrent: typeof mem === 'bigint' && mem !== UINT64_MAX ? mem : null,
    });
  }
  return out;
}

/**
 * The running instances of the units matching `patterns`
 * (e.g. 'fusefat@*.service'). Throws SystemdUnavailable when systemd cannot
 * be asked; never leaves the connection open.
 */
export async function listServices(patterns: string[], opts: { address?: string; timeoutMs?: number } = {}): Promise<ServiceInfo[]> {
  const address = opts.address ?? systemBusAddress();
  const socket = socketOf(address);
  if (socket !== null && !fs.existsSync(socket)) throw new SystemdUnavailable(`no D-Bus system bus (${socket} does not exist)`);

  const dbus = require('dbus-next') as typeof import('dbus-next');
  // sessionBus() with an explicit address is simply "connect to this bus".
  const bus: MessageBus = dbus.sessionBus({ busAddress: address });
  let timer: NodeJS.Timeout | undefined;
  const failed = new Promise<never>((_, reject) => {
    bus.on('error', (e: Error) => reject(new SystemdUnavailable(`D-Bus connection to ${address} failed: ${e.message}`, e)));
    timer = setTimeout(() => reject(new SystemdUnavailable(`no answer from systemd over D-Bus within ${opts.timeoutMs ?? TIMEOUTS.systemdBus.defaultMs} ms`)), opts.timeoutMs ?? TIMEOUTS.systemdBus.defaultMs);
  });
  const caller: Caller = {
    async call(destination, path, iface, member, signature, body) {
      // NO_AUTO_START: asking for status must never make the bus try to start systemd.
      const msg: DBusMessage = new dbus.Message({ destination, path, interface: iface, member, signature, body, flags: NO_AUTO_START });
      const reply = await Promise.race([bus.call(msg), failed]);
      return reply?.body ?? [];
    },
  };
  try {
    return await queryServices(caller, patterns);
  } catch (e) {
    if (e instanceof SystemdUnavailable) throw e;
    // org.freedesktop.DBus.Error.NameHasNoOwner: a bus without systemd on it.
    const type = (e as { type?: string }).type;
    throw new SystemdUnavailable(`systemd did not answer on ${address}: ${type ? `${type}: ` : ''}${(e as Error).message}`, e);
  } finally {
    clearTimeout(timer);
    failed.catch(() => {}); // it may still reject after we are done; nobody is listening then
    bus.disconnect();
  }
}
