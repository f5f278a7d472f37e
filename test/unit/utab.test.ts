/**
 * lib/utab.ts, the one utab reader: escaped paths, and matching an entry to
 * a mount as umount(8) does (by ID, else by target and source, the latest
 * record winning).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { optionValue, parseUtab, readUtab, utabEntryOf } from '../../lib/utab';

const UTAB = [
  '# a comment',
  'ID=95 SRC=/dev/loop3 TARGET=/media/root/CAMERA ROOT=/ OPTS=uhelper=udisks2,x-fusegate.unit=fusefat@1-10-0.service',
  // the helper's `mount -f` record: no ID, escaped space and backslash
  'SRC=/srv/a\\040b.img TARGET=/mnt/My\\040Disk\\134x ROOT=/ OPTS=helper=fusegate,x-fusegate.unit=fuse2fs@2-20-0.service',
  '',
  'SRC=/srv/a\\040b.img TARGET=/mnt/My\\040Disk\\134x ROOT=/ OPTS=helper=fusegate,x-fusegate.unit=fuse2fs@3-30-0.service',
].join('\n');

describe('utab', () => {
  it('parses key=value lines and unescapes octal escapes in every value', () => {
    const u = parseUtab(UTAB);
    expect(u).toHaveLength(3);
    expect(u[0]).toEqual({ id: 95, source: '/dev/loop3', target: '/media/root/CAMERA', options: ['uhelper=udisks2', 'x-fusegate.unit=fusefat@1-10-0.service'] });
    expect(u[1]).toMatchObject({ id: null, source: '/srv/a b.img', target: '/mnt/My Disk\\x' });
  });

  it('matches by mount ID first, else by target and source, else by target, the latest record winning', () => {
    const u = parseUtab(UTAB);
    expect(utabEntryOf(u, { id: 95, mountpoint: '/elsewhere', source: '/dev/other' })).toBe(u[0]);
    expect(utabEntryOf(u, { id: 7, mountpoint: '/mnt/My Disk\\x', source: '/srv/a b.img' })).toBe(u[2]);
    // the escaped form is not what mountinfo's parser gives: no match
    expect(utabEntryOf(u, { id: 7, mountpoint: '/mnt/My\\040Disk\\134x', source: '/srv/a b.img' })).toBeUndefined();
    // the target alone, where the source reads differently
    expect(utabEntryOf(u, { id: 7, mountpoint: '/mnt/My Disk\\x', source: '/srv/other.img' })).toBe(u[2]);
    expect(utabEntryOf(u, { id: 7, mountpoint: '/mnt/none', source: '/srv/a b.img' })).toBeUndefined();
  });

  it('reads option values by key', () => {
    expect(optionValue(['uhelper=udisks2', 'x-fusegate.rule=r'], 'x-fusegate.rule')).toBe('r');
    expect(optionValue(['x-fusegate.ruler=x'], 'x-fusegate.rule')).toBeNull();
  });

  it('reads a file, and a missing utab is an empty one', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-utab-'));
    try {
      fs.writeFileSync(path.join(dir, 'utab'), UTAB);
      expect(readUtab(path.join(dir, 'utab'))).toHaveLength(3);
      expect(readUtab(path.join(dir, 'none'))).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
