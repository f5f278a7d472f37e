#!/usr/bin/env node
/** Entry of the preflight checker's bundle (dist/sandbox/check-start.js): see check.ts. */
import { processIo } from '../lib/output';
import { main } from './check';

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    processIo.err(`fusegate check: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(4);
  },
);
