/** Entry point of /sbin/umount.fusegate (bundled by scripts/bundle.js). */
import { FusegateError, MountExit } from '../lib/errors';
import { runUmountHelper } from './umount';

runUmountHelper(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`umount.fusegate: ${(err as Error).message}\n`);
    process.exit(err instanceof FusegateError ? err.exitCode : MountExit.INTERNAL);
  },
);
