/** Entry point of /sbin/umount.fusegate (bundled by scripts/bundle.js). */
import { FusegateError, MountExit } from '../lib/errors';
import { writeOut } from '../lib/output';
import { watchdogArm } from '../lib/native';
import { ABORT_GRACE_MS, runUmountHelper, umountTimeoutS } from './umount';

// The last resort, on a thread of its own (see helper/entry.ts): the deadline
// and the abort in umount.ts come first, with their own grace periods.
const limit = umountTimeoutS() * 1000 + 2 * ABORT_GRACE_MS + 1000;
watchdogArm(limit, `umount.fusegate: gave up after ${limit / 1000} s: the unmount or the FUSE server did not finish`);

runUmountHelper(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    writeOut(2, `umount.fusegate: ${(err as Error).message}\n`);
    if (err instanceof FusegateError && err.hint) writeOut(2, `umount.fusegate: ${err.hint}\n`);
    process.exit(err instanceof FusegateError ? err.exitCode : MountExit.INTERNAL);
  },
);
