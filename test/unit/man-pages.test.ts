/**
 * The man pages: generated from the --help texts and policy/README.md
 * (scripts/man.ts), clean under `man --warnings`, saying what the texts say,
 * and installed by `fusegate install` where man(1) finds them.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeManPages } from '../../scripts/man';

const ROOT = path.resolve(__dirname, '../..');
let dir = '';
const pages = new Map<string, string>();

/** The page as man(1) renders it, and its warnings. */
function render(file: string): { text: string; warnings: string; status: number | null } {
  const r = spawnSync('man', ['--warnings', '-l', file], {
    encoding: 'utf8',
    env: { ...process.env, MANWIDTH: '80', MAN_KEEP_FORMATTING: '', LC_ALL: 'C.UTF-8', MANPAGER: 'cat', PAGER: 'cat' },
  });
  return { text: r.stdout.replace(/.\x08/g, ''), warnings: r.stderr, status: r.status };
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-man-'));
  for (const f of writeManPages(dir)) pages.set(path.basename(f), f);
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('man pages', () => {
  it('are the four pages, each rendering without a warning', () => {
    expect([...pages.keys()].sort()).toEqual(['fusegate-policy.5', 'fusegate.8', 'mount.fusegate.8', 'umount.fusegate.8']);
    for (const [name, file] of pages) {
      const r = render(file);
      expect(r.warnings, name).toBe('');
      expect(r.status, name).toBe(0);
      expect(r.text, name).toMatch(/^NAME\n +\S+ +- /m);
    }
  });

  it('say what the --help texts and the policy reference say', () => {
    const mount = render(pages.get('mount.fusegate.8')!).text;
    expect(mount).toMatch(/^SYNOPSIS\n +mount\.fusegate SOURCE DIR/m);
    expect(mount).toMatch(/^EXIT STATUS\n/m);
    expect(mount).toMatch(/-V, --version/);
    expect(render(pages.get('umount.fusegate.8')!).text).toMatch(/lazy unmount/);
    const cmd = render(pages.get('fusegate.8')!).text;
    for (const sub of ['install', 'uninstall', 'doctor', 'status', 'policy check', 'policy explain']) expect(cmd).toMatch(new RegExp(`^ +fusegate ${sub}\\b`, 'm'));
    const policy = render(pages.get('fusegate-policy.5')!).text;
    expect(policy).toMatch(/^FAIL-CLOSED BEHAVIOUR$/m);
    expect(policy).toMatch(/^ +removable$/m);
  });

  it('are installed by fusegate install where man(1) finds them', () => {
    const tree = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-man-install-'));
    try {
      const r = spawnSync(process.execPath, [path.join(ROOT, 'dist/bin/fusegate.js'), 'install', '--root', tree], { encoding: 'utf8' });
      expect(r.status, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^installed: man pages fusegate-policy\.5, fusegate\.8, mount\.fusegate\.8, umount\.fusegate\.8$/m);
      for (const p of ['man5/fusegate-policy.5', 'man8/fusegate.8', 'man8/mount.fusegate.8', 'man8/umount.fusegate.8']) {
        expect(fs.existsSync(path.join(tree, 'usr/share/man', p)), p).toBe(true);
      }
    } finally {
      fs.rmSync(tree, { recursive: true, force: true });
    }
  });
});
