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
import { allUnits, DEFAULT_UNIT_PATHS } from './units';
import { brokerSharedFiles, brokerUnit } from '../broker/files';
import { UNIT_NAME as BROKER_UNIT } from '../broker/names';

export function writeUnits(dir: string): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const written = allUnits().map((u) => {
    fs.writeFileSync(path.join(dir, u.name), u.text);
    return u.name;
  });
  // The broker's unit and system files, for review beside the backends' (broker/files.ts).
  fs.mkdirSync(path.join(dir, 'broker'), { recursive: true });
  for (const f of reviewedBrokerFiles()) {
    fs.writeFileSync(path.join(dir, 'broker', f.name), f.text);
    written.push(`broker/${f.name}`);
  }
  return written;
}

/** The broker's files as `fusegate install` writes them, named by their basename. */
export function reviewedBrokerFiles(): Array<{ name: string; text: string }> {
  return [
    { name: BROKER_UNIT, text: brokerUnit({ libDir: DEFAULT_UNIT_PATHS.libDir, node: DEFAULT_UNIT_PATHS.node }) },
    ...brokerSharedFiles().map((f) => ({ name: path.posix.basename(f.path), text: f.text })),
  ];
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
