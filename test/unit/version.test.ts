/**
 * --version and --help as an administrator and mount(8) expect them: the
 * fusegate command, and the mount helpers through the launcher mount(8) runs.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');
const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): { out: string; status: number | null } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env } });
  return { out: r.stdout, status: r.status };
}

describe('versions and help', () => {
  it('fusegate --version and -V print the package version', () => {
    for (const flag of ['--version', '-V']) {
      expect(run(process.execPath, [path.join(ROOT, 'dist/bin/fusegate.js'), flag])).toEqual({ out: `fusegate ${VERSION}\n`, status: 0 });
    }
  });

  it('mount.TYPE -V and -h answer through the launcher, as mount helpers do', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-version-'));
    try {
      const link = path.join(dir, 'mount.vfat');
      fs.symlinkSync(path.join(ROOT, 'helper/mount-launcher.sh'), link);
      const env = { FUSEGATE_LIB_DIR: ROOT };
      expect(run(link, ['-V'], env)).toEqual({ out: `mount.fusegate from fusegate ${VERSION}\n`, status: 0 });
      const help = run(link, ['-h'], env);
      expect(help.status).toBe(0);
      expect(help.out).toMatch(/^Usage: mount\.fusegate SOURCE DIR /);
      // Without a helper to run, the launcher answers itself, and says why.
      const alone = run(link, ['-V'], { FUSEGATE_LIB_DIR: dir });
      expect(alone.status).toBe(0);
      expect(alone.out).toMatch(/^mount\.vfat: fusegate launcher in fail-closed mode: the Node helper failed before deciding \(exit 1\)$/m);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('umount.fusegate -V prints the version', () => {
    expect(run(path.join(ROOT, 'dist/helper/umount.fusegate.js'), ['-V'])).toEqual({ out: `umount.fusegate from fusegate ${VERSION}\n`, status: 0 });
  });
});
