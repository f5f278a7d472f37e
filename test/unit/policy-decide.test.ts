import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decide, resolveFallback } from '../../policy/decide';
import { failClosedPolicy, loadPolicy, parsePolicy } from '../../policy/load';
import { syntheticFacts, type SyntheticFacts } from '../../policy/synthetic';
import type { Policy } from '../../policy/types';

const f = (s: SyntheticFacts = {}) => syntheticFacts(s);
const DEFAULT_POLICY = path.resolve(__dirname, '../../policy/default-policy.yaml');

function one(rule: string, defaults = ''): ReturnType<typeof parsePolicy> {
  return parsePolicy(`version: 1\n${defaults}rules:\n  - name: r\n${rule.replace(/^/gm, '    ')}\n`);
}

describe('actions', () => {
  it('kernel: the kernel driver with forced options', () => {
    const d = decide(one('action: kernel\nforce_options: [nodev]'), f({ bus: 'ata', options: ['rw'] }));
    expect(d).toMatchObject({ action: 'kernel', rule: 'r', ruleLine: 3, backends: [], finalOptions: ['rw', 'nodev'], readOnly: false });
  });

  it('fuse: backend preference from the rule mapping for the probed type', () => {
    const d = decide(one('action: fuse\nbackends: { ext4: [fuse2fs, fuse4fs], vfat: [fusefat] }'), f({ type: 'ext4' }));
    expect(d.action).toBe('fuse');
    expect(d.backends).toEqual(['fuse2fs', 'fuse4fs']);
  });

  it('fuse: a plain backend list is filtered to backends serving the type', () => {
    const d = decide(one('action: fuse\nbackends: [fusefat, fuse2fs, exfat-fuse]'), f({ type: 'ext4' }));
    expect(d.backends).toEqual(['fuse2fs']);
  });

  it('fuse: defaults.backends, then the backends table order', () => {
    const withDefaults = one('action: fuse', 'defaults:\n  backends:\n    ext4: [fuse2fs]\n');
    expect(decide(withDefaults, f({ type: 'ext4' })).backends).toEqual(['fuse2fs']);
    expect(decide(one('action: fuse'), f({ type: 'ext4' })).backends).toEqual(['fuse4fs', 'fuse2fs']);
    expect(decide(one('action: fuse'), f({ type: 'squashfs' })).backends).toEqual(['squashfuse']);
  });

  it('deny: the rule reason, no options', () => {
    const d = decide(one('action: deny\nreason: not here'), f({ options: ['rw'] }));
    expect(d).toMatchObject({ action: 'deny', reason: 'not here', finalOptions: [], backends: [] });
  });

  it('no rule matches: the defaults decide, rule is "default"', () => {
    const p = parsePolicy('version: 1\ndefaults:\n  action: deny\n  reason: nothing fits\nrules:\n  - name: x\n    match: { bus: nvme }\n    action: kernel\n');
    const d = decide(p, f({ bus: 'usb' }));
    expect(d).toMatchObject({ action: 'deny', rule: 'default', ruleLine: null, reason: 'nothing fits' });
  });

  it('defaults.action fuse applies the defaults settings', () => {
    const p = parsePolicy('version: 1\ndefaults:\n  action: fuse\n  force_options: [noexec]\nrules: []\n');
    const d = decide(p, f({ type: 'exfat' }));
    expect(d).toMatchObject({ action: 'fuse', rule: 'default', backends: ['exfat-fuse'], finalOptions: ['noexec', 'nosuid', 'nodev'] });
  });

  it.each([
    ['missing', { kind: 'missing' as const }, /does not exist/],
    ['other', { kind: 'other' as const }, /neither a block device nor a regular file/],
    ['unprobed', { type: null }, /no filesystem was found on .*: the medium may be damaged or blank/],
  ])('a %s source is denied whatever the rule says', (_n, facts, reason) => {
    const d = decide(one('action: kernel'), f(facts));
    expect(d.action).toBe('deny');
    expect(d.reason).toMatch(reason);
    expect(d.rule).toBe('r');
  });
});

describe('options', () => {
  it('forced options replace contradicting requested ones and say so', () => {
    const d = decide(one('action: kernel\nforce_options: [nosuid, nodev, "uid=1000"]'), f({ bus: 'ata', options: ['rw', 'suid', 'dev', 'uid=0', 'noatime'] }));
    expect(d.finalOptions).toEqual(['rw', 'noatime', 'nosuid', 'nodev', 'uid=1000']);
    expect(d.overriddenOptions).toEqual(['suid', 'dev', 'uid=0']);
    expect(d.forcedOptions).toEqual(['nosuid', 'nodev', 'uid=1000']);
  });

  it('a refused option denies the request by default', () => {
    const d = decide(one('action: fuse\nrefuse_options: [suid, "uid=0"]'), f({ options: ['rw', 'suid'] }));
    expect(d.action).toBe('deny');
    expect(d.reason).toBe("rule 'r' refuses the option suid; mount without it");
    expect(d.refusedOptions).toEqual({ patterns: ['suid', 'uid=0'], options: ['suid'], handling: 'deny' });
    expect(d.finalOptions).toEqual([]);
  });

  it('refuse patterns by name catch name=value options', () => {
    const d = decide(one('action: fuse\nrefuse_options: [uid]'), f({ options: ['uid=0'] }));
    expect(d.action).toBe('deny');
    expect(d.refusedOptions.options).toEqual(['uid=0']);
  });

  it('on_refused: strip removes them and mounts the rest', () => {
    const d = decide(one('action: fuse\nrefuse_options: [exec, "dev*"]\non_refused: strip\nforce_options: [nosuid]'), f({ type: 'exfat', options: ['rw', 'exec', 'dev'] }));
    expect(d.action).toBe('fuse');
    expect(d.refusedOptions).toEqual({ patterns: ['exec', 'dev*'], options: ['exec', 'dev'], handling: 'strip' });
    expect(d.finalOptions).toEqual(['rw', 'nosuid', 'nodev']);
  });

  it('requested options nothing refuses are left alone', () => {
    const d = decide(one('action: fuse\nrefuse_options: [suid]'), f({ type: 'exfat', options: ['rw', 'noatime'] }));
    expect(d.refusedOptions).toEqual({ patterns: ['suid'], options: [], handling: 'none' });
    expect(d.finalOptions).toEqual(['rw', 'noatime', 'nosuid', 'nodev']);
  });

  it('a rule force_options replaces (does not extend) the defaults', () => {
    const p = one('action: kernel\nforce_options: [noexec]', 'defaults:\n  force_options: [nosuid, nodev]\n');
    expect(decide(p, f({ bus: 'ata', type: 'ext4' })).finalOptions).toEqual(['noexec']);
    const p2 = one('action: fuse', 'defaults:\n  force_options: [nosuid, nodev]\n');
    expect(decide(p2, f({ type: 'exfat' })).finalOptions).toEqual(['nosuid', 'nodev']);
  });
});

describe('nosuid,nodev whatever the policy says (issue 12 finding 1)', () => {
  it('a fuse rule whose force_options replace the defaults still gets nosuid,nodev', () => {
    const p = one('action: fuse\nforce_options: [noexec]', 'defaults:\n  force_options: [nosuid, nodev]\n');
    expect(decide(p, f({ type: 'exfat' })).finalOptions).toEqual(['noexec', 'nosuid', 'nodev']);
    expect(decide(one('action: fuse\nforce_options: []'), f({ type: 'exfat' })).mountOptions.msFlags).toBe(2 | 4);
  });

  it.each([['suid'], ['dev']])('a request for %s on a sandboxed mount is refused with a message', (opt) => {
    const d = decide(one('action: fuse'), f({ type: 'exfat', options: ['rw', opt] }));
    expect(d.action).toBe('deny');
    expect(d.reason).toBe(`${opt} is never allowed on a sandboxed mount; fusegate always mounts it nosuid,nodev`);
  });

  it('a rule forcing suid on a sandboxed mount is refused at mount time too (not only by policy check)', () => {
    const p: Policy = { ...one('action: fuse'), rules: [{ ...one('action: fuse').rules[0]!, forceOptions: ['suid'] }] };
    expect(decide(p, f({ type: 'exfat' }))).toMatchObject({ action: 'deny', reason: expect.stringMatching(/^suid is never allowed/) });
  });

  it.each([
    ['removable media', { bus: 'ata' as const, removable: true }],
    ['a USB disk', { bus: 'usb' as const }],
    ['a loop device', { bus: 'ata' as const, loop: true }],
    ['an image', { kind: 'image' as const, bus: 'virtual' as const }],
  ])('the kernel path mounts %s nosuid,nodev and refuses suid', (_n, facts) => {
    const kernel = one('action: kernel\nforce_options: []');
    expect(decide(kernel, f({ ...facts, type: 'ext4', options: ['rw'] })).finalOptions).toEqual(['rw', 'nosuid', 'nodev']);
    expect(decide(kernel, f({ ...facts, type: 'ext4', options: ['suid'] })).action).toBe('deny');
  });

  it('a fixed internal disk on the kernel path keeps what the rule and request say', () => {
    const d = decide(one('action: kernel\nforce_options: []'), f({ bus: 'nvme', type: 'ext4', options: ['rw', 'suid'] }));
    expect(d).toMatchObject({ action: 'kernel', finalOptions: ['rw', 'suid'] });
  });
});

describe('read-only', () => {
  it('read_only: true forces ro and replaces rw', () => {
    const d = decide(one('action: kernel\nread_only: true'), f({ bus: 'ata', options: ['rw'] }));
    expect(d).toMatchObject({ readOnly: true, readOnlyWhy: "rule 'r' forces read-only", finalOptions: ['ro'], overriddenOptions: ['rw'] });
  });

  it('a caller asking for ro gets a read-only decision', () => {
    const d = decide(one('action: kernel'), f({ bus: 'ata', options: ['ro'] }));
    expect(d).toMatchObject({ readOnly: true, readOnlyWhy: 'requested by the caller (-o ro)', finalOptions: ['ro'] });
  });

  it('an unsafe-writing backend mounts read-only, per backend', () => {
    const d = decide(one('action: fuse\nbackends: [fuse4fs, fuse2fs]'), f({ type: 'ext4', options: ['rw'] }));
    expect(d.backendPlans.map((p) => [p.backend, p.readOnly, p.finalOptions])).toEqual([
      ['fuse4fs', false, ['rw', 'nosuid', 'nodev']],
      ['fuse2fs', true, ['nosuid', 'nodev', 'ro']],
    ]);
    expect(d.backendPlans[1]!.readOnlyWhy).toMatch(/does not write the ext3\/ext4 journal.*allow_unsafe_write: true/);
    expect(d.readOnly).toBe(false); // fuse4fs preferred
  });

  it('allow_unsafe_write: true lets fuse2fs write ext4', () => {
    const d = decide(one('action: fuse\nbackends: [fuse2fs]\nallow_unsafe_write: true'), f({ type: 'ext4', options: ['rw'] }));
    expect(d).toMatchObject({ readOnly: false, finalOptions: ['rw', 'nosuid', 'nodev'] });
  });

  it('allow_unsafe_write in defaults applies to rules that do not set it', () => {
    const d = decide(one('action: fuse\nbackends: [fuse2fs]', 'defaults:\n  allow_unsafe_write: true\n'), f({ type: 'ext4' }));
    expect(d.readOnly).toBe(false);
  });

  it('a backend that cannot write at all is read-only even with the opt-in', () => {
    const d = decide(one('action: fuse\nallow_unsafe_write: true'), f({ type: 'squashfs' }));
    expect(d).toMatchObject({ readOnly: true, readOnlyWhy: 'squashfs is a read-only filesystem' });
  });

  it('ext2 through fuse2fs is writable (safe in the backends table)', () => {
    expect(decide(one('action: fuse\nbackends: [fuse2fs]'), f({ type: 'ext2' })).readOnly).toBe(false);
  });
});

describe('fallback', () => {
  it('no backend serves the type: the fallback decides at once, explicitly', () => {
    const deny = decide(one('action: fuse'), f({ type: 'btrfs' }));
    expect(deny.action).toBe('deny');
    expect(deny.fallbackApplied).toEqual({ from: 'fuse', why: 'no sandboxed backend serves btrfs' });
    expect(deny.reason).toBe("no sandboxed backend serves btrfs; rule 'r' falls back to deny");

    const kernel = decide(one('action: fuse\nfallback: kernel\nforce_options: [nosuid]'), f({ type: 'btrfs', options: ['rw'] }));
    // the kernel fallback of a USB stick: nosuid,nodev whatever the rule forces
    expect(kernel).toMatchObject({ action: 'kernel', fallbackApplied: { from: 'fuse' }, finalOptions: ['rw', 'nosuid', 'nodev'] });
    expect(kernel.reason).toMatch(/falls back to the kernel driver/);
  });

  const avail = { backends: ['fuse2fs', 'fusefat'] };

  it('resolveFallback picks the first installed backend and its read-only plan', () => {
    const d = resolveFallback(decide(one('action: fuse'), f({ type: 'ext4', options: ['rw'] })), avail);
    expect(d).toMatchObject({ action: 'fuse', backend: 'fuse2fs', readOnly: true, finalOptions: ['nosuid', 'nodev', 'ro'], fallbackApplied: null });
    expect(d.notes).toContain('preferred backend fuse4fs not installed; using fuse2fs');
  });

  it('resolveFallback applies fallback deny when no backend is installed', () => {
    const d = resolveFallback(decide(one('action: fuse'), f({ type: 'exfat' })), avail);
    expect(d.action).toBe('deny');
    expect(d.fallbackApplied).toEqual({ from: 'fuse', why: 'no backend for exfat is installed (tried exfat-fuse)' });
  });

  it('resolveFallback applies fallback kernel, with the rule options', () => {
    const d = resolveFallback(decide(one('action: fuse\nfallback: kernel'), f({ bus: 'ata', type: 'exfat', options: ['rw'] })), { backends: [] });
    expect(d).toMatchObject({ action: 'kernel', backend: null, finalOptions: ['rw'] });
    expect(d.reason).toMatch(/^no backend for exfat is installed.*falls back to the kernel driver$/);
  });

  it('no FUSE at all triggers the fallback too', () => {
    const d = resolveFallback(decide(one('action: fuse\nfallback: kernel'), f({ type: 'vfat' })), { fuse: false, backends: ['fusefat'] });
    expect(d.action).toBe('kernel');
    expect(d.fallbackApplied?.why).toMatch(/FUSE is not available/);
  });

  it('a kernel decision or fallback without a kernel driver is denied', () => {
    const k = resolveFallback(decide(one('action: kernel'), f({ type: 'vfat' })), { backends: [], kernel: false });
    expect(k.action).toBe('deny');
    expect(k.reason).toMatch(/the kernel has no vfat driver/);
    const fb = resolveFallback(decide(one('action: fuse\nfallback: kernel'), f({ type: 'vfat' })), { backends: [], kernel: false });
    expect(fb.action).toBe('deny');
    expect(fb.fallbackApplied).not.toBeNull();
  });

  it('resolveFallback does not change the decision it was given', () => {
    const d = decide(one('action: fuse'), f({ type: 'exfat' }));
    const before = JSON.stringify(d);
    resolveFallback(d, { backends: [] });
    expect(JSON.stringify(d)).toBe(before);
  });
});

describe('the shipped default policy', () => {
  const policy = loadPolicy(DEFAULT_POLICY, { cacheDir: null });
  const usb = { bus: 'usb' as const, removable: true };

  it('intercepts FAT, exFAT, NTFS and ext but never FUSE types', () => {
    expect(policy.intercept).toEqual(expect.arrayContaining(['vfat', 'exfat', 'ntfs', 'ext4']));
    expect(policy.intercept.some((t) => t.startsWith('fuse'))).toBe(false);
  });

  it('intercepts disc images and optical media: iso9660, udf and squashfs', () => {
    expect(policy.intercept).toEqual(expect.arrayContaining(['iso9660', 'udf', 'squashfs']));
  });

  it('refuses UDF from images and discs saying there is no sandboxed driver', () => {
    const d = decide(policy, f({ loop: true, bus: 'virtual', type: 'udf' }));
    expect(d.reason).toMatch(/no sandboxed driver for this filesystem/);
  });

  it('an ISO through fuseiso is read-only, whatever the caller asked', () => {
    const d = resolveFallback(decide(policy, f({ kind: 'image', bus: 'virtual', type: 'iso9660', options: ['rw'] })), { backends: ['fuseiso'] });
    expect(d).toMatchObject({ action: 'fuse', backend: 'fuseiso', readOnly: true, readOnlyWhy: 'ISO 9660 is a read-only filesystem' });
    expect(d.finalOptions).toEqual(['nosuid', 'nodev', 'ro']);
  });

  it.each<[string, SyntheticFacts, string, string, string[]?]>([
    ['fstab fixed ext4 disk', { bus: 'nvme', fstab: true, type: 'ext4', options: ['rw', 'suid'] }, 'kernel', 'fstab-fixed-disks', []],
    ['fstab fixed disk named by LABEL=', { bus: 'ata', fstab: true, fstabMatch: 'label', type: 'ext4' }, 'kernel', 'fstab-fixed-disks', []],
    ['fstab fixed virtual disk (zram) named by UUID=', { bus: 'virtual', fixedDisk: true, fstab: true, fstabMatch: 'uuid', type: 'ext4' }, 'kernel', 'fstab-fixed-disks', []],
    ['loop device of a root-only image fstab names by path', { bus: 'virtual', loop: true, fstab: true, fstabMatch: 'path', imageRootOnly: true, type: 'ext4' }, 'kernel', 'fstab-fixed-disks', []],
    ['loop device a user attached, matching fstab LABEL= (spoofed)', { bus: 'virtual', loop: true, fstab: true, fstabMatch: 'label', type: 'ext4' }, 'fuse', 'images-and-loop-devices', ['fuse4fs', 'fuse2fs']],
    ['loop device of a root-only image matching fstab UUID= only', { bus: 'virtual', loop: true, fstab: true, fstabMatch: 'uuid', imageRootOnly: true, type: 'ext4' }, 'fuse', 'images-and-loop-devices'],
    ['loop device of a user-writable image fstab names by path', { bus: 'virtual', loop: true, fstab: true, fstabMatch: 'path', imageRootOnly: false, type: 'ext4' }, 'fuse', 'images-and-loop-devices'],
    ['root-only image file fstab names by path', { kind: 'image', bus: 'virtual', fstab: true, fstabMatch: 'path', imageRootOnly: true, type: 'ext4' }, 'kernel', 'fstab-fixed-disks', []],
    ['dm device on a loop device matching fstab UUID=', { bus: 'virtual', fixedDisk: false, fstab: true, fstabMatch: 'uuid', type: 'ext4' }, 'fuse', 'unlisted-internal-disks'],
    ['Thunderbolt NVMe matching fstab UUID=', { bus: 'thunderbolt', removable: true, fstab: true, fstabMatch: 'uuid', type: 'ext4' }, 'fuse', 'removable-media'],
    ['fstab-listed USB disk (UUID can be copied)', { ...usb, fstab: true, type: 'vfat' }, 'fuse', 'removable-media', ['fusegate-vfat', 'fusefat']],
    ['USB stick, FAT', { ...usb, type: 'vfat' }, 'fuse', 'removable-media', ['fusegate-vfat', 'fusefat']],
    ['USB hard disk (removable=0), ext4', { bus: 'usb', removable: false, type: 'ext4' }, 'fuse', 'removable-media', ['fuse4fs', 'fuse2fs']],
    ['SD card, exFAT', { bus: 'mmc', type: 'exfat' }, 'fuse', 'removable-media', ['exfat-fuse']],
    ['USB stick, btrfs', { ...usb, type: 'btrfs' }, 'deny', 'no-sandbox-for-removable'],
    ['image file, ext4', { kind: 'image', bus: 'virtual', type: 'ext4' }, 'fuse', 'images-and-loop-devices', ['fuse4fs', 'fuse2fs']],
    ['loop device, FAT', { loop: true, bus: 'virtual', type: 'vfat' }, 'fuse', 'images-and-loop-devices', ['fusegate-vfat', 'fusefat']],
    ['image file, xfs', { kind: 'image', bus: 'virtual', type: 'xfs' }, 'deny', 'no-sandbox-for-removable'],
    ['unlisted internal NTFS', { bus: 'ata', type: 'ntfs' }, 'fuse', 'unlisted-internal-disks', ['ntfs-3g']],
    ['unlisted internal xfs', { bus: 'nvme', type: 'xfs' }, 'deny', 'default'],
    // Disc images and optical media (issue 18).
    ['downloaded .iso file', { kind: 'image', bus: 'virtual', type: 'iso9660' }, 'fuse', 'images-and-loop-devices', ['fuseiso']],
    ['.iso on a loop device', { loop: true, bus: 'virtual', type: 'iso9660' }, 'fuse', 'images-and-loop-devices', ['fuseiso']],
    ['squashfs image file', { kind: 'image', bus: 'virtual', type: 'squashfs' }, 'fuse', 'images-and-loop-devices', ['squashfuse']],
    ['UDF image file', { kind: 'image', bus: 'virtual', type: 'udf' }, 'deny', 'no-sandbox-for-removable'],
    ['UDF on a loop device', { loop: true, bus: 'virtual', type: 'udf' }, 'deny', 'no-sandbox-for-removable'],
    ['CD in a SATA drive (/dev/sr0), ISO 9660', { source: '/dev/sr0', bus: 'ata', removable: true, type: 'iso9660' }, 'fuse', 'removable-media', ['fuseiso']],
    ['CD in a USB drive, ISO 9660', { source: '/dev/sr0', bus: 'usb', removable: true, type: 'iso9660' }, 'fuse', 'removable-media', ['fuseiso']],
    ['/dev/sr0 listed in fstab (Debian installer line), ISO 9660', { source: '/dev/sr0', bus: 'ata', removable: true, fstab: true, type: 'iso9660' }, 'fuse', 'removable-media', ['fuseiso']],
    ['DVD in a SATA drive (/dev/sr0), UDF', { source: '/dev/sr0', bus: 'ata', removable: true, type: 'udf' }, 'deny', 'no-sandbox-for-removable'],
    ['/dev/sr0 listed in fstab, UDF', { source: '/dev/sr0', bus: 'ata', removable: true, fstab: true, type: 'udf' }, 'deny', 'no-sandbox-for-removable'],
    ['fstab fixed disk, ISO 9660', { bus: 'nvme', fstab: true, type: 'iso9660' }, 'kernel', 'fstab-fixed-disks', []],
    ['fstab fixed disk, UDF', { bus: 'ata', fstab: true, type: 'udf' }, 'kernel', 'fstab-fixed-disks', []],
    ['fstab fixed disk, squashfs', { bus: 'nvme', fstab: true, type: 'squashfs' }, 'kernel', 'fstab-fixed-disks', []],
  ])('%s → %s', (_name, facts, action, rule, backends) => {
    const d = decide(policy, f({ ...facts }));
    expect(d.action).toBe(action);
    expect(d.rule).toBe(rule);
    if (backends !== undefined) expect(d.backends).toEqual(backends);
  });

  it('sandboxed mounts get nosuid,nodev; fstab mounts keep their own options', () => {
    expect(decide(policy, f({ ...usb, type: 'exfat', options: ['rw', 'nodev'] })).finalOptions).toEqual(['rw', 'nosuid', 'nodev']);
    expect(decide(policy, f({ ...usb, type: 'exfat', options: ['rw', 'suid'] })).action).toBe('deny');
    expect(decide(policy, f({ bus: 'ata', fstab: true, type: 'ext4', options: ['rw', 'suid'] })).finalOptions).toEqual(['rw', 'suid']);
  });

  it('a FAT stick is read-write through fusegate-vfat', () => {
    expect(decide(policy, f({ ...usb, type: 'vfat', options: ['rw'] })).finalOptions).toEqual(['rw', 'nosuid', 'nodev']);
    const fat = resolveFallback(decide(policy, f({ ...usb, type: 'vfat', options: ['rw'] })), { backends: ['fusegate-vfat', 'fusefat'] });
    expect(fat).toMatchObject({ backend: 'fusegate-vfat', readOnly: false });
    expect(fat.finalOptions).not.toContain('ro');
  });

  it('FAT through the fallback fusefat and ext4 through fuse2fs are read-only', () => {
    const fat = resolveFallback(decide(policy, f({ ...usb, type: 'vfat', options: ['rw'] })), { backends: ['fusefat'] });
    expect(fat).toMatchObject({ backend: 'fusefat', readOnly: true });
    expect(fat.finalOptions).toEqual(['nosuid', 'nodev', 'ro']);
    const ext4 = resolveFallback(decide(policy, f({ ...usb, type: 'ext4' })), { backends: ['fuse2fs'] });
    expect(ext4).toMatchObject({ backend: 'fuse2fs', readOnly: true });
  });
});

describe('fail-closed policy', () => {
  const p = failClosedPolicy('cannot read the policy: ENOENT', '/etc/fusegate/policy.yaml');

  it('sends fixed fstab disks to the kernel driver with their options', () => {
    const d = decide(p, f({ bus: 'ata', fstab: true, type: 'ext4', options: ['rw'] }));
    expect(d).toMatchObject({ action: 'kernel', rule: 'fail-closed-fstab', finalOptions: ['rw'] });
  });

  it.each<[string, SyntheticFacts]>([
    ['an unlisted USB stick', { bus: 'usb', removable: true, type: 'vfat' }],
    ['an fstab-listed USB stick', { bus: 'usb', removable: true, fstab: true, type: 'vfat' }],
    ['an fstab-listed removable disk', { bus: 'scsi', removable: true, fstab: true, type: 'ext4' }],
    ['an unlisted internal disk', { bus: 'nvme', type: 'ext4' }],
    ['an image file', { kind: 'image', bus: 'virtual', type: 'ext4' }],
    ['a loop device matching an fstab LABEL= (spoofed)', { loop: true, bus: 'virtual', fstab: true, fstabMatch: 'label', type: 'ext4' }],
    ['a loop device of a root-only image matching an fstab LABEL=', { loop: true, bus: 'virtual', fstab: true, fstabMatch: 'label', imageRootOnly: true, type: 'ext4' }],
    ['a loop device of a user-writable image fstab names by path', { loop: true, bus: 'virtual', fstab: true, fstabMatch: 'path', type: 'ext4' }],
    ['dm on a loop device matching an fstab UUID=', { bus: 'virtual', fixedDisk: false, fstab: true, fstabMatch: 'uuid', type: 'ext4' }],
    ['a Thunderbolt NVMe disk fstab lists', { bus: 'thunderbolt', removable: true, fstab: true, fstabMatch: 'uuid', type: 'ext4' }],
  ])('denies %s, naming the broken policy', (_n, facts) => {
    const d = decide(p, f(facts));
    expect(d.action).toBe('deny');
    expect(d.reason).toMatch(/\/etc\/fusegate\/policy\.yaml could not be loaded \(cannot read the policy: ENOENT\); fusegate fails closed/);
  });

  it.each<[string, SyntheticFacts]>([
    ['a fixed disk fstab names by LABEL=', { bus: 'nvme', fstab: true, fstabMatch: 'label', type: 'ext4' }],
    ['a zram disk fstab names by UUID=', { bus: 'virtual', fixedDisk: true, fstab: true, fstabMatch: 'uuid', type: 'ext4' }],
  ])('sends %s to the kernel driver', (_n, facts) => {
    expect(decide(p, f(facts))).toMatchObject({ action: 'kernel', rule: 'fail-closed-fstab' });
  });

  // The shipped policy may trust it; the fail-closed rule stays with what the
  // sh launcher can check without Node (helper/mount-launcher.sh).
  it('denies a root-only image fstab names by path, on a loop device', () => {
    expect(decide(p, f({ loop: true, bus: 'virtual', fstab: true, fstabMatch: 'path', imageRootOnly: true, type: 'ext4' }))).toMatchObject({ action: 'deny' });
  });

  it('is marked as fail-closed', () => {
    expect(p.failClosed).toEqual({ reason: 'cannot read the policy: ENOENT' });
  });
});

describe('the session fact (broker requests)', () => {
  const policy = () => parsePolicy('version: 1\nrules:\n  - name: local-users\n    match: { session: active }\n    action: fuse\n  - name: others\n    action: deny\n    reason: only active local sessions\n');
  it('matches the caller\'s session as the broker saw it', () => {
    expect(decide(policy(), f({ type: 'vfat', session: 'active' }))).toMatchObject({ action: 'fuse', rule: 'local-users' });
    expect(decide(policy(), f({ type: 'vfat', session: 'remote' }))).toMatchObject({ action: 'deny', rule: 'others' });
  });
  it('an unknown session (mount(8), udisks2) matches no session value', () => {
    const d = decide(policy(), f({ type: 'vfat' }));
    expect(d).toMatchObject({ action: 'deny', rule: 'others' });
    expect(d.trace[0]!.why.join(' ')).toContain('session');
  });
  it('the validator knows the values', () => {
    expect(() => parsePolicy('version: 1\nrules:\n  - name: r\n    match: { session: local }\n    action: fuse\n')).toThrow(/session/);
  });
});
