/**
 * `fusegate status`: the active sandboxed mounts, each with the service
 * instance serving it, that server's pid and its memory.
 *
 * Mounts come from /proc/self/mountinfo (and utab for the rule); services
 * from systemd over D-Bus. Pairing the two: a service's MainPID is the FUSE
 * server (the adapter execs into it), and the server holds the mount's
 * source on fd 4 (sandbox/launch.ts; an in-process server such as
 * fusegate-vfat on any of its fds). So a mount belongs to the service
 * whose /proc/<MainPID>/fd/4 is the same file as the mount's source: the
 * same block device (st_rdev) or the same inode (st_dev, st_ino), with the
 * path as a last resort. Instance numbers say nothing (systemd numbers
 * connections, not mounts), and a /dev/fuse fd does not reveal its FUSE
 * connection, so the source is the one reliable link.
 */
import * as fs from 'node:fs';
import { BACKENDS, findBackend } from '../lib/backends';
import { sandboxedMounts, type SandboxedMount } from './mounts';
import { listServices, SystemdUnavailable, type ServiceInfo } from './systemd-dbus';
import { processIo, type Io } from './cli-io';

/** The server's copy of the source (launch.ts SOURCE_FD). */
const SERVER_SOURCE_FD = 4;

export const STATUS_HELP = `NAME
    fusegate status - list active sandboxed mounts

SYNOPSIS
    fusegate status [--json]

DESCRIPTION
    Lists every mount served by a sandboxed FUSE server: its source, its
    mountpoint, the backend, the policy rule that allowed it, the systemd
    service instance running the server, the server's pid and the memory
    charged to the service (systemd's MemoryCurrent, else the server's RSS).

    Mounts are read from /proc/self/mountinfo and /run/mount/utab; services
    from systemd over the D-Bus system bus. Without systemd or D-Bus the
    mounts are still listed, with '-' for UNIT, PID and MEMORY.

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

/** A file's identity, comparable across paths: the device for block devices, the inode otherwise. */
function identity(st: fs.Stats): string {
  return st.isBlockDevice() ? `blk:${st.rdev}` : `ino:${st.dev}:${st.ino}`;
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}

interface ServerSource {
  service: ServiceInfo;
  /** identities and paths of the fds that may be the source */
  ids: string[];
  paths: string[];
}

function serverSource(proc: string, service: ServiceInfo): ServerSource {
  // An exec'd server holds the source on fd 4; an in-process one (fusegate-vfat)
  // on whichever fd the adapter received it, so all of its fds are candidates.
  const inProcess = findBackend(service.name.slice(0, service.name.indexOf('@')))?.delivery === 'in-process';
  let fds = [String(SERVER_SOURCE_FD)];
  if (inProcess) {
    try {
      fds = fs.readdirSync(`${proc}/${service.mainPid}/fd`);
    } catch {
      /* gone, or not ours to read */
    }
  }
  const out: ServerSource = { service, ids: [], paths: [] };
  for (const n of fds) {
    const fd = `${proc}/${service.mainPid}/fd/${n}`;
    const st = statOrNull(fd);
    if (st) out.ids.push(identity(st));
    try {
      out.paths.push(fs.readlinkSync(fd));
    } catch {
      /* gone, or not ours to read */
    }
  }
  return out;
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

/** Pairs mounts with services by source identity (see the file comment). */
export function pairMounts(mounts: SandboxedMount[], services: ServiceInfo[], proc = '/proc'): StatusRow[] {
  const candidates = services.filter((s) => s.mainPid !== null).map((s) => serverSource(proc, s));
  const used = new Set<ServerSource>();
  return mounts.map((m) => {
    const st = statOrNull(m.source);
    const id = st ? identity(st) : null;
    const ofBackend = candidates.filter((c) => !used.has(c) && c.service.name.startsWith(`${m.backend}@`));
    const match = ofBackend.find((c) => id !== null && c.ids.includes(id)) ?? ofBackend.find((c) => c.paths.includes(m.source));
    if (match === undefined) return { ...m, unit: null, pid: null, memoryBytes: null, memorySource: null };
    used.add(match);
    const pid = match.service.mainPid!;
    const cur = match.service.memoryCurrent;
    const rss = cur === null ? rssBytes(proc, pid) : null;
    return {
      ...m,
      unit: match.service.name,
      pid,
      memoryBytes: cur !== null ? Number(cur) : rss,
      memorySource: cur !== null ? 'MemoryCurrent' : rss !== null ? 'VmRSS' : null,
    };
  });
}

export async function collectStatus(src: StatusSources = {}): Promise<StatusReport> {
  const mounts = sandboxedMounts({ mountinfo: src.mountinfo, utab: src.utab });
  let services: ServiceInfo[] = [];
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
  return { mounts: pairMounts(mounts, services, src.proc), systemd };
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
  let json = false;
  for (const a of args) {
    if (a === '-h' || a === '--help') {
      io.out(STATUS_HELP + '\n');
      return 0;
    }
    if (a === '--json') json = true;
    else {
      io.err(`fusegate: status: unknown argument '${a}'\nfusegate: see 'fusegate status --help'\n`);
      return 1;
    }
  }
  const report = await collectStatus(src);
  if (json) {
    io.out(JSON.stringify(report, null, 2) + '\n');
    return 0;
  }
  if (report.mounts.length === 0) io.out('no sandboxed mounts\n');
  else io.out(formatTable(report.mounts));
  if (!report.systemd.available && report.mounts.length > 0) {
    io.err(`fusegate: status: ${report.systemd.error}; UNIT, PID and MEMORY are not shown\n`);
  }
  return 0;
}
