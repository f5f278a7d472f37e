/**
 * Backend quirks live in the backends table: the unit generator takes what a
 * server needs beyond the common hardening from its entry's `unit` field,
 * and no product module outside lib/backends.ts tests a backend by name.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { serviceUnit } from '../../admin/units';
import { BACKENDS, findBackend, type Backend } from '../../lib/backends';

const ROOT = path.resolve(__dirname, '../..');

const plain: Backend = {
  name: 'plainfs',
  debianPackage: 'plainfs',
  binary: '/usr/bin/plainfs',
  types: [{ type: 'plainfs', write: 'safe' }],
  delivery: 'preload-devfuse',
  argv: (c) => [c.source, c.mountpoint],
};

function directives(text: string, key: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${key}=`));
}

describe('unit quirks from the backends table', () => {
  it('a backend without quirks gets the common unit: ProcSubset=pid, no SuccessExitStatus', () => {
    const text = serviceUnit(plain).text;
    expect(directives(text, 'ProcSubset')).toEqual(['ProcSubset=pid']);
    expect(directives(text, 'SuccessExitStatus')).toEqual([]);
  });

  it('fullProc gives ProcSubset=all with the reason as a comment above it', () => {
    const text = serviceUnit({ ...plain, unit: { fullProc: { why: 'reads /proc/swaps' } } }).text;
    expect(directives(text, 'ProcSubset')).toEqual(['ProcSubset=all']);
    expect(text).toContain('# plainfs reads /proc/swaps.\nProcSubset=all\n');
    // Other processes stay invisible whatever the subset.
    expect(directives(text, 'ProtectProc')).toEqual(['ProtectProc=invisible']);
  });

  it('successExitStatus becomes SuccessExitStatus= with every status', () => {
    const text = serviceUnit({ ...plain, unit: { successExitStatus: [3, 255] } }).text;
    expect(directives(text, 'SuccessExitStatus')).toEqual(['SuccessExitStatus=3 255']);
  });

  it('the Debian servers carry their known quirks: ntfs-3g reads /proc, fusefat exits 255', () => {
    expect(directives(serviceUnit(findBackend('ntfs-3g')!).text, 'ProcSubset')).toEqual(['ProcSubset=all']);
    expect(directives(serviceUnit(findBackend('fusefat')!).text, 'SuccessExitStatus')).toEqual(['SuccessExitStatus=255']);
    for (const b of BACKENDS.filter((x) => x.name !== 'ntfs-3g' && x.delivery !== 'native-service')) {
      expect(directives(serviceUnit(b).text, 'ProcSubset'), b.name).toEqual(['ProcSubset=pid']);
    }
  });

  it('no product module outside lib/backends.ts names a backend in a string literal', () => {
    const names = BACKENDS.map((b) => b.name);
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const ent of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
        const rel = path.join(dir, ent.name);
        if (ent.isDirectory()) walk(rel);
        else if (ent.name.endsWith('.ts') && rel !== path.join('lib', 'backends.ts')) {
          // Code only: a comment may well give a backend as an example.
          const text = fs.readFileSync(path.join(ROOT, rel), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
          for (const n of names) {
            if (text.includes(`'${n}'`) || text.includes(`"${n}"`)) offenders.push(`${rel}: '${n}'`);
          }
        }
      }
    };
    for (const dir of ['helper', 'policy', 'sandbox', 'admin', 'lib', 'bin']) walk(dir);
    expect(offenders).toEqual([]);
  });
});
