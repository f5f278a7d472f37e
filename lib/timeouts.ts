/**
 * Every time limit fusegate sets, in one place: its name, its default, the
 * environment variable that overrides it (if any) and why it has that value.
 * A wait that is not bounded here is bounded by one that is.
 */
import { FusegateError, MountExit } from './errors';

export interface Timeout {
  /** default, in ms */
  defaultMs: number;
  /** the variable that overrides it, in seconds; null: fixed */
  env: string | null;
  /** why this value */
  why: string;
}

export const TIMEOUTS = {
  /** mount.fusegate: the whole mount, from start to exit (helper/main.ts). */
  mount: {
    defaultMs: 30_000,
    env: 'FUSEGATE_TIMEOUT',
    why:
      "mount(8), udisks2 and systemd's mount units wait for the helper; a hostile or stuck server must not hang them. " +
      '30 s covers a slow USB stick spinning up and a cold service start (~1 s) many times over.',
  },
  /** mount.fusegate's last resort beyond `mount`: the session's own deadline fires first and tears down any mount (helper/entry.ts). */
  mountGrace: {
    defaultMs: 1_000,
    env: null,
    why: "room for the session to tear down a half-made mount and report before the addon's watchdog thread ends the process (it fires even while a synchronous call blocks); 1 s keeps mount(8)'s wait close to what FUSEGATE_TIMEOUT says",
  },
  /** mount.fusegate: the least time the new mount gets to answer statfs, even when `mount`'s deadline is nearly spent (helper/sandbox-mount.ts). */
  mountAnswerMinimum: {
    defaultMs: 1_000,
    env: null,
    why: 'a mount made in the last moment still gets a fair chance to show it answers, rather than being torn down unasked',
  },
  /** umount.fusegate: how long to wait for the FUSE server to exit after the unmount (helper/umount.ts). */
  umountWait: {
    defaultMs: 30_000,
    env: 'FUSEGATE_TIMEOUT',
    why: 'the server writes its last blocks after the connection ends (fuse2fs, ntfs-3g flush caches); 30 s is far beyond what a healthy one needs, and then umount says the device is not safe to remove yet',
  },
  /** umount.fusegate, after aborting a stuck unmount: how long the kernel and the killed server get to finish (helper/umount.ts). */
  umountAbortGrace: {
    defaultMs: 3_000,
    env: null,
    why: 'aborting the FUSE connection fails the pending DESTROY at once and SIGKILL ends the server within milliseconds; 3 s covers a loaded machine',
  },
  /** The adapter, inside the unit: one protocol message each way (sandbox/adapter-session.ts). */
  adapterStep: {
    defaultMs: 30_000,
    env: null,
    why: "equal to the helper's default mount limit, so the adapter never gives up on a helper that is still within its own; it only keeps an instance from lingering when the helper vanished. The unit's environment is systemd's, so no override",
  },
  /** `blkid -p` where the policy's facts probe with the program, not libblkid in-process (policy/device.ts). */
  blkid: {
    defaultMs: 10_000,
    env: null,
    why: 'a probe reads a few superblocks; a device that does not answer in 10 s (a dying stick) must not use up the whole mount limit',
  },
  /** One systemctl call of install, uninstall and doctor (admin/systemctl.ts). */
  systemctl: {
    defaultMs: 60_000,
    env: null,
    why: "daemon-reload and enable --now can take tens of seconds on a busy machine; a minute bounds a hung systemd without failing a slow one",
  },
  /** `fusegate status`: systemd's answer over D-Bus (admin/systemd-dbus.ts). */
  systemdBus: {
    defaultMs: 5_000,
    env: null,
    why: 'systemd answers in milliseconds; a bus without systemd must make status fall back quickly, not hang',
  },
} as const satisfies Record<string, Timeout>;

export type TimeoutName = keyof typeof TIMEOUTS;

/**
 * The limit in ms: the environment's value (seconds, a positive number such
 * as 30 or 0.5) or the default. A value that is not one is a usage error, so
 * a typo never silently becomes the default.
 */
export function timeoutMs(name: TimeoutName, env: NodeJS.ProcessEnv = process.env): number {
  const t: Timeout = TIMEOUTS[name];
  const raw = t.env === null ? undefined : env[t.env];
  if (raw === undefined || raw === '') return t.defaultMs;
  const s = /^\s*\d+(\.\d+)?\s*$/.test(raw) ? Number(raw) : NaN;
  if (!(s > 0)) {
    throw new FusegateError(`${t.env}='${raw}' is not a number of seconds`, {
      hint: `set ${t.env} to a positive number of seconds (e.g. ${t.defaultMs / 1000}), or unset it for the default of ${t.defaultMs / 1000} s`,
      exitCode: MountExit.USAGE,
    });
  }
  return s * 1000;
}

/** As timeoutMs, but the default for a bad value: for last-resort timers, set before anything can report the bad value. */
export function timeoutMsOrDefault(name: TimeoutName, env: NodeJS.ProcessEnv = process.env): number {
  try {
    return timeoutMs(name, env);
  } catch {
    return TIMEOUTS[name].defaultMs;
  }
}
