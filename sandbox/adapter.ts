#!/usr/bin/env node
/**
 * The service adapter: what systemd starts (Accept=yes, one instance per
 * mount) with the helper's connection on fd 3. It speaks the server side of
 * the service-mount protocol for an unmodified FUSE server, then becomes
 * that server with execve, so no Node process stays resident per mount.
 *
 *   adapter.js BACKEND
 */
import * as fs from 'node:fs';
import { findBackend } from '../lib/backends';
import { parseCommandLine, UsageError } from '../lib/cli-args';
import { processIo } from '../lib/output';
import { createLogger } from '../lib/log';
import { Channel } from '../lib/protocol';
import { execServer, planLaunch } from './launch';
import { AdapterSession } from './adapter-session';
import { serveInProcess } from './in-process';

/** The connection systemd passes (SD_LISTEN_FDS_START). */
const LISTEN_FD = 3;

function checkActivation(): string | null {
  if (process.env.LISTEN_PID !== String(process.pid)) return 'not started by socket activation (LISTEN_PID is not ours)';
  if (process.env.LISTEN_FDS !== '1') return `expected exactly one socket from systemd, got LISTEN_FDS=${process.env.LISTEN_FDS}`;
  try {
    if (!fs.fstatSync(LISTEN_FD).isSocket()) return 'fd 3 is not a socket';
  } catch {
    return 'fd 3 is not open';
  }
  return null;
}

/** The one argument, BACKEND; '' when the command line is not that. */
function backendArg(args: string[]): { name: string; error: string | null } {
  try {
    const p = parseCommandLine(args, { options: {}, maxPositionals: 1 });
    return { name: p.help ? '' : (p.positionals[0] ?? ''), error: null };
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    return { name: '', error: e.message };
  }
}

async function main(): Promise<number> {
  const { name, error } = backendArg(process.argv.slice(2));
  const log = createLogger({ identifier: `fusegate-${name || 'adapter'}`, fallback: 'stderr' });
  if (error !== null) log.error(`${error}: the adapter takes one argument, BACKEND`);
  const backend = findBackend(name);
  if (!backend || (!backend.argv && backend.delivery !== 'in-process')) {
    log.error(`unknown backend '${name}'; the unit's ExecStart names one from the backends table`);
    return 2;
  }
  const notActivated = checkActivation();
  if (notActivated) {
    log.error(`${notActivated}; this program is started by ${name}.socket`);
    return 2;
  }
  // The variables are ours alone; the server must not see them.
  delete process.env.LISTEN_PID;
  delete process.env.LISTEN_FDS;
  delete process.env.LISTEN_FDNAMES;

  const channel = new Channel(LISTEN_FD, 'server');
  const session = new AdapterSession(channel);
  if (backend.delivery === 'in-process') return serveInProcess(backend, session, LISTEN_FD, log);
  let handoff;
  try {
    handoff = await session.run();
  } catch (err) {
    log.error(`mount handshake failed: ${(err as Error).message}`, { FUSEGATE_BACKEND: name });
    await session.bye(1).catch(() => {});
    return 1;
  }
  const launch = planLaunch(backend, handoff);
  log.info(`mounted ${handoff.args.source} on ${handoff.args.mountpoint}; starting ${launch.argv.join(' ')}`, {
    FUSEGATE_BACKEND: name,
    FUSEGATE_SOURCE: handoff.args.source,
    FUSEGATE_MOUNTPOINT: handoff.args.mountpoint,
    FUSEGATE_READ_ONLY: handoff.readOnly,
  });
  // BYEE(0) goes just before the server starts serving; the helper's first
  // request waits in the kernel until the server has taken over.
  await session.bye(0);
  try {
    return execServer(launch, handoff, LISTEN_FD);
  } catch (err) {
    log.error(`cannot start ${launch.file}: ${(err as Error).message}`, { FUSEGATE_BACKEND: name });
    return 1;
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    processIo.err(`fusegate adapter: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(4);
  },
);
