/** Entry point of /sbin/umount.fusegate (bundled by scripts/bundle.js). */
import { FusegateError, MountExit } from '../lib/errors';
import { writeOut } from '../lib/output';
import { runUmountHelper } from './umount';

runUmountHelper(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    writeOut(2, `umount.fusegate: ${(err as Error).message}\n`);
    if (err instanceof FusegateError && err.hint) writeOut(2, `umount.fusegate: ${err.hint}\n`);
    process.exit(err instanceof FusegateError ? err.exitCode : MountExit.INTERNAL);
  },
);
