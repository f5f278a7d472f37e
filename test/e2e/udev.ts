/**
 * A systemd-udevd on the host, for the duration of a scenario that needs
 * udev data (udisks2 inside the container reads /run/udev, bound read-only;
 * docs/testing.md §5). The host's systemd is not PID 1, so nothing else runs one.
 *
 * udevd runs in the foreground as our child (its pid is ours to stop), only
 * for as long as the scenario needs it: while it runs it also handles other
 * processes' block devices (probing them briefly), so the window is kept
 * short. If a udevd is already running on the host it is used and left
 * alone. What ours created and the host did not have before (/run/udev,
 * /dev/disk) is removed when it stops, so the host is left as it was.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { CLEAN_ENV, pidAlive, run, runOk, sleep } from './host';
import { type Watchdog, startWatchdog } from './watchdog';

const UDEVD = '/lib/systemd/systemd-udevd';

export interface HostUdev {
  /** Our udevd's pid, or null when an already running udevd is used. */
  readonly pid: number | null;
  /** Replays "add" for these block devices (e.g. /dev/loop3) and waits until udev has handled them. */
  coldplug(devices: string[]): Promise<void>;
  /** Stops our udevd (if we started it) and removes what it created. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Host pids of running systemd-udevd processes in our mount namespace
 * (looked up by name, never signalled by it). One in another mount
 * namespace (another checkout's test run in its own root) writes its
 * /run/udev, not ours, so it is no use here.
 */
function runningUdevds(): number[] {
  const pids: number[] = [];
  const ourMounts = readlinkSync('/proc/self/ns/mnt');
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'systemd-udevd' && readlinkSync(`/proc/${d}/ns/mnt`) === ourMounts && pidAlive(Number(d))) pids.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return pids;
}

export function hostUdevAvailable(): boolean {
  return existsSync(UDEVD) && existsSync('/usr/bin/udevadm');
}

export async function startHostUdev(opts: { log?: (line: string) => void } = {}): Promise<HostUdev> {
  const log = opts.log ?? (() => undefined);
  const coldplug = async (devices: string[]): Promise<void> => {
    const paths = devices.map((d) => `/sys/class/block/${d.replace(/^\/dev\//, '')}`);
    await runOk(['udevadm', 'trigger', '--action=add', '--settle', ...paths], { timeoutMs: 60_000 });
    await runOk(['udevadm', 'settle', '--timeout=30'], { timeoutMs: 60_000 });
    for (const d of devices) {
      const st = await runOk(['stat', '-c', '%t:%T', d]);
      const [maj, min] = st.stdout.trim().split(':').map((h) => parseInt(h, 16));
      if (!existsSync(`/run/udev/data/b${maj}:${min}`)) throw new Error(`udev has no data for ${d} after coldplug`);
    }
  };

  const others = runningUdevds();
  if (others.length > 0) {
    log(`using the systemd-udevd already running on the host (pid ${others.join(', ')})`);
    return { pid: null, coldplug, stop: async () => undefined };
  }

  const hadRunUdev = existsSync('/run/udev');
  const hadDevDisk = existsSync('/dev/disk');
  const child: ChildProcess = spawn(UDEVD, [], { env: CLEAN_ENV, detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`cannot start ${UDEVD}`);
  // If the test process is killed, the watcher kills udevd's process group.
  const dog: Watchdog = startWatchdog({ kind: 'group', pid, marker: UDEVD });
  let stopped = false;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // Let it finish the events of devices detached just before (they remove their links).
    await run(['udevadm', 'settle', '--timeout=10'], { timeoutMs: 20_000 });
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone */
    }
    let timer: NodeJS.Timeout | undefined;
    const ok = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 10_000)))]);
    clearTimeout(timer);
    if (!ok) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      await exited;
    }
    dog.disarm();
    // Only what did not exist before it started, and only while no other udevd runs.
    if (runningUdevds().length === 0) {
      if (!hadRunUdev) await run(['rm', '-rf', '--one-file-system', '--', '/run/udev'], { timeoutMs: 30_000 });
      if (!hadDevDisk) await run(['rm', '-rf', '--one-file-system', '--', '/dev/disk'], { timeoutMs: 30_000 });
    }
    log(`stopped host systemd-udevd ${pid}`);
  };

  try {
    for (let i = 0; i < 100 && !existsSync('/run/udev/control'); i++) {
      if (child.exitCode !== null || child.signalCode !== null) break;
      await sleep(50);
    }
    if (!existsSync('/run/udev/control') || !pidAlive(pid)) throw new Error(`systemd-udevd did not start: ${stderr.trim()}`);
  } catch (e) {
    await stop();
    throw e;
  }
  log(`started host systemd-udevd ${pid}`);
  return { pid, coldplug, stop };
}
