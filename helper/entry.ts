/**
 * The helper's entry point (what /sbin/mount.fusegate runs, through the
 * bundle loader that `npm run build` writes). Kept apart from main.ts so the
 * helper can also run in-process in tests.
 */
import { MountExit } from '../lib/errors';
import { exitNow } from '../lib/native';
import { takeDecidedFd } from './decided';
import { runHelper, timeoutMs } from './main';
import { writeOut } from './output';
import { printTimings } from './timing';

// The hard limit: whatever hangs (a service that never answers, a stuck
// connect), mount(8) gets an answer. The session's own deadline fires first
// and tears down any mount; this is the last resort.
const limit = timeoutMs() + 2000;
setTimeout(() => {
  writeOut(2, `mount.fusegate: gave up after ${limit / 1000} s\n`);
  process.exit(MountExit.FAILURE);
}, limit).unref();

// Everything the helper says goes out with write(2) as it says it, and all
// its work is awaited: nothing is left for Node's teardown but time (~1 ms).
// Started by helper/mount-launcher.sh: the name mount(8) ran (mount.ext4) and
// the pipe that says "decided" come from it.
takeDecidedFd();
const invokedAs = process.env.FUSEGATE_INVOKED_AS || process.argv[1] || 'mount.fusegate';
delete process.env.FUSEGATE_INVOKED_AS;
runHelper(process.argv.slice(2), invokedAs).then((code) => {
  printTimings();
  exitNow(code);
});
