/**
 * How every fusegate program writes to stdout and stderr: write(2) at once,
 * through one function.
 *
 * The helpers end with _exit (lib/native exitNow), which would lose anything
 * left in a Node stream's buffer, and not creating process.stdout/stderr
 * saves the mount helper their start-up cost. The administrator's commands
 * write the same way, through an Io that tests replace to capture output.
 */
import * as fs from 'node:fs';

/** Where a command writes; tests pass their own to capture it. */
export interface Io {
  out(s: string): void;
  err(s: string): void;
}

const EAGAIN_WAIT_MS = 1;
const EAGAIN_TRIES = 5000;

/**
 * Writes all of `text` to fd 1 or 2. A non-blocking pipe (one a parent made
 * so) may take part of it or say EAGAIN: the rest is written after a short
 * wait, for at most ~5 s. A closed stream is not an error: there is nowhere
 * left to say it.
 */
export function writeOut(fd: 1 | 2, text: string): void {
  let buf = Buffer.from(text);
  let tries = 0;
  while (buf.length > 0) {
    try {
      buf = buf.subarray(fs.writeSync(fd, buf));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN' || ++tries > EAGAIN_TRIES) return;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, EAGAIN_WAIT_MS);
    }
  }
}

/** The process's own stdout and stderr. */
export const processIo: Io = {
  out: (s) => writeOut(1, s),
  err: (s) => writeOut(2, s),
};
