/**
 * Feeds the decoders well over 100,000 random and mutated messages. The only
 * acceptable outcomes are a decoded message that re-encodes to the same bytes,
 * or a ProtocolError; any other exception (RangeError, TypeError, …) is a bug
 * a hostile peer could trigger.
 */
import { describe, expect, it } from 'vitest';
import {
  decode,
  decodeArgv,
  encode,
  encodeArgv,
  ProtocolError,
  SENT_BY,
  type Message,
  type Sender,
} from '../../lib/protocol';

/** xorshift32: deterministic, so a failure reproduces from its seed. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

const SEEDS: Message[] = [
  { kind: 'SAFT', minVersion: 1, maxVersion: 1, flags: 1 },
  { kind: 'LAST', version: 1 },
  { kind: 'FILE', error: 0, path: 'fusedev' },
  { kind: 'OPEN', openFlags: 2, createMode: 0, requestFlags: 1, blockSize: 0, path: '/img' },
  { kind: 'BDEV', openFlags: 0, createMode: 0, requestFlags: 0, blockSize: 4096, path: '/dev/loop7' },
  { kind: 'TYPE', fsopenFlags: 1 },
  { kind: 'NAME', source: '/dev/loop7' },
  { kind: 'MNTP', expectedFormat: 0o40000, path: '/mnt/x' },
  { kind: 'OPTS', options: 'ro' },
  { kind: 'MTAB', options: '' },
  { kind: 'DOIT', msFlags: 0 },
  { kind: 'REPL', error: 0 },
  { kind: 'BYEE', exitCode: 0 },
];

function mutate(buf: Buffer, rand: (n: number) => number): Buffer {
  const out = Buffer.from(buf);
  switch (rand(5)) {
    case 0: // flip bits
      for (let i = rand(4) + 1; i > 0 && out.length; i--) out[rand(out.length)] ^= 1 << rand(8);
      return out;
    case 1: // truncate
      return out.subarray(0, rand(out.length + 1));
    case 2: // append garbage
      return Buffer.concat([out, Buffer.from(Array.from({ length: rand(8) + 1 }, () => rand(256)))]);
    case 3: // overwrite a field-sized run
      for (let i = 0, at = rand(Math.max(out.length, 1)); i < 4 && at + i < out.length; i++) out[at + i] = rand(256);
      return out;
    default: // random magic from the table on a random body
      out.writeUInt32BE(encode(SEEDS[rand(SEEDS.length)]!).readUInt32BE(0), 0);
      return out;
  }
}

function check(buf: Buffer, from: Sender, stats: { ok: number; rejected: number }) {
  let msg: Message;
  try {
    msg = decode(buf, from);
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw new Error(`non-protocol error for ${buf.toString('hex')}: ${String(err)}`);
    stats.rejected++;
    return;
  }
  // Whatever the decoder accepts must be exactly what the encoder would write.
  expect(encode(msg).equals(buf)).toBe(true);
  stats.ok++;
}

describe('protocol decoder fuzz', () => {
  it('survives 120,000 mutated and random messages', () => {
    const rand = rng(0x5eed);
    const stats = { ok: 0, rejected: 0 };
    const senders: Sender[] = ['helper', 'server'];
    for (let i = 0; i < 100_000; i++) {
      const seed = SEEDS[rand(SEEDS.length)]!;
      const buf = mutate(encode(seed), rand);
      check(buf, senders[rand(2)]!, stats);
    }
    for (let i = 0; i < 20_000; i++) {
      const buf = Buffer.from(Array.from({ length: rand(40) }, () => rand(256)));
      check(buf, senders[rand(2)]!, stats);
    }
    expect(stats.ok + stats.rejected).toBe(120_000);
    // Both outcomes must actually occur, or the mutations are not exercising anything.
    expect(stats.ok).toBeGreaterThan(1000);
    expect(stats.rejected).toBeGreaterThan(50_000);
  });

  it('survives 20,000 mutated argv memfds', () => {
    const rand = rng(0xa56);
    const base = encodeArgv(['fuse2fs', '/dev/loop0', '/mnt', '-o', 'ro']);
    let ok = 0;
    for (let i = 0; i < 20_000; i++) {
      const buf = mutate(base, rand);
      try {
        const args = decodeArgv(buf);
        expect(Array.isArray(args)).toBe(true);
        ok++;
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw new Error(`non-protocol error for ${buf.toString('hex')}: ${String(err)}`);
      }
    }
    expect(ok).toBeGreaterThan(0);
  });

  it('SENT_BY knows all 13 kinds', () => {
    expect(Object.keys(SENT_BY)).toHaveLength(13);
  });
});
