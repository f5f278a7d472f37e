/**
 * Kills a container whose test process died without stopping it.
 *
 * Neither afterAll nor a process 'exit' handler runs when the test worker is
 * SIGKILLed (a runner timeout, the OOM killer), and systemd-nspawn does not
 * take its container down when it is itself killed: the container's systemd
 * keeps running, holding /dev/fuse and the test's loop devices. So each
 * container gets a small detached watcher whose stdin is a pipe from the test
 * process; when that pipe reaches EOF without a "disarm" line first, the test
 * process is gone and the watcher kills the container's processes by pid
 * (after checking the pid still is that nspawn) and removes its work dir.
 * Long build steps (debootstrap) get the same guard, killing their process
 * group.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { CLEAN_ENV } from './host';

// Plain JavaScript run with `node -e`; argv: mode ("container" or "group"),
// pid, marker (an argument the pid's command line must still contain, so a
// reused pid is never killed), directory to remove afterwards (or ""); or
// "loop", the loop device, its backing file (detached only if it still backs
// that file, so a reused device number is never touched), "".
// Runs with the harness's clean environment; logs nothing.
const WATCHER = String.raw`
const fs = require('fs');
const [mode, pidText, marker, dir] = process.argv.slice(1);
const pid = Number(pidText);
let disarmed = false;
const read = (f) => { try { return fs.readFileSync(f, 'utf8'); } catch { return ''; } };
const kill = (p) => { try { process.kill(p, 'SIGKILL'); } catch {} };
const children = (p) => {
  let tasks = [];
  try { tasks = fs.readdirSync('/proc/' + p + '/task'); } catch {}
  return tasks.flatMap((t) => read('/proc/' + p + '/task/' + t + '/children').trim().split(/\s+/).filter(Boolean).map(Number));
};
const detachLoop = (dev, image) => {
  const { spawnSync } = require('child_process');
  const r = spawnSync('losetup', ['--noheadings', '--output', 'NAME', '--associated', image], { encoding: 'utf8' });
  if ((r.stdout || '').split('\n').map((l) => l.trim()).includes(dev)) spawnSync('losetup', ['--detach', dev]);
};
const cleanUp = () => {
  if (mode === 'loop') {
    // The container holding the device may still be dying: retry briefly.
    for (let i = 0; i < 10; i++) setTimeout(() => detachLoop(pidText, marker), i * 500);
    setTimeout(() => process.exit(0), 5000);
    return;
  }
  if (read('/proc/' + pid + '/cmdline').split('\0').includes(marker)) {
    if (mode === 'group') kill(-pid);
    else {
      children(pid).forEach(kill); // the container's init: SIGKILL ends its PID namespace
      kill(pid);
    }
  }
  // Anything still mounted there is left for the next run's cleanup, which unmounts first.
  setTimeout(() => {
    if (dir && !read('/proc/self/mountinfo').includes(' ' + dir)) fs.rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  }, 1000);
};
process.stdin.on('data', (d) => { if (String(d).includes('disarm')) disarmed = true; });
process.stdin.on('end', () => (disarmed ? process.exit(0) : cleanUp()));
process.stdin.on('error', () => (disarmed ? process.exit(0) : cleanUp()));
`;

export interface Watchdog {
  /** The work finished properly: let the watcher exit without acting. */
  disarm(): void;
}

export type WatchTarget =
  /** A systemd-nspawn (by pid, checked by its --machine= argument) and its container. */
  | { kind: 'container'; nspawnPid: number; machine: string; workDir: string }
  /** A process group led by pid (a build step run with run()), checked by an argument. */
  | { kind: 'group'; pid: number; marker: string; dir?: string }
  /** A loop device to detach if it still backs image. */
  | { kind: 'loop'; device: string; image: string };

function watcherArgs(t: WatchTarget): string[] {
  switch (t.kind) {
    case 'container':
      return ['container', String(t.nspawnPid), `--machine=${t.machine}`, t.workDir];
    case 'group':
      return ['group', String(t.pid), t.marker, t.dir ?? ''];
    case 'loop':
      return ['loop', t.device, t.image, ''];
  }
}

export function startWatchdog(target: WatchTarget): Watchdog {
  const args = watcherArgs(target);
  const child: ChildProcess = spawn(process.execPath, ['-e', WATCHER, ...args], {
    env: CLEAN_ENV,
    // Own session: a kill of the test's process group must not take the watcher with it.
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  child.on('error', () => undefined);
  // Neither the watcher nor the pipe may keep the test process alive.
  child.unref();
  const pipe = child.stdin as Socket | null;
  pipe?.on('error', () => undefined);
  pipe?.unref();
  return {
    disarm(): void {
      pipe?.end('disarm\n');
    },
  };
}
