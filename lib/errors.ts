/**
 * The error type every fusegate module throws for an expected failure.
 *
 * `message` says what went wrong in one line; `hint` says what the reader can
 * do about it. Callers at the edge (the helper, the CLI) print both and pick an
 * exit status from `exitCode`, so a module deep inside never has to know
 * whether it runs under mount(8) or an administrator's shell.
 */
export class FusegateError extends Error {
  /** What an administrator can do about it, one sentence. */
  readonly hint: string | undefined;
  /** mount(8)-style exit status the helper should use for this failure. */
  readonly exitCode: number;

  constructor(message: string, opts: { hint?: string; exitCode?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.hint = opts.hint;
    this.exitCode = opts.exitCode ?? MountExit.FAILURE;
  }
}

/** Exit statuses documented in mount(8), shared by the helper and the CLI. */
export const MountExit = {
  SUCCESS: 0,
  /** incorrect invocation or permissions */
  USAGE: 1,
  /** system error (out of memory, cannot fork, no more loop devices) */
  SYSTEM: 2,
  /** internal mount bug */
  INTERNAL: 4,
  /** user interrupt */
  INTERRUPT: 8,
  /** problems writing or locking /etc/mtab (utab) */
  MTAB: 16,
  /** mount failure */
  FAILURE: 32,
  /** some mount succeeded */
  SOME: 64,
} as const;
