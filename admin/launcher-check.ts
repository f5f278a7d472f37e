/**
 * What `fusegate doctor` says about the mount launcher
 * (helper/mount-launcher.sh): whether mount(8) would reach the Node helper
 * through it, or whether the launcher would run in fail-closed mode (Node
 * missing or too old, the bundle missing or broken), in which only fixed
 * disks listed in /etc/fstab mount.
 *
 * It asks the launcher itself, the way mount(8) runs it: `-V` answers
 * "mount.fusegate from fusegate …" from the helper, or "… fail-closed mode:
 * WHY" from the launcher's own code. The PATH is the one a boot-time mount
 * has, not the administrator's.
 */
import { spawnSync } from 'node:child_process';

export type LauncherState =
  | { state: 'helper'; version: string }
  | { state: 'fail-closed'; why: string }
  | { state: 'broken'; why: string };

/** PATH of systemd's services (and so of fstab mounts at boot). */
export const BOOT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function probeLauncher(launcher: string, env: NodeJS.ProcessEnv = {}): LauncherState {
  const r = spawnSync(launcher, ['-V'], {
    encoding: 'utf8',
    timeout: 10_000,
    env: { PATH: BOOT_PATH, ...env },
    argv0: 'mount.fusegate',
  });
  if (r.error) return { state: 'broken', why: `cannot run ${launcher}: ${r.error.message}` };
  const out = r.stdout.trim();
  const failClosed = /fail-closed mode: (.*)$/m.exec(out);
  if (failClosed) return { state: 'fail-closed', why: failClosed[1]! };
  if (r.status === 0 && /^mount\.fusegate from fusegate /m.test(out)) return { state: 'helper', version: out };
  return { state: 'broken', why: `${launcher} -V exited ${r.status ?? r.signal}: ${(r.stderr || out).trim().split('\n')[0] ?? ''}` };
}
