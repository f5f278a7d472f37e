/**
 * `fusegate status` without systemd: synthetic mountinfo and utab tables,
 * the mount filter, the utab enrichment, and the output when D-Bus is not
 * there (this host has no systemd as PID 1). The D-Bus path is tested in
 * test/integration/status-dbus.test.ts against a real dbus-daemon.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMountinfo, parseUtab, sandboxedMounts } from '../../admin/mounts';
import { humanBytes, main, type StatusReport, type StatusSources } from '../../admin/status';

let dir: string;
let src: StatusSources;

const MOUNTINFO = [
  '22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw',
  '95 22 0:52 / /media/root/CAMERA rw,nosuid,nodev,relatime shared:50 - fuse.fusefat /dev/loop3 rw,user_id=0,group_id=0,allow_other',
  '96 22 0:53 / /media/root/My\\040Disk ro,nosuid,nodev,relatime shared:51 - fuseblk.ntfs-3g /dev/sdb1 ro,user_id=0,group_id=0',
  '97 22 0:54 / /mnt/img rw,nosuid,nodev - fuse.squashfuse /srv/images/a\\040b.sqfs rw,user_id=0,group_id=0',
  '98 22 0:55 / /home/u/remote rw,nosuid,nodev - fuse.sshfs u@host:/ rw,user_id=1000,group_id=1000',
  '99 22 0:56 / /mnt/other rw - fuse.notabackend /dev/loop9 rw',
  '100 22 7:4 / /mnt/kernel rw,nosuid,nodev - ext4 /dev/loop4 rw',
].join('\n') + '\n';

const UTAB = [
  'ID=95 SRC=/dev/loop3 TARGET=/media/root/CAMERA ROOT=/ OPTS=uhelper=udisks2,x-fusegate.backend=fusefat,x-fusegate.rule=removable-media',
  // no ID (the helper records with mount -f): matched by source and target
  'SRC=/srv/images/a\\040b.sqfs TARGET=/mnt/img ROOT=/ OPTS=x-fusegate.backend=squashfuse,x-fusegate.rule=images-and-loop-devices',
  'ID=100 SRC=/dev/loop4 TARGET=/mnt/kernel ROOT=/ OPTS=x-fusegate.rule=fstab-fixed-disks',
].join('\n') + '\n';

function run(args: string[], sources = src): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  return main(args, { out: (s) => (out += s), err: (s) => (err += s) }, sources).then((code) => ({ code, out, err }));
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-status-'));
  fs.writeFileSync(path.join(dir, 'mountinfo'), MOUNTINFO);
  fs.writeFileSync(path.join(dir, 'utab'), UTAB);
  src = { mountinfo: path.join(dir, 'mountinfo'), utab: path.join(dir, 'utab'), busAddress: `unix:path=${dir}/no-bus` };
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('mount tables', () => {
  it('parses mountinfo with optional fields and octal escapes', () => {
    const e = parseMountinfo(MOUNTINFO);
    expect(e).toHaveLength(7);
    expect(e[2]).toMatchObject({ id: 96, device: '0:53', mountpoint: '/media/root/My Disk', fsType: 'fuseblk.ntfs-3g', source: '/dev/sdb1' });
    expect(e[3]!.source).toBe('/srv/images/a b.sqfs');
  });

  it('parses utab key=value lines', () => {
    const u = parseUtab(UTAB);
    expect(u[0]).toMatchObject({ id: 95, source: '/dev/loop3', target: '/media/root/CAMERA' });
    expect(u[0]!.options).toContain('x-fusegate.rule=removable-media');
    expect(u[1]).toMatchObject({ id: null, source: '/srv/images/a b.sqfs' });
  });

  it('keeps only fuse.<backend> and fuseblk.<backend> mounts of known backends, with their utab facts', () => {
    const m = sandboxedMounts({ mountinfo: src.mountinfo, utab: src.utab });
    expect(m.map((x) => x.mountpoint)).toEqual(['/media/root/CAMERA', '/media/root/My Disk', '/mnt/img']);
    expect(m[0]).toMatchObject({ backend: 'fusefat', rule: 'removable-media', uhelper: 'udisks2', readOnly: false, mountId: 95 });
    expect(m[1]).toMatchObject({ backend: 'ntfs-3g', fsType: 'fuseblk.ntfs-3g', rule: null, uhelper: null, readOnly: true });
    expect(m[2]).toMatchObject({ backend: 'squashfuse', rule: 'images-and-loop-devices' });
  });

  it('tolerates missing files', () => {
    expect(sandboxedMounts({ mountinfo: path.join(dir, 'none'), utab: path.join(dir, 'none') })).toEqual([]);
  });
});

describe('fusegate status without systemd', () => {
  it('lists the mounts with - for unit, pid and memory, and says why on stderr', async () => {
    const r = await run([]);
    expect(r.code).toBe(0);
    const lines = r.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^SOURCE\s+MOUNTPOINT\s+BACKEND\s+RULE\s+UNIT\s+PID\s+MEMORY$/);
    expect(lines[1]).toMatch(/^\/dev\/loop3\s+\/media\/root\/CAMERA\s+fusefat\s+removable-media\s+-\s+-\s+-$/);
    expect(lines[2]).toMatch(/^\/dev\/sdb1\s+\/media\/root\/My Disk\s+ntfs-3g \(ro\)\s+-\s+-\s+-\s+-$/);
    expect(lines).toHaveLength(4);
    expect(r.err).toMatch(/no D-Bus system bus \(.*no-bus does not exist\); UNIT, PID and MEMORY are not shown/);
  });

  it('--json gives the same facts and the reason systemd was not asked', async () => {
    const r = await run(['--json']);
    const report = JSON.parse(r.out) as StatusReport;
    expect(report.systemd).toEqual({ available: false, error: expect.stringMatching(/no D-Bus system bus/) });
    expect(report.mounts).toHaveLength(3);
    expect(report.mounts[0]).toMatchObject({ source: '/dev/loop3', backend: 'fusefat', unit: null, pid: null, memoryBytes: null });
    expect(r.err).toBe('');
  });

  it('says so when nothing is mounted', async () => {
    const r = await run([], { ...src, mountinfo: path.join(dir, 'none') });
    expect(r).toEqual({ code: 0, out: 'no sandboxed mounts\n', err: '' });
  });

  it('rejects unknown arguments', async () => {
    expect((await run(['--tree'])).code).toBe(1);
    expect((await run(['--help'])).out).toMatch(/^SYNOPSIS$/m);
  });

  it('names the unit the helper recorded in utab, with its server from the cgroup tree', async () => {
    const utab = path.join(dir, 'utab-with-unit');
    fs.writeFileSync(utab, UTAB.replace('OPTS=uhelper=udisks2,', 'OPTS=uhelper=udisks2,x-fusegate.unit=fusefat@3-1234-0.service,'));
    const slice = path.join(dir, 'system.slice');
    const unitDir = path.join(slice, 'system-fusefat.slice', 'fusefat@3-1234-0.service');
    fs.mkdirSync(unitDir, { recursive: true });
    // this test process stands in for the FUSE server
    fs.writeFileSync(path.join(unitDir, 'cgroup.procs'), `${process.pid}\n`);
    const saved = process.env.FUSEGATE_CGROUP_SYSTEM_SLICE;
    process.env.FUSEGATE_CGROUP_SYSTEM_SLICE = slice;
    try {
      const r = await run(['--json'], { ...src, utab });
      const report = JSON.parse(r.out) as StatusReport;
      expect(report.systemd.available).toBe(false);
      expect(report.mounts[0]).toMatchObject({ mountpoint: '/media/root/CAMERA', unit: 'fusefat@3-1234-0.service', pid: process.pid, memorySource: 'VmRSS' });
      expect(report.mounts[0]!.memoryBytes).toBeGreaterThan(0);
      // no record and no instance: still unknown
      expect(report.mounts[1]).toMatchObject({ mountpoint: '/media/root/My Disk', unit: null, pid: null });
    } finally {
      if (saved === undefined) delete process.env.FUSEGATE_CGROUP_SYSTEM_SLICE;
      else process.env.FUSEGATE_CGROUP_SYSTEM_SLICE = saved;
    }
  });

  it('prints memory as systemctl does', () => {
    expect(humanBytes(null)).toBe('-');
    expect(humanBytes(512)).toBe('512B');
    expect(humanBytes(1536)).toBe('1.5K');
    expect(humanBytes(23 * 1024 * 1024)).toBe('23M');
  });
});
