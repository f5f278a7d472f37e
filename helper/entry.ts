/**
 * The helper's entry point (what /sbin/mount.fusegate runs, through the
 * bundle loader that `npm run build` writes). Kept apart from main.ts so the
 * helper can also run in-process in tests.
 */
import { exitNow, watchdogArm } from '../lib/native';
import { timeoutMsOrDefault, TIMEOUTS } from '../lib/timeouts';
import { runHelper } from './main';
import { takeDecidedFd } from './decided';
import { printTimings } from './timing';

// The hard limit: whatever hangs, mount(8) gets an answer. The session's own
// deadline fires first and tears down any mount; this is the last resort. A
// JS timer cannot be it: a synchronous call stuck in a FUSE request (SOURCE
// or DIR under a mount whose server never answers) blocks the event loop and
// every timer with it. The addon's watchdog thread is not blocked by it: it
// prints the line, undoes a mount already made, and exits 32.
// Counted from the process's start, as mount(8) sees it (Node's start-up can
// take most of a second on a loaded machine). A bad FUSEGATE_TIMEOUT is
// reported by runHelper; the watchdog then takes the default.
const limit = timeoutMsOrDefault('mount') + TIMEOUTS.mountGrace.defaultMs;
watchdogArm(limit - process.uptime() * 1000, `mount.fusegate: gave up after ${limit / 1000} s: something did not answer (FUSEGATE_TIMEOUT=${timeoutMsOrDefault('mount') / 1000})`);

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
