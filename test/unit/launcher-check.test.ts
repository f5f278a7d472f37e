/**
 * What fusegate doctor learns from the launcher: whether mount(8) reaches the
 * Node helper, or whether the launcher would fall back to its fail-closed
 * rule because the helper cannot run (missing, corrupt, Node too old).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeLauncher } from '../../admin/launcher-check';

const ROOT = path.resolve(__dirname, '../..');
const LAUNCHER = path.join(ROOT, 'helper/mount-launcher.sh');
let dir = '';

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-launcher-check-'));
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** A library directory holding the built helper, with `bundle` as its bundle's text (null: the real one). */
function libWith(name: string, bundle: string | null): string {
  const lib = path.join(dir, name);
  fs.mkdirSync(path.join(lib, 'dist/helper'), { recursive: true });
  for (const f of ['mount.fusegate.js', 'mount.fusegate.bundle.js']) fs.copyFileSync(path.join(ROOT, 'dist/helper', f), path.join(lib, 'dist/helper', f));
  if (bundle !== null) fs.writeFileSync(path.join(lib, 'dist/helper/mount.fusegate.bundle.js'), bundle);
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(lib, 'node_modules'));
  fs.symlinkSync(path.join(ROOT, 'build'), path.join(lib, 'build'));
  return lib;
}

describe('probeLauncher (fusegate doctor)', () => {
  it('reports the helper when Node runs it', () => {
    const p = probeLauncher(LAUNCHER, { FUSEGATE_LIB_DIR: libWith('good', null) });
    expect(p).toEqual({ state: 'helper', version: expect.stringMatching(/^mount\.fusegate from fusegate \d/) });
  });

  it('reports fail-closed mode when the bundle is corrupt', () => {
    const p = probeLauncher(LAUNCHER, { FUSEGATE_LIB_DIR: libWith('corrupt', 'this is not JavaScript {') });
    expect(p).toEqual({ state: 'fail-closed', why: 'the Node helper failed before deciding (exit 1)' });
  });

  it('reports fail-closed mode when the helper is missing', () => {
    expect(probeLauncher(LAUNCHER, { FUSEGATE_LIB_DIR: path.join(dir, 'nothing') })).toMatchObject({ state: 'fail-closed' });
  });

  it('reports fail-closed mode when there is no node', () => {
    const p = probeLauncher(LAUNCHER, { FUSEGATE_LIB_DIR: libWith('nonode', null), PATH: dir });
    expect(p).toEqual({ state: 'fail-closed', why: 'node was not found' });
  });

  it('reports a launcher that cannot run at all', () => {
    expect(probeLauncher(path.join(dir, 'absent'))).toMatchObject({ state: 'broken' });
  });
});
