/**
 * Socket activation for tests without systemd: `systemd-socket-activate
 * --seqpacket --accept` listens on a path and starts one process per
 * connection with the connection as fd 3, as a systemd Accept=yes socket
 * unit would. Stopped by its pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';

export interface Activator {
  pid: number;
  socket: string;
  stop(): Promise<void>;
}

export async function startActivator(socket: string, command: string[], env: Record<string, string> = {}): Promise<Activator> {
  const args = ['--seqpacket', '--accept', '-l', socket];
  for (const [k, v] of Object.entries(env)) args.push('-E', `${k}=${v}`);
  // No pipes to us: a pipe would stay open in the test process for as long as
  // any server the activator started lives, and fd-leak checks would see it.
  const child: ChildProcess = spawn('systemd-socket-activate', [...args, ...command], { stdio: 'ignore' });
  const t0 = Date.now();
  while (!fs.existsSync(socket)) {
    if (child.exitCode !== null || Date.now() - t0 > 5000) throw new Error(`systemd-socket-activate did not start on ${socket}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    pid: child.pid!,
    socket,
    async stop() {
      // The servers it started outlive it (they are its children only until
      // it exits), so find them first and stop them by pid too.
      const servers = childrenOf(child.pid!);
      if (child.exitCode === null) process.kill(child.pid!, 'SIGTERM');
      await exited;
      for (const pid of servers) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      fs.rmSync(socket, { force: true });
    },
  };
}

/** Direct children of `pid`, from /proc. */
export function childrenOf(pid: number): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);
}
