/**
 * The helper's entry point (what /sbin/mount.fusegate runs, through the
 * bundle loader that `npm run build` writes). Kept apart from main.ts so the
 * helper can also run in-process in tests.
 */
import { MountExit } from '../lib/errors';
import { exitNow } from '../lib/native';
import { timeoutMsOrDefault, TIMEOUTS } from '../lib/timeouts';
import { runHelper } from './main';
import { writeOut } from '../lib/output';
import { printTimings } from './timing';

// The hard limit: whatever hangs (a service that never answers, a stuck
// connect), mount(8) gets an answer. The session's own deadline fires first
// and tears down any mount; this is the last resort. A bad FUSEGATE_TIMEOUT
// is reported by runHelper; this timer then takes the default.
const limit = timeoutMsOrDefault('mount') + TIMEOUTS.mountGrace.defaultMs;
setTimeout(() => {
  writeOut(2, `mount.fusegate: gave up after ${limit / 1000} s\n`);
  process.exit(MountExit.FAILURE);
}, limit).unref();

// Everything the helper says goes out with write(2) as it says it, and all
// its work is awaited: nothing is left for Node's teardown but time (~1 ms).
runHelper(process.argv.slice(2), process.argv[1] ?? 'mount.fusegate').then((code) => {
  printTimings();
  exitNow(code);
});
