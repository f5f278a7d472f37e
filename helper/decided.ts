/**
 * Tells helper/mount-launcher.sh that the helper reached its decision: from
 * then on the helper's exit status stands, and the launcher does not fall
 * back to its built-in fail-closed rule. The launcher passes a pipe as fd
 * FUSEGATE_DECIDED_FD; one byte on it says "decided". Without the variable
 * (the helper run directly, tests) this does nothing.
 */
import * as fs from 'node:fs';

let fd: number | null = null;

/** Takes the fd from the environment, so nothing the helper starts inherits the variable. */
export function takeDecidedFd(): void {
  const v = process.env.FUSEGATE_DECIDED_FD;
  delete process.env.FUSEGATE_DECIDED_FD;
  const n = Number(v);
  if (v === undefined || !Number.isInteger(n) || n < 3) return;
  try {
    // Only a pipe: a number naming some other inherited file must not be written to.
    if (fs.fstatSync(n).isFIFO()) fd = n;
  } catch {
    /* not open */
  }
}

/** Says "decided" once, and closes the pipe so no child of the helper holds it open. */
export function signalDecided(): void {
  if (fd === null) return;
  const n = fd;
  fd = null;
  try {
    fs.writeSync(n, 'D');
  } catch {
    /* the launcher is gone: nothing to tell */
  }
  try {
    fs.closeSync(n);
  } catch {
    /* already closed */
  }
}
