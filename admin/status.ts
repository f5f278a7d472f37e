/**
 * `fusegate status`: the active sandboxed mounts, each with the service
 * instance serving it, that server's pid and its memory.
 *
 * Mounts come from /proc/self/mountinfo and utab; the instance serving each
 * from lib/instance.ts (the x-fusegate.unit= the helper recorded in utab,
 * else the instance whose server holds the mount's source: on fd 4, or on
 * any fd for an in-process server such as fusegate-vfat); the server's pid
 * and memory from systemd over D-Bus (MainPID, MemoryCurrent), else from the
 * instance's cgroup and the server's VmRSS.
 */
import * as fs from 'node:fs';
import { BACKENDS } from '../lib/backends';
import { parseCommandLineOr } from '../lib/cli-args';
import { instanceProcesses, instancesServing, type Candidate } from '../lib/instance';
import { readUtab, type UtabEntry } from '../lib/utab';
import { sandboxedMounts, type SandboxedMount } from './mounts';
import { listServices, SystemdUnavailable, type ServiceInfo } from './systemd-dbus';
import { processIo, type Io } from '../lib/output';

export const STATUS_HELP = `NAME
    fusegate status - list active sandboxed mounts

SYNOPSIS
    fusegate status [--json]

DESCRIPTION
    Lists every mount served by a sandboxed FUSE server: its source, its
    mountpoint, the backend, the policy rule that allowed it, the systemd
    service instance running the server, the server's pid and the memory
    charged to the service (systemd's MemoryCurrent, else the server's RSS).

    Mounts are read from /proc/self/mountinfo and /run/mount/utab, where
    the helper records the unit serving each (x-fusegate.unit=); pids and
    memory from systemd over the D-Bus system bus. Without systemd or D-Bus
    the mounts are still listed, with '-' for what is not known.

OPTIONS
    --json        print a JSON object instead of the table
    -h, --help    show this text

EXIT STATUS
    0  listed (also when there are no mounts);  1  usage error`;

export interface StatusRow extends SandboxedMount {
  unit: string | null;
  pid: number | null;
  memoryBytes: number | null;
  /** where memoryBytes came from */
  memorySource: 'MemoryCurrent' | 'VmRSS' | null;
}

export interface StatusReport {
  mounts: StatusRow[];
  systemd: { available: boolean; error?: string };
}

export interface StatusSources {
  mountinfo?: string;
  utab?: string;
  /** D-Bus address; null: do not ask systemd */
  busAddress?: string | null;
  /** /proc, for the servers' fds and status */
  proc?: string;
}

/** VmRSS of a process in bytes, the fallback when systemd has no memory figure. */
function rssBytes(proc: string, pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`${proc}/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/**
 * Each mount with the instance serving it (lib/instance.ts: the helper's utab
 * record, else the server holding the source) and that instance's server and
 * memory. The candidates for the second are systemd's running instances when
 * systemd answered, else the cgroup tree's.
 */
export function pairMounts(mounts: SandboxedMount[], services: ServiceInfo[] | null, src: { utab?: readonly UtabEntry[] | string; proc?: string } = {}): StatusRow[] {
  const proc = src.proc ?? '/proc';
  const candidates = services === null
    ? undefined
    : (backend: string): Candidate[] => services.filter((s) => s.mainPid !== null && s.name.startsWith(`${backend}@`)).map((s) => ({ unit: s.name, pid: s.mainPid! }));
  const serving = instancesServing(
    mounts.map((m) => ({ id: m.mountId, mountpoint: m.mountpoint, source: m.source, backend: m.backend })),
    { utab: src.utab, proc, candidates },
  );
  return mounts.map((m, i) => {
    const unit = serving[i]?.unit ?? null;
    if (unit === null) return { ...m, unit: null, pid: null, memoryBytes: null, memorySource: null };
    const service = services?.find((s) => s.name === unit);
    const pid = service?.mainPid ?? instanceProcesses(unit)[0] ?? null;
    const cur = service?.memoryCurrent ?? null;
    const rss = cur === null && pid !== null ? rssBytes(proc, pid) : null;
    return {
      ...m,
      unit,
      pid,
      memoryBytes: cur !== null ? Number(cur) : rss,
      memorySource: cur !== null ? 'MemoryCurrent' : rss !== null ? 'VmRSS' : null,
    };
  });
}

export async function collectStatus(src: StatusSources = {}): Promise<StatusReport> {
  const utab = readUtab(src.utab);
  const mounts = sandboxedMounts({ mountinfo: src.mountinfo, utab });
  let services: ServiceInfo[] | null = null;
  let systemd: StatusReport['systemd'] = { available: true };
  if (src.busAddress === null) systemd = { available: false, error: 'not asked' };
  else {
    try {
      services = await listServices(BACKENDS.map((b) => `${b.name}@*.service`), src.busAddress === undefined ? {} : { address: src.busAddress });
    } catch (e) {
      if (!(e instanceof SystemdUnavailable)) throw e;
      systemd = { available: false, error: e.message };
    }
  }
  return { mounts: pairMounts(mounts, services, { utab, proc: src.proc }), systemd };
}

/** 1536 -> "1.5K", as systemctl status prints memory. */
export function humanBytes(n: number | null): string {
  if (n === null) return '-';
  const units = ['B', 'K', 'M', 'G', 'T'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v}B` : `${v < 10 ? v.toFixed(1) : Math.round(v)}${units[i]}`;
}

export function formatTable(rows: StatusRow[]): string {
  const header = ['SOURCE', 'MOUNTPOINT', 'BACKEND', 'RULE', 'UNIT', 'PID', 'MEMORY'];
  const cells = rows.map((r) => [r.source, r.mountpoint, r.backend + (r.readOnly ? ' (ro)' : ''), r.rule ?? '-', r.unit ?? '-', r.pid === null ? '-' : String(r.pid), humanBytes(r.memoryBytes)]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => (i === c.length - 1 ? x : x.padEnd(widths[i]!))).join('  ');
  return [line(header), ...cells.map(line)].join('\n') + '\n';
}

export async function main(args: string[], io: Io = processIo, src: StatusSources = {}): Promise<number> {
  const p = parseCommandLineOr(io, 'status', args, { json: { type: 'boolean' } });
  if (typeof p === 'number') return p;
  if (p === 'help') {
    io.out(STATUS_HELP + '\n');
    return 0;
  }
  const json = p.values.json === true;
  const report = await collectStatus(src);
  if (json) {
    io.out(JSON.stringify(report, null, 2) + '\n');
    return 0;
  }
  if (report.mounts.length === 0) io.out('no sandboxed mounts\n');
  else io.out(formatTable(report.mounts));
  // Without systemd, utab's records and the cgroup tree may still name units; say so only where they did not.
  if (!report.systemd.available && report.mounts.some((m) => m.unit === null || m.pid === null)) {
    io.err(`fusegate: status: ${report.systemd.error}; UNIT, PID and MEMORY are not shown where utab and the cgroup tree do not tell\n`);
  }
  return 0;
}
