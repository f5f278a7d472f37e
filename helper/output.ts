/**
 * The helper's stdout and stderr, written with write(2) at once: the entry
 * ends the process with _exit, which would lose anything left in a Node
 * stream's buffer, and not creating process.stderr saves its start-up cost.
 */
import * as fs from 'node:fs';

export function writeOut(fd: 1 | 2, text: string): void {
  try {
    fs.writeSync(fd, text);
  } catch {
    // the stream is closed: there is nowhere left to say it
  }
}
