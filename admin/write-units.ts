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
import { allUnits } from './units';

export function writeUnits(dir: string): string[] {
  fs.mkdirSync(dir, { recursive: true });
  return allUnits().map((u) => {
    fs.writeFileSync(path.join(dir, u.name), u.text);
    return u.name;
  });
}

if (require.main === module) {
  const dir = process.argv[2] ?? path.resolve(__dirname, '..', '..', 'units');
  for (const name of writeUnits(dir)) process.stdout.write(`${path.join(dir, name)}\n`);
}
