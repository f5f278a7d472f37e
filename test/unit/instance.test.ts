/**
 * lib/instance.ts: which service instance serves a mount. A fake cgroup tree
 * (FUSEGATE_CGROUP_SYSTEM_SLICE) stands in for systemd's; the "servers" are
 * real processes holding the mounts' sources on fd 4, as a FUSE server
 * started by the adapter does, so the fd pairing is the real one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backendInstances,
  instanceCgroup,
  instanceForClient,
  instanceOfMount,
  instanceProcesses,
  instanceServing,
  instancesServing,
  systemSlice,
} from '../../lib/instance';
import { parseUtab } from '../../lib/utab';

let dir: string;
let slice: string;
let imgA: string;
let imgB: string;
let imgC: string;
const servers: ChildProcess[] = [];
const savedSlice = process.env.FUSEGATE_CGROUP_SYSTEM_SLICE;

/** A process holding `file` on fd 4, as a FUSE server holds its source. */
function fakeServer(file: string): number {
  const fd = fs.openSync(file, 'r');
  const child = spawn('sleep', ['300'], { stdio: ['ignore', 'ignore', 'ignore', 'ignore', fd] });
  fs.closeSync(fd);
  servers.push(child);
  return child.pid!;
}

function fakeInstance(sliceName: string, unit: string, pids: number[]): void {
  const d = path.join(slice, sliceName, unit);
  fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(path.join(d, 'cgroup.procs'), pids.map((p) => `${p}\n`).join(''));
}

const mount = (id: number, mountpoint: string, source: string, backend = 'fuse2fs') => ({ id, mountpoint, source, backend });
const NO_UTAB = parseUtab('');

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-instance-'));
  slice = path.join(dir, 'system.slice');
  [imgA, imgB, imgC] = ['a.img', 'b.img', 'c.img'].map((n) => path.join(dir, n)) as [string, string, string];
  for (const f of [imgA, imgB, imgC]) fs.writeFileSync(f, 'image');
  fakeInstance('system-fuse2fs.slice', 'fuse2fs@1-100-0.service', [fakeServer(imgA)]);
  fakeInstance('system-fuse2fs.slice', 'fuse2fs@2-200-0.service', [fakeServer(imgB), 1]);
  // still starting: a cgroup without a process
  fakeInstance('system-fuse2fs.slice', 'fuse2fs@3-300-0.service', []);
  // systemd escapes '-' in slice names
  fakeInstance('system-exfat\\x2dfuse.slice', 'exfat-fuse@1-400-0.service', [fakeServer(imgC)]);
  process.env.FUSEGATE_CGROUP_SYSTEM_SLICE = slice;
});

afterAll(() => {
  for (const c of servers) c.kill('SIGTERM');
  if (savedSlice === undefined) delete process.env.FUSEGATE_CGROUP_SYSTEM_SLICE;
  else process.env.FUSEGATE_CGROUP_SYSTEM_SLICE = savedSlice;
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('the cgroup tree', () => {
  it('lists a backend\'s instances and finds the one started for a client', () => {
    expect(systemSlice()).toBe(slice);
    expect(backendInstances('fuse2fs').sort()).toEqual(['fuse2fs@1-100-0.service', 'fuse2fs@2-200-0.service', 'fuse2fs@3-300-0.service']);
    expect(backendInstances('exfat-fuse')).toEqual(['exfat-fuse@1-400-0.service']);
    expect(backendInstances('fusefat')).toEqual([]);
    expect(instanceForClient('fuse2fs', 200, 0)).toBe('fuse2fs@2-200-0.service');
    expect(instanceForClient('fuse2fs', 200, 1000)).toBeNull();
  });

  it('reads an instance\'s processes and cgroup, and nothing for one that is gone', () => {
    expect(instanceProcesses('fuse2fs@2-200-0.service')).toEqual([servers[1]!.pid, 1]);
    expect(instanceProcesses('fuse2fs@3-300-0.service')).toEqual([]);
    expect(instanceCgroup('exfat-fuse@1-400-0.service')).toBe(path.join(slice, 'system-exfat\\x2dfuse.slice', 'exfat-fuse@1-400-0.service'));
    expect(instanceCgroup('fuse2fs@9-900-0.service')).toBeNull();
    expect(instanceProcesses('fuse2fs@9-900-0.service')).toEqual([]);
  });
});

describe('the instance serving a mount', () => {
  it('is the one the helper recorded in utab, before anything the servers hold', () => {
    // fuse2fs@1's server holds a.img, but the record names another instance: the record wins.
    const utab = parseUtab(`SRC=${imgA} TARGET=/mnt/a ROOT=/ OPTS=helper=fusegate,x-fusegate.unit=fuse2fs@7-700-0.service\n`);
    expect(instanceServing(mount(40, '/mnt/a', imgA), { utab })).toEqual({ unit: 'fuse2fs@7-700-0.service', from: 'utab' });
    // read from a file, matched by mount ID
    const file = path.join(dir, 'utab');
    fs.writeFileSync(file, 'ID=41 SRC=/dev/x TARGET=/mnt/b ROOT=/ OPTS=x-fusegate.unit=fuse2fs@8-800-0.service\n');
    expect(instanceServing(mount(41, '/mnt/b', imgB), { utab: file })).toEqual({ unit: 'fuse2fs@8-800-0.service', from: 'utab' });
  });

  it('without a record, is the instance whose server holds the source on fd 4 (by inode, any path)', () => {
    const link = path.join(dir, 'b-link.img');
    fs.linkSync(imgB, link);
    const found = instancesServing([mount(40, '/mnt/a', imgA), mount(41, '/mnt/b', link), mount(42, '/mnt/c', imgC, 'exfat-fuse')], { utab: NO_UTAB });
    expect(found).toEqual([
      { unit: 'fuse2fs@1-100-0.service', from: 'server-source' },
      { unit: 'fuse2fs@2-200-0.service', from: 'server-source' },
      { unit: 'exfat-fuse@1-400-0.service', from: 'server-source' },
    ]);
    // c.img is served by an exfat-fuse instance, not by any fuse2fs one
    expect(instanceServing(mount(43, '/mnt/c', imgC), { utab: NO_UTAB })).toBeNull();
  });

  it('pairs an instance with one mount only, and a recorded instance with no other', () => {
    const utab = parseUtab(`SRC=/dev/x TARGET=/mnt/x ROOT=/ OPTS=x-fusegate.unit=fuse2fs@1-100-0.service\n`);
    const found = instancesServing([mount(50, '/mnt/x', '/dev/x'), mount(51, '/mnt/a', imgA), mount(52, '/mnt/a2', imgA)], { utab });
    expect(found).toEqual([{ unit: 'fuse2fs@1-100-0.service', from: 'utab' }, null, null]);
  });

  it('takes the candidates a caller already has (status: systemd\'s instances) instead of the cgroup tree', () => {
    const candidates = (backend: string) => (backend === 'fuse2fs' ? [{ unit: 'fuse2fs@5-500-0.service', pid: servers[0]!.pid! }] : []);
    expect(instanceServing(mount(40, '/mnt/a', imgA), { utab: NO_UTAB, candidates })).toEqual({ unit: 'fuse2fs@5-500-0.service', from: 'server-source' });
    expect(instanceServing(mount(41, '/mnt/b', imgB), { utab: NO_UTAB, candidates })).toBeNull();
  });

  it('of a mountinfo entry: only for fusegate\'s sandboxed types', () => {
    const entry = { id: 40, device: '0:60', mountpoint: '/mnt/a', fsType: 'fuse.fuse2fs', source: imgA, options: 'rw', superOptions: 'rw' };
    expect(instanceOfMount(entry, { utab: NO_UTAB })?.unit).toBe('fuse2fs@1-100-0.service');
    expect(instanceOfMount({ ...entry, fsType: 'fuseblk.fuse2fs' }, { utab: NO_UTAB })?.unit).toBe('fuse2fs@1-100-0.service');
    expect(instanceOfMount({ ...entry, fsType: 'ext4' }, { utab: NO_UTAB })).toBeNull();
    expect(instanceOfMount({ ...entry, fsType: 'fuse.sshfs' }, { utab: NO_UTAB })).toBeNull();
  });
});
