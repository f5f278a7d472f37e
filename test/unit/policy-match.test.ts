import { describe, expect, it } from 'vitest';
import { decide } from '../../policy/decide';
import { parsePolicy } from '../../policy/load';
import { globToRegExp } from '../../policy/match';
import { syntheticFacts, type SyntheticFacts } from '../../policy/synthetic';
import type { Facts } from '../../policy/types';

/** A policy whose only rule matches `cond`; everything else is denied by default. */
function ruleFor(cond: string): string {
  return `version: 1\nrules:\n  - name: probe\n    match: ${cond}\n    action: fuse\n`;
}

function matches(cond: string, facts: Facts): boolean {
  const d = decide(parsePolicy(ruleFor(cond)), facts);
  return d.rule === 'probe';
}

const f = (s: SyntheticFacts): Facts => syntheticFacts(s);

// [key, condition, facts that match, facts that do not]
const KEYS: Array<[string, string, Facts, Facts]> = [
  ['type', '{ type: [ext4, "ext?"] }', f({ type: 'ext3' }), f({ type: 'vfat' })],
  ['type (case-insensitive)', '{ type: EXT4 }', f({ type: 'ext4' }), f({ type: 'xfs' })],
  ['requested_type', '{ requested_type: auto }', f({ requestedType: 'auto' }), f({ requestedType: 'ext4' })],
  ['uuid (case-insensitive glob)', '{ uuid: "ABCD-*" }', f({ uuid: 'abcd-1234' }), f({ uuid: 'dcba-1234' })],
  ['partuuid', '{ partuuid: 0a1b2c3d-01 }', f({ partuuid: '0A1B2C3D-01' }), f({ partuuid: '0a1b2c3d-02' })],
  ['label (glob, case-sensitive)', '{ label: "BACKUP-*" }', f({ label: 'BACKUP-2024' }), f({ label: 'backup-2024' })],
  ['kind', '{ kind: image }', f({ kind: 'image' }), f({ kind: 'block' })],
  ['loop', '{ loop: true }', f({ loop: true }), f({ loop: false })],
  ['backing_file', '{ backing_file: "/srv/images/*.img" }', f({ loop: true, backingFile: '/srv/images/a.img' }), f({ loop: true, backingFile: '/home/x/a.img' })],
  ['source', '{ source: "/dev/disk/by-id/usb-*" }', f({ source: '/dev/disk/by-id/usb-Kingston' }), f({ source: '/dev/sda1' })],
  ['mountpoint', '{ mountpoint: "/media/*" }', f({ mountpoint: '/media/alice/STICK' }), f({ mountpoint: '/mnt/x' })],
  ['bus', '{ bus: [usb, mmc] }', f({ bus: 'mmc' }), f({ bus: 'nvme' })],
  ['removable', '{ removable: false }', f({ removable: false }), f({ removable: true })],
  ['fstab', '{ fstab: true }', f({ fstab: true }), f({ fstab: false })],
  ['has_backend', '{ has_backend: false }', f({ type: 'btrfs' }), f({ type: 'ext4' })],
  ['uhelper', '{ uhelper: udisks2 }', f({ options: ['rw', 'uhelper=udisks2'] }), f({ options: ['rw'] })],
  ['user by name', '{ user: alice }', f({ user: { id: 1000, name: 'alice' } }), f({ user: { id: 1001, name: 'bob' } })],
  ['user by uid', '{ user: [0, 1001] }', f({ user: { id: 1001, name: 'bob' } }), f({ user: { id: 1000, name: 'alice' } })],
  ['group by name (supplementary)', '{ group: disk }', f({ groups: [{ id: 1000, name: 'alice' }, { id: 6, name: 'disk' }] }), f({ groups: [{ id: 1000, name: 'alice' }] })],
  ['group by gid', '{ group: 6 }', f({ groups: [{ id: 1000, name: 'alice' }, { id: 6, name: null }] }), f({ groups: [{ id: 1000, name: 'alice' }] })],
  ['options by name', '{ options: [uid] }', f({ options: ['uid=0'] }), f({ options: ['gid=0'] })],
  ['options whole', '{ options: ["uid=0"] }', f({ options: ['uid=0'] }), f({ options: ['uid=1000'] })],
];

describe('every match key', () => {
  it.each(KEYS)('%s', (_key, cond, yes, no) => {
    expect(matches(cond, yes)).toBe(true);
    expect(matches(cond, no)).toBe(false);
  });

  it('a missing fact never matches a pattern', () => {
    expect(matches('{ label: "*" }', f({ label: null }))).toBe(false);
    expect(matches('{ label: "*" }', f({ label: '' }))).toBe(true);
  });
});

describe('combining conditions', () => {
  it('all keys of one condition must hold', () => {
    const cond = '{ bus: usb, type: vfat }';
    expect(matches(cond, f({ bus: 'usb', type: 'vfat' }))).toBe(true);
    expect(matches(cond, f({ bus: 'usb', type: 'ext4' }))).toBe(false);
    expect(matches(cond, f({ bus: 'ata', type: 'vfat' }))).toBe(false);
  });

  it('a list of conditions matches when any holds', () => {
    const cond = '[ { removable: true }, { bus: usb } ]';
    expect(matches(cond, f({ removable: true, bus: 'ata' }))).toBe(true);
    expect(matches(cond, f({ removable: false, bus: 'usb' }))).toBe(true);
    expect(matches(cond, f({ removable: false, bus: 'ata' }))).toBe(false);
  });

  it('unless skips the rule when any of its conditions holds', () => {
    const p = parsePolicy(`version: 1
rules:
  - name: fixed
    match: { fstab: true }
    unless: [ { removable: true }, { bus: usb } ]
    action: kernel
`);
    expect(decide(p, f({ fstab: true, bus: 'nvme' })).rule).toBe('fixed');
    expect(decide(p, f({ fstab: true, bus: 'usb' })).rule).toBe('default');
    const d = decide(p, f({ fstab: true, bus: 'ata', removable: true }));
    expect(d.rule).toBe('default');
    expect(d.trace[0]!.why).toContain('skipped: an unless condition holds');
  });

  it('a rule without match matches everything', () => {
    const p = parsePolicy('version: 1\nrules:\n  - name: all\n    action: fuse\n');
    expect(decide(p, f({})).rule).toBe('all');
  });

  it('first match wins and later rules are not tried', () => {
    const p = parsePolicy(`version: 1
rules:
  - name: a
    match: { bus: usb }
    action: fuse
  - name: b
    match: { type: vfat }
    action: deny
    reason: no
`);
    const d = decide(p, f({ bus: 'usb', type: 'vfat' }));
    expect(d.rule).toBe('a');
    expect(d.trace.map((t) => t.rule)).toEqual(['a']);
  });
});

describe('trace', () => {
  it('says for each key tried why it did or did not match', () => {
    const p = parsePolicy(`version: 1
rules:
  - name: usb
    match: { bus: usb, removable: true }
    action: fuse
  - name: img
    match: { kind: image }
    action: fuse
`);
    const d = decide(p, f({ bus: 'virtual', removable: false, kind: 'image' }));
    expect(d.trace).toEqual([
      { rule: 'usb', line: 3, matched: false, why: ['bus: virtual does not match usb', 'removable: false does not match true'] },
      { rule: 'img', line: 6, matched: true, why: ['kind: image matches image'] },
    ]);
  });

  it('can be switched off for speed without changing the decision', () => {
    const p = parsePolicy(ruleFor('{ bus: usb }'));
    const d = decide(p, f({ bus: 'usb' }), { trace: false });
    expect(d.rule).toBe('probe');
    expect(d.trace).toEqual([]);
  });
});

describe('globs', () => {
  it.each([
    ['*', '/a/b', true],
    ['/media/*', '/media/alice/X', true],
    ['a?c', 'abc', true],
    ['a?c', 'abbc', false],
    ['a.c', 'abc', false],
    ['[ab]', 'a', false],
    ['[ab]', '[ab]', true],
  ])('%s ~ %s = %s', (pattern, value, expected) => {
    expect(globToRegExp(pattern).test(value)).toBe(expected);
  });
});
