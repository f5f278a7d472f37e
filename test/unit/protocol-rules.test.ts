/**
 * Every rule of the strict decoder, each with a message that breaks only it.
 * The expected rule name is checked, so a test cannot pass because some other
 * check happened to fire.
 */
import { describe, expect, it } from 'vitest';
import { decode, decodeArgv, encode, ProtocolError, type ProtocolRule, type Sender } from '../../lib/protocol';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function ruleOf(fn: () => unknown): ProtocolRule | 'no error' {
  try {
    fn();
    return 'no error';
  } catch (err) {
    if (err instanceof ProtocolError) return err.rule;
    throw err;
  }
}

const CASES: Array<[string, string | Buffer, Sender, ProtocolRule]> = [
  ['empty message', '', 'server', 'truncated'],
  ['three bytes', '4c4153', 'server', 'truncated'],
  ['unknown magic', '58585858 00000000', 'server', 'unknown-magic'],
  ['helper receiving a helper message (SAFT)', '53414654 0001 0001 00000000', 'server', 'wrong-direction'],
  ['server receiving a server message (DOIT)', '444f4954 00000000', 'helper', 'wrong-direction'],
  ['LAST too short', '4c415354 0001', 'server', 'truncated'],
  ['LAST with non-zero padding', '4c415354 0001 0001', 'server', 'nonzero-padding'],
  ['LAST with trailing bytes', '4c415354 0001 0000 00', 'server', 'trailing-bytes'],
  ['SAFT with unknown flag', '53414654 0001 0001 00000004', 'helper', 'unknown-flags'],
  ['SAFT min > max', '53414654 0002 0001 00000000', 'helper', 'bad-version'],
  ['FILE without a path', '46494c45 00000000', 'helper', 'missing-nul'],
  ['FILE path not NUL-terminated', '46494c45 00000000 61726776', 'helper', 'missing-nul'],
  ['FILE path with embedded NUL', '46494c45 00000000 6100 6200', 'helper', 'embedded-nul'],
  ['OPEN with unknown request flag', '4f50454e 00000000 00000000 00000002 00000000 2f00', 'server', 'unknown-flags'],
  ['OPEN truncated header', '4f50454e 00000000 00000000', 'server', 'truncated'],
  ['BDEV without NUL', '42444556 00000000 00000000 00000000 00000000 2f', 'server', 'missing-nul'],
  ['TYPE with unknown flag', '54595045 00000002', 'server', 'unknown-flags'],
  ['TYPE with trailing bytes', '54595045 00000000 00', 'server', 'trailing-bytes'],
  ['NAME empty body', '4e414d45', 'server', 'missing-nul'],
  ['MNTP bad format (S_IFBLK)', '4d4e5450 6000 0000 2f00', 'server', 'bad-format'],
  ['MNTP non-zero padding', '4d4e5450 4000 0001 2f00', 'server', 'nonzero-padding'],
  ['NAME invalid UTF-8', '4e414d45 2fff00', 'server', 'bad-encoding'],
  ['OPTS embedded NUL', '4f505453 6100 6100', 'server', 'embedded-nul'],
  ['MTAB missing NUL', '4d544142 61', 'server', 'missing-nul'],
  ['DOIT short', '444f4954 0000', 'server', 'truncated'],
  ['REPL trailing', '5245504c 00000000 00000000', 'helper', 'trailing-bytes'],
  ['BYEE short', '42594545 00', 'server', 'truncated'],
  ['oversize message', Buffer.concat([hex('4e414d45'), Buffer.alloc(65536 - 4 + 1, 0x61)]), 'server', 'oversize'],
];

describe('protocol decoder rules', () => {
  for (const [name, bytes, from, rule] of CASES) {
    it(`rejects ${name} as ${rule}`, () => {
      const buf = typeof bytes === 'string' ? hex(bytes) : bytes;
      expect(ruleOf(() => decode(buf, from))).toBe(rule);
    });
  }

  it('accepts a message of exactly 65536 bytes', () => {
    const buf = Buffer.concat([hex('4e414d45'), Buffer.alloc(65536 - 5, 0x61), Buffer.from([0])]);
    expect(buf.length).toBe(65536);
    expect(ruleOf(() => decode(buf, 'server'))).toBe('no error');
  });

  it('refuses to encode an oversize message', () => {
    expect(ruleOf(() => encode({ kind: 'NAME', source: 'a'.repeat(65536) }))).toBe('oversize');
  });
});

describe('argv memfd decoder rules', () => {
  const bad: Array<[string, string]> = [
    ['wrong magic', '41524758 00000000'],
    ['short header', '415247'],
    ['argc larger than the table space', '41524753 00000002 00000010 00000000'],
    ['string inside the table', '41524753 00000001 00000004 00000002 6100'],
    ['string past the end', '41524753 00000001 00000010 00000005 6100'],
    ['zero-length entry (no room for its NUL)', '41524753 00000001 00000010 00000000 6100'],
    ['string without NUL', '41524753 00000001 00000010 00000002 6162'],
    ['string with embedded NUL', '41524753 00000001 00000010 00000004 61006200'],
    ['absurd argc', '41524753 ffffffff'],
    ['string not UTF-8', '41524753 00000001 00000010 00000002 ff00'],
  ];
  for (const [name, bytes] of bad) {
    it(`rejects ${name}`, () => {
      expect(ruleOf(() => decodeArgv(hex(bytes)))).toBe('bad-argv');
    });
  }
});
