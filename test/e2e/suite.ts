/**
 * vitest wiring for a suite that shares one booted container: boots it in
 * beforeAll (after the availability check, so FUSEGATE_REQUIRE_E2E=1 turns a
 * missing means into a failure), prints the container's diagnostics after a
 * failed test, and stops it in afterAll even when tests threw.
 *
 *   const e2e = containerSuite(() => ({ projectDir: REPO }));
 *   it('…', async () => { await e2e.container.shOk('…'); });
 *
 * Call it inside the describe.skipIf(e2eSkip()) block. vitest runs after-
 * hooks in reverse order, so afterAll hooks the test registers before this
 * call (e.g. detaching a loop device) run after the container is stopped.
 */
import { rmSync } from 'node:fs';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { type BootOptions, Container } from './container';
import { assertE2eAvailable, e2eLog } from './harness';
import type { LoopDevice } from './loop';
import type { HostUdev } from './udev';

export interface ContainerSuite {
  /** The booted container; throws if beforeAll has not booted one. */
  readonly container: Container;
}

export function containerSuite(options: () => BootOptions | Promise<BootOptions> = () => ({})): ContainerSuite {
  let booted: Container | undefined;
  beforeAll(async () => {
    assertE2eAvailable();
    booted = await Container.boot({ log: e2eLog, ...(await options()) });
  });
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail' && booted) await booted.dumpJournal();
  });
  afterAll(async () => {
    await booted?.stop();
  });
  return {
    get container(): Container {
      if (!booted) throw new Error('e2e container not booted (did beforeAll fail?)');
      return booted;
    },
  };
}

/** What an e2e file sets up on the host for its container, to be released after it. */
export interface HostSetup {
  suite: ContainerSuite;
  loops?: Iterable<LoopDevice | undefined>;
  udev?: HostUdev;
  scratch?: string;
}

/**
 * Releases what a file set up on the host, in the one order that works:
 * the container first (it holds the loop devices; normally stopped already
 * by containerSuite, and then this is a no-op; it throws only when boot
 * failed, and then there is nothing to stop), then the loop devices, the
 * host's udevd, the scratch directory. `what` is read when the hooks run,
 * so it may name variables beforeAll assigns. Register it before
 * containerSuite(), so vitest (after-hooks in reverse order) runs it last.
 */
export function releaseHostSetup(what: () => HostSetup): void {
  afterAll(async () => {
    const w = what();
    await Promise.resolve()
      .then(() => w.suite.container.stop())
      .catch(() => undefined);
    for (const l of w.loops ?? []) await l?.detach();
    await w.udev?.stop();
    if (w.scratch) rmSync(w.scratch, { recursive: true, force: true });
  });
}
