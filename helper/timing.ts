/**
 * FUSEGATE_TIMING=1: when each phase of the helper ended, in ms since the
 * process started, printed on stderr as `mount.fusegate: timing PHASE MS ms`
 * (one line each; bench/ reads them) when the helper ends. Collected in
 * memory and written with one write(2), so measuring does not pay for Node's
 * stderr stream.
 */
import { writeOut } from '../lib/output';

const marks: string[] | null = process.env.FUSEGATE_TIMING === '1' ? [] : null;

export function mark(phase: string): void {
  if (marks !== null) marks.push(`${phase} ${performance.now().toFixed(2)}`);
}

/** Prints the marks so far (the entry calls it just before it exits). */
export function printTimings(): void {
  if (marks === null || marks.length === 0) return;
  writeOut(2, marks.map((m) => `mount.fusegate: timing ${m} ms\n`).join(''));
  marks.length = 0;
}
