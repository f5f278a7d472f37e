/**
 * A system bus connection that can pass unix fds (lib/dbus/fd-stream.ts),
 * for the broker and `fusegate mount`. It is dbus-next's own connection
 * (lib/connection.js of the exact version package.json pins) with only the
 * stream swapped: dbus-next offers no way to hand it a stream, and its
 * built-in choice for a unix socket is usocket.
 *
 * dbus-next is required inside the function: nothing on the mount helper's
 * kernel path loads it (its start-up budget, bench/helper-startup).
 */
import type { MessageBus } from 'dbus-next';
import { FusegateError, MountExit } from '../errors';
import { FdStream } from './fd-stream';

export const SYSTEM_BUS_SOCKET = '/run/dbus/system_bus_socket';

/** $DBUS_SYSTEM_BUS_ADDRESS's socket when it is a unix:path= address, else the standard one. */
export function systemBusSocket(): string {
  const m = /^unix:path=([^,;]+)/.exec(process.env.DBUS_SYSTEM_BUS_ADDRESS ?? '');
  return m ? m[1]! : SYSTEM_BUS_SOCKET;
}

export class BusUnavailable extends FusegateError {
  constructor(message: string, cause?: unknown) {
    super(message, { hint: 'fusegate mount needs the D-Bus system bus (the dbus package) and systemd', exitCode: MountExit.SYSTEM, cause });
  }
}

/** Connects to the system bus and completes the Hello; rejects within timeoutMs. */
export async function connectSystemBus(timeoutMs: number): Promise<MessageBus> {
  const socket = systemBusSocket();
  /* eslint-disable @typescript-eslint/no-require-imports */
  const Bus = require('dbus-next/lib/bus') as new (conn: unknown) => MessageBus;
  const { EventEmitter } = require('node:events') as typeof import('node:events');
  const message = require('dbus-next/lib/message');
  const clientHandshake = require('dbus-next/lib/handshake');
  const { Message } = require('dbus-next/lib/message-type');
  const { messageToJsFmt, marshallMessage } = require('dbus-next/lib/marshall-compat');

  const stream = new FdStream(socket, timeoutMs);
  const conn = new EventEmitter() as InstanceType<typeof EventEmitter> & Record<string, unknown>;
  conn.stream = stream;
  conn.state = 'connecting';
  stream.on('error', (err: Error) => conn.emit('error', err));
  stream.on('end', () => conn.emit('end'));
  conn.end = () => {
    stream.end();
    return conn;
  };
  const queued: unknown[] = [];
  conn.message = (msg: unknown) => queued.push(msg);
  const send = (msg: unknown): void => {
    const [data, fds] = marshallMessage(msg) as [Buffer, number[]];
    stream.write({ data, fds });
  };
  stream.once('connect', () =>
    clientHandshake(stream, {}, (error: Error | null, guid: string) => {
      if (error) {
        conn.emit('error', error);
        return;
      }
      conn.guid = guid;
      conn.state = 'connected';
      conn.message = send;
      for (const m of queued.splice(0)) send(m);
      conn.emit('connect');
      message.unmarshalMessages(
        stream,
        (raw: unknown) => {
          let m: unknown;
          // The fds that came with this message, all of them, for its receiver to close (messageFds()).
          const fds = stream.takeMessageFds();
          try {
            m = new Message(messageToJsFmt(raw));
          } catch (err) {
            for (const fd of fds) closeQuietly(fd);
            conn.emit('error', err);
            return;
          }
          (m as { unixFds?: number[] }).unixFds = fds;
          conn.emit('message', m);
        },
        {},
      );
    }),
  );

  const bus = new Bus(conn);
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new BusUnavailable(`no answer from the D-Bus system bus (${socket}) within ${timeoutMs} ms`)), timeoutMs);
      bus.once('connect', () => resolve());
      bus.once('error', (e: Error) => reject(new BusUnavailable(`cannot connect to the D-Bus system bus (${socket}): ${e.message}`, e)));
    });
  } catch (e) {
    bus.disconnect();
    throw e;
  } finally {
    clearTimeout(timer);
  }
  return bus;
}

/** Every fd that arrived with a message (connectSystemBus's connections record them); the receiver owns them. */
export function messageFds(msg: unknown): number[] {
  return (msg as { unixFds?: number[] }).unixFds ?? [];
}

function closeQuietly(fd: number): void {
  try {
    require('node:fs').closeSync(fd);
  } catch {
    // closed already
  }
}
