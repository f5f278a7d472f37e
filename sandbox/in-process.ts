/**
 * Backends with delivery 'in-process' (fusegate-vfat): the adapter process
 * serves the mount itself after the handshake: no execve, no libfuse, no
 * preload. It speaks the FUSE kernel protocol on the /dev/fuse fd the helper
 * passed (sandbox/fuse/) with fusegate's FAT engine (sandbox/vfat/).
 *
 * Order, so that a bad volume mounts nothing:
 *   SAFT…FILE "fusedev", BDEV/OPEN → source fd
 *   open phase: boot sector, geometry, FAT, root directory, options checked
 *     → refused: journal line with the reason, BYEE(1), exit 2; the helper
 *       never got TYPE…DOIT, so no mount exists
 *   TYPE NAME MNTP OPTS DOIT → the helper mounts
 *   BYEE(0), then serve until unmount; exit 0 after the clean-unmount work
 *     (FAT and FSInfo written, dirty bit cleared, fsync).
 */
import * as fs from 'node:fs';
import type { Backend } from '../lib/backends';
import type { Logger } from '../lib/log';
import type { AdapterSession } from './adapter-session';
import { FatError } from './vfat/errors';
import { fatOptionsOf } from './vfat/options';
import { openFat, serveVolume } from './vfat/serve';
import type { Volume } from './vfat/volume';

/** Exit codes of an in-process adapter (as sandbox/vfat/main.ts). */
export const IN_PROCESS_EXIT = { SERVED: 0, FAILED: 1, REFUSED: 2 } as const;

/** At most this many inconsistency lines per mount: a hostile image must not flood the journal. */
const MAX_VOLUME_LOG_LINES = 200;

/** One journal line per inconsistency the engine finds, up to a bound. */
function volumeLogger(log: Logger, fields: Record<string, string>): (message: string) => void {
  let lines = 0;
  return (message) => {
    lines++;
    if (lines <= MAX_VOLUME_LOG_LINES) log.warning(`volume inconsistency: ${message}`, fields);
    else if (lines === MAX_VOLUME_LOG_LINES + 1) log.warning(`more than ${MAX_VOLUME_LOG_LINES} inconsistencies; no more are logged for this mount`, fields);
  };
}

export async function serveInProcess(backend: Backend, session: AdapterSession, socketFd: number, log: Logger): Promise<number> {
  const fields: Record<string, string> = { FUSEGATE_BACKEND: backend.name };
  // fields is filled in below; the logger reads it at each line
  const volumeLog = volumeLogger(log, fields);
  let volume: Volume | undefined;
  let refused: FatError | undefined;
  let handoff;
  try {
    handoff = await session.run(({ args, sourceFd, readOnly }) => {
      fields.FUSEGATE_SOURCE = args.source;
      fields.FUSEGATE_MOUNTPOINT = args.mountpoint;
      try {
        volume = openFat({ deviceFd: sourceFd, readOnly, options: fatOptionsOf(args.options).join(','), log: volumeLog });
      } catch (err) {
        if (err instanceof FatError) refused = err;
        throw err;
      }
    });
  } catch (err) {
    // Opened read-write but not mounted (the helper refused a step): put the clean bit back.
    try {
      volume?.unmount();
    } catch {
      // the device is gone; fsck will see the dirty bit
    }
    if (refused) log.error(`mount refused: ${refused.reason}`, { ...fields, FUSEGATE_REFUSED: refused.reason });
    else log.error(`mount handshake failed: ${(err as Error).message}`, fields);
    await session.bye(1).catch(() => {});
    return refused ? IN_PROCESS_EXIT.REFUSED : IN_PROCESS_EXIT.FAILED;
  }
  const v = volume!;
  log.info(`mounted ${handoff.args.source} on ${handoff.args.mountpoint}; serving FAT${v.geo.fatType} in-process`, {
    ...fields,
    FUSEGATE_READ_ONLY: handoff.readOnly,
  });
  await session.bye(0);
  // The conversation is over; the source fd stays with the volume.
  fs.closeSync(socketFd);
  try {
    await serveVolume(v, handoff.fuseFd, { log: volumeLog });
  } catch (err) {
    log.error(`serving ${handoff.args.mountpoint} failed: ${(err as Error).stack ?? err}`, fields);
    return IN_PROCESS_EXIT.FAILED;
  }
  log.info(`${handoff.args.mountpoint} unmounted cleanly`, fields);
  return IN_PROCESS_EXIT.SERVED;
}
