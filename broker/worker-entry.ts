/**
 * The mount worker's entry point (broker/worker.ts), started by the broker
 * only: `node dist/broker/worker-start.js REQUEST-JSON` with the source on fd 3
 * and the pinned mountpoint on fd 4. Bundled with a code cache as the helper
 * is (scripts/bundle.js): every user mount starts one.
 */
import * as native from '../lib/native';
import { MountExit } from '../lib/errors';
import { timeoutMsOrDefault, TIMEOUTS } from '../lib/timeouts';
import { runWorker } from './worker';

// The last resort, as the helper's: whatever hangs, the worker ends and undoes its mount.
const limit = 2 * timeoutMsOrDefault('mount') + TIMEOUTS.mountGrace.defaultMs;
native.watchdogArm(limit, `fusegate-broker worker: gave up after ${limit / 1000} s`);
runWorker(process.argv[2] ?? '{}').then(
  (code) => native.exitNow(code),
  (err: unknown) => {
    process.stdout.write(`${JSON.stringify({ result: { outcome: 'failed', message: `internal error: ${(err as Error)?.message ?? String(err)}`, hint: null } })}\n`);
    native.exitNow(MountExit.INTERNAL);
  },
);
