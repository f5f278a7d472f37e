/**
 * What the broker accepts from a caller (broker/request.ts) and which polkit
 * action each outcome needs (broker/actions.ts): the mapping the e2e suite
 * then shows polkitd honouring.
 */
import { describe, expect, it } from 'vitest';
import { mountAction, refusalWords, unmountAction } from '../../broker/actions';
import { ACTION } from '../../broker/names';
import { checkPath, fdAccess, mountDirName, parseMountRequest } from '../../broker/request';

const v = (signature: string, value: unknown) => ({ signature, value });

describe('Mount arguments', () => {
  it('takes an empty mountpoint as "pick /run/media/$USER/<label>"', () => {
    expect(parseMountRequest('', {})).toEqual({ mountpoint: null, readOnly: false, fsType: undefined, options: [] });
  });
  it('accepts the known options with their types', () => {
    const r = parseMountRequest('/home/u/mnt', { 'read-only': v('b', true), type: v('s', 'vfat'), options: v('s', 'noatime,noexec') });
    expect(r).toEqual({ mountpoint: '/home/u/mnt', readOnly: true, fsType: 'vfat', options: ['noatime', 'noexec'] });
    expect(parseMountRequest('/m', { options: v('s', 'ro') }).readOnly).toBe(true);
  });
  it.each([
    ['relative', 'mnt', /not an absolute path/],
    ['dot-dot', '/home/u/../root', /normal form/],
    ['NUL', '/a\0b', /not a valid path/],
    ['not a string', 3, /must be a string/],
  ])('refuses a %s mountpoint', (_, mp, re) => {
    expect(() => parseMountRequest(mp, {})).toThrow(re);
  });
  it.each([
    ['suid', { options: v('s', 'suid') }, /suid are not available to users/],
    ['dev', { options: v('s', 'rw,dev') }, /dev are not available/],
    ['uid=0', { options: v('s', 'uid=0') }, /uid=0 are not available/],
    ['unknown key', { 'allow-other': v('b', true) }, /unknown option 'allow-other'/],
    ['wrong type', { 'read-only': v('s', 'yes') }, /must be a boolean/],
    ['bad fs type', { type: v('s', 'ext4;rm') }, /filesystem type name/],
  ])('refuses option %s', (_, opts, re) => {
    expect(() => parseMountRequest('/m', opts)).toThrow(re);
  });
  it('normalizes a trailing slash', () => {
    expect(checkPath('/home/u/mnt/', 'x')).toBe('/home/u/mnt');
    expect(checkPath('/', 'x')).toBe('/');
  });
});

describe('the source fd', () => {
  it('reads the access mode and O_PATH from fdinfo', () => {
    expect(fdAccess('pos:\t0\nflags:\t02100000\nmnt_id:\t1\n')).toEqual({ mode: 'read', opath: false });
    expect(fdAccess('pos:\t0\nflags:\t02100002\n')).toEqual({ mode: 'read-write', opath: false });
    expect(fdAccess('pos:\t0\nflags:\t012100000\n')).toEqual({ mode: 'read', opath: true });
  });
});

describe('the default mountpoint name', () => {
  it('is the label, made safe as one path component', () => {
    expect(mountDirName('MY STICK', null, 'disk')).toBe('MY STICK');
    expect(mountDirName('a/b', null, 'disk')).toBe('a_b');
    expect(mountDirName('..', null, 'disk')).toBe('_.');
    expect(mountDirName(null, '1234-ABCD', 'disk')).toBe('1234-ABCD');
    expect(mountDirName('  ', null, 'disk')).toBe('disk');
  });
});

describe('authorization mapping', () => {
  it('asks polkit for the sandboxed action, the kernel action, or nothing when the policy refused', () => {
    expect(mountAction({ action: 'fuse' })).toBe(ACTION.mountSandboxed);
    expect(mountAction({ action: 'kernel' })).toBe(ACTION.mountKernel);
    expect(mountAction({ action: 'deny' })).toBeNull();
  });
  it('needs an administrator to unmount anyone else’s mount, or one nobody owns', () => {
    expect(unmountAction(1000, 1000)).toBeNull();
    expect(unmountAction(1000, 1001)).toBe(ACTION.unmountOthers);
    expect(unmountAction(1000, null)).toBe(ACTION.unmountOthers);
  });
  it('tells a refused kernel mount what to ask the administrator', () => {
    const w = refusalWords(ACTION.mountKernel, '/home/u/disk.img (ext4)');
    expect(w.message).toContain("kernel's own driver");
    expect(w.message).toContain(ACTION.mountKernel);
    expect(w.hint).toMatch(/ask your administrator/);
  });
});
