/** lib/timeouts.ts: every limit's default, its override, and bad values refused with a clear error. */
import { describe, expect, it } from 'vitest';
import { FusegateError, MountExit } from '../../lib/errors';
import { timeoutMs, timeoutMsOrDefault, TIMEOUTS } from '../../lib/timeouts';

describe('timeouts', () => {
  it('each has a default, an override or none, and a reason', () => {
    for (const [name, t] of Object.entries(TIMEOUTS)) {
      expect(t.defaultMs, name).toBeGreaterThan(0);
      expect(t.why.length, name).toBeGreaterThan(20);
      expect(timeoutMs(name as keyof typeof TIMEOUTS, {})).toBe(t.defaultMs);
    }
    expect(TIMEOUTS.mount.env).toBe('FUSEGATE_TIMEOUT');
    expect(TIMEOUTS.umountWait.env).toBe('FUSEGATE_TIMEOUT');
  });

  it('takes the override in seconds, fractions included; an empty one is unset', () => {
    expect(timeoutMs('mount', { FUSEGATE_TIMEOUT: '5' })).toBe(5000);
    expect(timeoutMs('umountWait', { FUSEGATE_TIMEOUT: '0.5' })).toBe(500);
    expect(timeoutMs('mount', { FUSEGATE_TIMEOUT: '' })).toBe(30_000);
    // a fixed limit ignores the environment
    expect(timeoutMs('adapterStep', { FUSEGATE_TIMEOUT: '1' })).toBe(TIMEOUTS.adapterStep.defaultMs);
  });

  it.each(['abc', '0', '-1', '30s', '1e3', 'Infinity', '.5'])('refuses FUSEGATE_TIMEOUT=%s with a usage error and a hint', (raw) => {
    let err: unknown;
    try {
      timeoutMs('mount', { FUSEGATE_TIMEOUT: raw });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FusegateError);
    expect((err as FusegateError).message).toBe(`FUSEGATE_TIMEOUT='${raw}' is not a number of seconds`);
    expect((err as FusegateError).hint).toMatch(/positive number of seconds .* default of 30 s/);
    expect((err as FusegateError).exitCode).toBe(MountExit.USAGE);
    // the last-resort timer takes the default instead
    expect(timeoutMsOrDefault('mount', { FUSEGATE_TIMEOUT: raw })).toBe(30_000);
  });
});
