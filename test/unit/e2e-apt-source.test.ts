/**
 * The e2e root is built from the apt source this host uses, read from
 * sources.list (one-line format) and sources.list.d (one-line .list and
 * deb822 .sources); without one it fails at once, naming what it needs,
 * instead of falling back to a mirror host the machine may not reach.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { aptMirror } from '../e2e/rootfs';

describe('the e2e root’s apt source', () => {
  let etc: string;
  const saved = process.env.FUSEGATE_E2E_MIRROR;

  beforeEach(() => {
    etc = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-apt-'));
    fs.mkdirSync(path.join(etc, 'sources.list.d'));
    delete process.env.FUSEGATE_E2E_MIRROR;
  });
  afterEach(() => {
    fs.rmSync(etc, { recursive: true, force: true });
    if (saved === undefined) delete process.env.FUSEGATE_E2E_MIRROR;
    else process.env.FUSEGATE_E2E_MIRROR = saved;
  });

  const write = (rel: string, text: string) => fs.writeFileSync(path.join(etc, rel), text);

  it('reads a one-line sources.list entry for bookworm main', () => {
    write('sources.list', '# comment\ndeb [arch=amd64] http://mirror.example/debian bookworm main contrib\n');
    expect(aptMirror(etc)).toBe('http://mirror.example/debian');
  });

  it('reads a deb822 .sources file, skipping disabled stanzas and other suites', () => {
    write(
      'sources.list.d/debian.sources',
      [
        'Types: deb',
        'URIs: http://disabled.example/debian',
        'Suites: bookworm',
        'Components: main',
        'Enabled: no',
        '',
        'Types: deb',
        'URIs: http://security.example/debian-security',
        'Suites: bookworm-security',
        'Components: main',
        '',
        'Types: deb deb-src',
        'URIs: http://deb822.example/debian',
        'Suites: bookworm bookworm-updates',
        'Components: main',
        '',
      ].join('\n'),
    );
    expect(aptMirror(etc)).toBe('http://deb822.example/debian');
  });

  it('FUSEGATE_E2E_MIRROR wins over the host’s sources', () => {
    write('sources.list', 'deb http://mirror.example/debian bookworm main\n');
    process.env.FUSEGATE_E2E_MIRROR = 'http://chosen.example/debian';
    expect(aptMirror(etc)).toBe('http://chosen.example/debian');
  });

  it('without a bookworm main source: one line naming the source it needs and the variable to set', () => {
    write('sources.list', 'deb http://mirror.example/debian trixie main\n');
    write('sources.list.d/other.list', 'deb http://mirror.example/debian bookworm contrib\n');
    let message = '';
    try {
      aptMirror(etc);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain('Debian bookworm main');
    expect(message).toContain('FUSEGATE_E2E_MIRROR');
    expect(message).not.toContain('\n');
    expect(message).not.toMatch(/deb\.debian\.org/);
  });
});
