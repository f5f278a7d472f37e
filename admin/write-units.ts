#!/usr/bin/env node
/**
 * Writes the generated units into a folder (default: the repository's
 * units/, which holds a reviewed copy so administrators and reviewers can
 * read them without running anything). `fusegate install` generates them
 * itself; a test keeps units/ equal to the generator's output.
 *
 *   node dist/admin/write-units.js [DIR]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseCommandLine, UsageError } from '../lib/cli-args';
import { processIo } from '../lib/output';
import { allUnits } from './units';

export function writeUnits(dir: string): string[] {
  fs.mkdirSync(dir, { recursive: true });
  return allUnits().map((u) => {
    fs.writeFileSync(path.join(dir, u.name), u.text);
    return u.name;
  });
}

function main(args: string[]): number {
  const p = parseCommandLine(args, { options: {}, maxPositionals: 1 });
  if (p.help) {
    processIo.out('Usage: node dist/admin/write-units.js [DIR]   (default: the repository\'s units/)\n');
    return 0;
  }
  const dir = p.positionals[0] ?? path.resolve(__dirname, '..', '..', 'units');
  for (const name of writeUnits(dir)) processIo.out(`${path.join(dir, name)}\n`);
  return 0;
}

if (require.main === module) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    processIo.err(`write-units: ${e.message}\n`);
    process.exitCode = e.exitCode;
  }
}
