/**
 * The argv memfd: how the helper hands the server its command line.
 *
 * Layout (all integers big-endian u32):
 *   magic "ARGS", argc, then argc × {pos, len}, then the strings.
 * `pos` is the byte offset of a string within the memfd and `len` its length
 * including its NUL, as libfuse's mount helper writes it. argv[0] is the
 * subtype; `-t X` is already removed. libfuse's helper reserves table slots
 * for the `-t X` pair it drops, so its strings may start after a gap of zero
 * bytes: the decoder follows `pos` and never assumes the strings are packed.
 */
import { isUtf8 } from 'node:buffer';
import * as fs from 'node:fs';
import { MAGIC } from './constants';
import { ProtocolError } from './errors';

/** Generous for any real mount command line; bounds what a peer can make us read. */
export const MAX_ARGV_BYTES = 1 << 20;
export const MAX_ARGC = 4096;

const HEADER = 8;
const ENTRY = 8;

export function encodeArgv(args: readonly string[]): Buffer {
  const strings = args.map((a) => Buffer.from(a + '\0', 'utf8'));
  const tableEnd = HEADER + ENTRY * args.length;
  const total = strings.reduce((n, s) => n + s.length, tableEnd);
  const buf = Buffer.alloc(total);
  buf.writeUInt32BE(MAGIC.ARGS, 0);
  buf.writeUInt32BE(args.length, 4);
  let pos = tableEnd;
  strings.forEach((s, i) => {
    buf.writeUInt32BE(pos, HEADER + ENTRY * i);
    buf.writeUInt32BE(s.length, HEADER + ENTRY * i + 4);
    s.copy(buf, pos);
    pos += s.length;
  });
  return buf;
}

export function decodeArgv(buf: Buffer): string[] {
  const bad = (why: string): never => {
    throw new ProtocolError('bad-argv', why);
  };
  if (buf.length > MAX_ARGV_BYTES) bad(`argv memfd is ${buf.length} bytes, more than ${MAX_ARGV_BYTES}`);
  if (buf.length < HEADER) bad(`argv memfd is ${buf.length} bytes, too short for its header`);
  if (buf.readUInt32BE(0) !== MAGIC.ARGS) bad('argv memfd does not start with "ARGS"');
  const argc = buf.readUInt32BE(4);
  if (argc > MAX_ARGC) bad(`argc ${argc} is more than ${MAX_ARGC}`);
  const tableEnd = HEADER + ENTRY * argc;
  if (tableEnd > buf.length) bad(`argc ${argc} does not fit in ${buf.length} bytes`);
  const args: string[] = [];
  for (let i = 0; i < argc; i++) {
    const pos = buf.readUInt32BE(HEADER + ENTRY * i);
    const len = buf.readUInt32BE(HEADER + ENTRY * i + 4);
    // Strings live after the table; each one's last byte (counted in len) is its NUL.
    if (len === 0 || pos < tableEnd || pos + len > buf.length) {
      bad(`argv[${i}] (pos ${pos}, len ${len}) lies outside the string area`);
    }
    if (buf[pos + len - 1] !== 0) bad(`argv[${i}] is not NUL-terminated`);
    const s = buf.subarray(pos, pos + len - 1);
    if (s.includes(0)) bad(`argv[${i}] contains a NUL byte`);
    if (!isUtf8(s)) bad(`argv[${i}] is not valid UTF-8`);
    args.push(s.toString('utf8'));
  }
  return args;
}

/** Writes argv into a memfd (or any file fd) from offset 0. */
export function writeArgvFd(fd: number, args: readonly string[]): void {
  const buf = encodeArgv(args);
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off, off);
}

/** Reads and decodes the argv memfd; never reads more than MAX_ARGV_BYTES. */
export function readArgvFd(fd: number): string[] {
  const size = fs.fstatSync(fd).size;
  if (size > MAX_ARGV_BYTES) {
    throw new ProtocolError('bad-argv', `argv memfd is ${size} bytes, more than ${MAX_ARGV_BYTES}`);
  }
  const buf = Buffer.alloc(size);
  let off = 0;
  while (off < size) {
    const n = fs.readSync(fd, buf, off, size - off, off);
    if (n === 0) break;
    off += n;
  }
  return decodeArgv(buf.subarray(0, off));
}
