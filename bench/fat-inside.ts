/**
 * The FAT benchmark's operations inside the container (bench/fat.ts drives
 * them through bench/inside.ts): mounts through the installed helper with a
 * given policy file, so the policy picks the backend (fusegate-vfat,
 * fusefat or exfat-fuse), and the memory of that backend's one instance.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backendInstances, instanceCgroup } from '../lib/instance';

const now = (): number => Number(process.hrtime.bigint()) / 1e6;
const sleepSync = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** The backend's running instances (lib/instance.ts: fusegate.slice, or the template's slice). */
function instances(backend: string): string[] {
  return backendInstances(backend);
}

function kB(text: string, key: string): number | null {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) * 1024 : null;
}

function read(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** `mount [-o ro] LOOP MNT` with FUSEGATE_POLICY=policy; returns the mount's type once it answers. */
export function fatMount(a: { loop: string; mnt: string; policy: string; ro?: boolean }) {
  fs.mkdirSync(a.mnt, { recursive: true });
  const t0 = now();
  // -t fusegate: the helper probes the type itself, whatever mount.<type> links exist
  const r = spawnSync('mount', ['-t', 'fusegate', ...(a.ro ? ['-o', 'ro'] : []), a.loop, a.mnt], {
    encoding: 'utf8',
    env: { ...process.env, FUSEGATE_POLICY: a.policy },
  });
  if (r.status !== 0) throw new Error(`mount ${a.loop} ${a.mnt} (policy ${a.policy}) exited ${r.status}: ${r.stderr.trim()}`);
  const row = read('/proc/self/mountinfo')
    .split('\n')
    .find((l) => l.split(' ')[4] === a.mnt);
  return { ms: now() - t0, fsType: row ? row.split(' - ')[1]!.split(' ')[0] : null };
}

/** umount, then wait until the backend has no instance left (its server wrote everything and exited). */
export function fatUmount(a: { mnt: string; backend: string }) {
  const t0 = now();
  const r = spawnSync('umount', [a.mnt], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`umount ${a.mnt}: ${r.stderr.trim()}`);
  while (instances(a.backend).length > 0) {
    if (now() - t0 > 30_000) throw new Error(`${a.backend} instances left 30 s after umount: ${instances(a.backend).join(' ')}`);
    sleepSync(5);
  }
  return { ms: now() - t0 };
}

/** Memory of the backend's one instance: its cgroup's memory.current and the server's RSS/USS. */
export function fatMemory(a: { backend: string }) {
  const units = instances(a.backend);
  if (units.length !== 1) throw new Error(`expected one ${a.backend}@ instance, found ${units.join(' ') || 'none'}`);
  const dir = instanceCgroup(units[0]!) ?? '';
  const cg = read(path.join(dir, 'memory.current')).trim();
  const pids = read(path.join(dir, 'cgroup.procs')).split('\n').filter(Boolean).map(Number);
  const procs = pids.map((pid) => {
    const status = read(`/proc/${pid}/status`);
    const rollup = read(`/proc/${pid}/smaps_rollup`);
    const pc = kB(rollup, 'Private_Clean');
    const pd = kB(rollup, 'Private_Dirty');
    return { pid, comm: read(`/proc/${pid}/comm`).trim(), rssBytes: kB(status, 'VmRSS'), ussBytes: pc !== null && pd !== null ? pc + pd : null };
  });
  return { unit: units[0], memoryCurrentBytes: /^\d+$/.test(cg) ? Number(cg) : null, processes: procs };
}
