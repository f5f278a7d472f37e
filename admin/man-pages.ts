/**
 * The man pages `npm run build` writes into dist/man (scripts/man.ts), and
 * where each goes: /usr/share/man/manN/NAME.N. `fusegate install` and the
 * Debian package (scripts/package-deb.ts) both install them from this list.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const MAN_DIR = '/usr/share/man';

export interface ManPage {
  /** in the built tree, e.g. dist/man/fusegate.8 */
  rel: string;
  /** runtime path, e.g. /usr/share/man/man8/fusegate.8 */
  target: string;
}

export function manPages(root: string): ManPage[] {
  const dir = path.join(root, 'dist/man');
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((n) => /\.[1-8]$/.test(n)).sort().map((n) => ({
    rel: `dist/man/${n}`,
    target: `${MAN_DIR}/man${n.slice(-1)}/${n}`,
  }));
}
