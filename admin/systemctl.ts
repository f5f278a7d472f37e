/**
 * The few systemctl calls install and uninstall make on a live system.
 * systemctl itself, not D-Bus: it is what an administrator would type, it
 * prints errors worth showing as they are, and it keeps dbus-next out of
 * install.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { TIMEOUTS } from '../lib/timeouts';

/** sd_booted(3): systemd is the running init. */
export function systemdRunning(): boolean {
  return fs.existsSync('/run/systemd/system');
}

export interface SystemctlResult {
  ok: boolean;
  /** the command as typed, for messages */
  command: string;
  output: string;
  stdout: string;
}

export function systemctl(args: string[]): SystemctlResult {
  const command = `systemctl ${args.join(' ')}`;
  const r = spawnSync('systemctl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: TIMEOUTS.systemctl.defaultMs });
  if (r.error) return { ok: false, command, output: r.error.message, stdout: '' };
  return { ok: r.status === 0, command, output: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim(), stdout: r.stdout ?? '' };
}

/** Which of `units` are not active now (`systemctl is-active` prints one state per unit, in order). */
export function inactiveUnits(units: string[]): string[] {
  const states = systemctl(['is-active', ...units]).stdout.split('\n');
  return units.filter((_, i) => states[i]?.trim() !== 'active');
}
