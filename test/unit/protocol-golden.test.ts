/**
 * Golden byte vectors for every message of libfuse's service-mount protocol
 * v1. The hex below is written by hand from the C struct layouts (big-endian
 * fields in declaration order, NUL-terminated trailing strings), not produced
 * by our encoder: if encode() or decode() drifts from the C side, these fail.
 *
 *   struct { u32 magic; u16 min_version; u16 max_version; u32 flags; }     SAFT
 *   struct { u32 magic; u16 version; u16 padding; }                       LAST
 *   struct { u32 magic; u32 error; char path[]; }                         FILE
 *   struct { u32 magic; u32 open_flags; u32 create_mode;
 *            u32 request_flags; u32 block_size; char path[]; }            OPEN, BDEV
 *   struct { u32 magic; u32 fsopen_flags; }                               TYPE
 *   struct { u32 magic; char source[]; }                                  NAME
 *   struct { u32 magic; u16 expected_fmt; u16 padding; char path[]; }     MNTP
 *   struct { u32 magic; char options[]; }                                 OPTS, MTAB
 *   struct { u32 magic; u32 ms_flags; }                                   DOIT
 *   struct { u32 magic; u32 error; }                                      REPL
 *   struct { u32 magic; u32 exitcode; }                                   BYEE
 */
import { describe, expect, it } from 'vitest';
import { decode, encode, decodeArgv, encodeArgv, SENT_BY, type Message } from '../../lib/protocol';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

interface Golden {
  name: string;
  msg: Message;
  bytes: string;
}

const GOLDEN: Golden[] = [
  {
    name: 'SAFT hello, versions 1..1, ALLOW_OTHER|FUSEBLK',
    msg: { kind: 'SAFT', minVersion: 1, maxVersion: 1, flags: 3 },
    bytes: '53414654 0001 0001 00000003',
  },
  {
    name: 'LAST hello reply, version 1',
    msg: { kind: 'LAST', version: 1 },
    bytes: '4c415354 0001 0000',
  },
  {
    name: 'FILE "argv", error 0',
    msg: { kind: 'FILE', error: 0, path: 'argv' },
    bytes: '46494c45 00000000 61726776 00',
  },
  {
    name: 'FILE "/dev/sdb1", error ENOENT (2)',
    msg: { kind: 'FILE', error: 2, path: '/dev/sdb1' },
    bytes: '46494c45 00000002 2f6465762f73646231 00',
  },
  {
    name: 'OPEN "/img" O_RDWR|O_CLOEXEC mode 0644 QUIET bs 4096',
    msg: { kind: 'OPEN', openFlags: 0o2000002, createMode: 0o644, requestFlags: 1, blockSize: 4096, path: '/img' },
    bytes: '4f50454e 00080002 000001a4 00000001 00001000 2f696d67 00',
  },
  {
    name: 'BDEV "/dev/loop0" O_RDONLY|O_EXCL, no mode, bs 512',
    msg: { kind: 'BDEV', openFlags: 0o200, createMode: 0, requestFlags: 0, blockSize: 512, path: '/dev/loop0' },
    bytes: '42444556 00000080 00000000 00000000 00000200 2f6465762f6c6f6f7030 00',
  },
  {
    name: 'TYPE FUSEBLK',
    msg: { kind: 'TYPE', fsopenFlags: 1 },
    bytes: '54595045 00000001',
  },
  {
    name: 'NAME "/dev/loop0"',
    msg: { kind: 'NAME', source: '/dev/loop0' },
    bytes: '4e414d45 2f6465762f6c6f6f7030 00',
  },
  {
    name: 'MNTP S_IFDIR "/mnt"',
    msg: { kind: 'MNTP', expectedFormat: 0o40000, path: '/mnt' },
    bytes: '4d4e5450 4000 0000 2f6d6e74 00',
  },
  {
    name: 'OPTS "ro,default_permissions"',
    msg: { kind: 'OPTS', options: 'ro,default_permissions' },
    bytes: '4f505453 726f2c64656661756c745f7065726d697373696f6e73 00',
  },
  {
    name: 'MTAB "x-fusegate.backend=fuse2fs"',
    msg: { kind: 'MTAB', options: 'x-fusegate.backend=fuse2fs' },
    bytes: '4d544142 782d6675736567617465 2e 6261636b656e64 3d 66757365326673 00',
  },
  {
    name: 'DOIT MS_NOSUID|MS_NODEV',
    msg: { kind: 'DOIT', msFlags: 6 },
    bytes: '444f4954 00000006',
  },
  {
    name: 'REPL error EPERM (1)',
    msg: { kind: 'REPL', error: 1 },
    bytes: '5245504c 00000001',
  },
  {
    name: 'BYEE exitcode 0',
    msg: { kind: 'BYEE', exitCode: 0 },
    bytes: '42594545 00000000',
  },
];

describe('protocol golden vectors', () => {
  it('covers all 13 message kinds', () => {
    const kinds = new Set(GOLDEN.map((g) => g.msg.kind));
    expect([...kinds].sort()).toEqual(Object.keys(SENT_BY).sort());
    expect(kinds.size).toBe(13);
  });

  for (const g of GOLDEN) {
    it(`encodes ${g.name}`, () => {
      expect(encode(g.msg).toString('hex')).toBe(hex(g.bytes).toString('hex'));
    });
    it(`decodes ${g.name}`, () => {
      expect(decode(hex(g.bytes), SENT_BY[g.msg.kind])).toEqual(g.msg);
    });
  }
});

describe('argv memfd golden vectors', () => {
  // Our helper's layout for ["fuse2fs", "/dev/loop0", "/mnt"]: header 8 bytes,
  // table 3×8 = 24, strings packed from offset 32; len counts the NUL.
  const packed = hex(`
    41524753 00000003
    00000020 00000008
    00000028 0000000b
    00000033 00000005
    6675736532667300
    2f6465762f6c6f6f703000
    2f6d6e7400`);
  const args = ['fuse2fs', '/dev/loop0', '/mnt'];

  it('encodes', () => {
    expect(encodeArgv(args).toString('hex')).toBe(packed.toString('hex'));
  });
  it('decodes', () => {
    expect(decodeArgv(packed)).toEqual(args);
  });

  // libfuse's fuservicemount3 for `fuservicemount3 /dev/sdb1 /mnt -t fuse.ext4 -o ro`:
  // it reserves slots for all 7 of its arguments and writes 5, leaving a
  // 16-byte gap before the strings (libfuse util/mount_service.c,
  // mount_service_capture_args).
  const upstream = hex(`
    41524753 00000005 00000040 00000005
    00000045 0000000a 0000004f 00000005
    00000054 00000003 00000057 00000003
    00000000 00000000 00000000 00000000
    6578743400 2f6465762f7364623100 2f6d6e7400 2d6f00 726f00`);
  it('decodes the argv memfd libfuse writes, gap included', () => {
    expect(upstream).toHaveLength(90);
    expect(decodeArgv(upstream)).toEqual(['ext4', '/dev/sdb1', '/mnt', '-o', 'ro']);
  });

  it('decodes an empty argv', () => {
    expect(decodeArgv(hex('41524753 00000000'))).toEqual([]);
  });
});
