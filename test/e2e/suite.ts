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
import { afterAll, afterEach, beforeAll } from 'vitest';
import { type BootOptions, Container } from './container';
import { assertE2eAvailable, e2eLog } from './harness';

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
