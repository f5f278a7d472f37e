/**
 * The messages of libfuse's service-mount protocol v1 and their exact byte
 * layout (docs/protocol.md §2). Every integer is big-endian; every string ends with
 * exactly one NUL at the last byte of the message.
 *
 * `encode` and `decode` are the only two places that know the layout.
 * `decode` is strict: it accepts exactly what the C structs describe and
 * throws a ProtocolError naming the broken rule for everything else. What a
 * message means in the conversation (order, duplicates, which paths are
 * allowed) is the business of the helper and the adapter, not of this file.
 */
import {
  FSOPEN_FLAGS_ALL,
  HELLO_FLAGS_ALL,
  MAGIC,
  MAX_MESSAGE_SIZE,
  MNTP_FORMATS,
  REQUEST_FLAGS_ALL,
  type MagicName,
} from './constants';
import { isUtf8 } from 'node:buffer';
import { ProtocolError } from './errors';

/** SAFT: helper → server. */
export interface Hello {
  kind: 'SAFT';
  minVersion: number;
  maxVersion: number;
  flags: number;
}
/** LAST: server → helper. */
export interface HelloReply {
  kind: 'LAST';
  version: number;
}
/** FILE: helper → server; one fd travels with it iff error is 0. */
export interface File {
  kind: 'FILE';
  error: number;
  path: string;
}
/** OPEN (regular file) or BDEV (block device): server → helper. */
export interface OpenRequest {
  kind: 'OPEN' | 'BDEV';
  openFlags: number;
  createMode: number;
  requestFlags: number;
  blockSize: number;
  path: string;
}
/** TYPE: server → helper. */
export interface FsType {
  kind: 'TYPE';
  fsopenFlags: number;
}
/** NAME: server → helper. */
export interface SourceName {
  kind: 'NAME';
  source: string;
}
/** MNTP: server → helper. */
export interface Mountpoint {
  kind: 'MNTP';
  expectedFormat: number;
  path: string;
}
/** OPTS (mount options) or MTAB (utab options): server → helper. */
export interface Options {
  kind: 'OPTS' | 'MTAB';
  options: string;
}
/** DOIT: server → helper. */
export interface DoMount {
  kind: 'DOIT';
  msFlags: number;
}
/** REPL: helper → server. */
export interface Reply {
  kind: 'REPL';
  error: number;
}
/** BYEE: server → helper. */
export interface Bye {
  kind: 'BYEE';
  exitCode: number;
}

export type Message =
  | Hello
  | HelloReply
  | File
  | OpenRequest
  | FsType
  | SourceName
  | Mountpoint
  | Options
  | DoMount
  | Reply
  | Bye;

/** Who sent a message. The helper only accepts 'server' messages and vice versa. */
export type Sender = 'helper' | 'server';

export const SENT_BY: Record<MagicName, Sender> = {
  SAFT: 'helper',
  FILE: 'helper',
  REPL: 'helper',
  LAST: 'server',
  OPEN: 'server',
  BDEV: 'server',
  TYPE: 'server',
  NAME: 'server',
  MNTP: 'server',
  OPTS: 'server',
  MTAB: 'server',
  DOIT: 'server',
  BYEE: 'server',
};

const KIND_BY_MAGIC = new Map<number, MagicName>(
  (Object.keys(SENT_BY) as MagicName[]).map((name) => [MAGIC[name], name]),
);

// ------------------------------------------------------------------ encode

/** Builds a message: magic, then the fixed fields, then an optional string. */
function build(kind: MagicName, fields: Array<[bytes: 2 | 4, value: number]>, text?: string): Buffer {
  const str = text === undefined ? undefined : Buffer.from(text + '\0', 'utf8');
  const fixed = 4 + fields.reduce((n, [bytes]) => n + bytes, 0);
  const buf = Buffer.alloc(fixed + (str?.length ?? 0));
  buf.writeUInt32BE(MAGIC[kind], 0);
  let off = 4;
  for (const [bytes, value] of fields) {
    if (bytes === 2) buf.writeUInt16BE(value, off);
    else buf.writeUInt32BE(value >>> 0, off);
    off += bytes;
  }
  str?.copy(buf, off);
  if (buf.length > MAX_MESSAGE_SIZE) {
    throw new ProtocolError('oversize', `${kind} would be ${buf.length} bytes, more than ${MAX_MESSAGE_SIZE}`);
  }
  return buf;
}

export function encode(msg: Message): Buffer {
  switch (msg.kind) {
    case 'SAFT':
      return build('SAFT', [[2, msg.minVersion], [2, msg.maxVersion], [4, msg.flags]]);
    case 'LAST':
      return build('LAST', [[2, msg.version], [2, 0]]);
    case 'FILE':
      return build('FILE', [[4, msg.error]], msg.path);
    case 'OPEN':
    case 'BDEV':
      return build(msg.kind, [[4, msg.openFlags], [4, msg.createMode], [4, msg.requestFlags], [4, msg.blockSize]], msg.path);
    case 'TYPE':
      return build('TYPE', [[4, msg.fsopenFlags]]);
    case 'NAME':
      return build('NAME', [], msg.source);
    case 'MNTP':
      return build('MNTP', [[2, msg.expectedFormat], [2, 0]], msg.path);
    case 'OPTS':
    case 'MTAB':
      return build(msg.kind, [], msg.options);
    case 'DOIT':
      return build('DOIT', [[4, msg.msFlags]]);
    case 'REPL':
      return build('REPL', [[4, msg.error]]);
    case 'BYEE':
      return build('BYEE', [[4, msg.exitCode]]);
  }
}

// ------------------------------------------------------------------ decode

/** Reads fields in order and insists the message holds exactly them. */
class Reader {
  private off = 4;
  constructor(
    private readonly buf: Buffer,
    private readonly kind: MagicName,
  ) {}

  private need(n: number): void {
    if (this.off + n > this.buf.length) {
      throw new ProtocolError('truncated', `${this.kind} is ${this.buf.length} bytes, too short for its fields`);
    }
  }

  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.off);
    this.off += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }

  padding16(): void {
    if (this.u16() !== 0) throw new ProtocolError('nonzero-padding', `${this.kind} has non-zero padding`);
  }

  /** The rest of the message: a string that must end in its only NUL. */
  string(): string {
    const rest = this.buf.subarray(this.off);
    if (rest.length === 0 || rest[rest.length - 1] !== 0) {
      throw new ProtocolError('missing-nul', `${this.kind} string is not NUL-terminated`);
    }
    const nul = rest.indexOf(0);
    if (nul !== rest.length - 1) {
      throw new ProtocolError('embedded-nul', `${this.kind} string has a NUL before its end`);
    }
    // Paths are compared with the command line as strings; a lossy decode
    // could make two different byte strings look alike, so refuse it.
    if (!isUtf8(rest.subarray(0, nul))) {
      throw new ProtocolError('bad-encoding', `${this.kind} string is not valid UTF-8`);
    }
    this.off = this.buf.length;
    return rest.toString('utf8', 0, nul);
  }

  end(): void {
    if (this.off !== this.buf.length) {
      throw new ProtocolError('trailing-bytes', `${this.kind} has ${this.buf.length - this.off} bytes after its last field`);
    }
  }
}

function checkFlags(kind: MagicName, field: string, value: number, allowed: number): number {
  if ((value & ~allowed) !== 0) {
    throw new ProtocolError('unknown-flags', `${kind} ${field} 0x${value.toString(16)} has bits outside 0x${allowed.toString(16)}`);
  }
  return value;
}

/**
 * Decodes one received message. `from` is who must have sent it: a helper
 * decodes with 'server', a server with 'helper'.
 */
export function decode(buf: Buffer, from: Sender): Message {
  if (buf.length > MAX_MESSAGE_SIZE) {
    throw new ProtocolError('oversize', `message of ${buf.length} bytes, more than ${MAX_MESSAGE_SIZE}`);
  }
  if (buf.length < 4) throw new ProtocolError('truncated', `message of ${buf.length} bytes has no magic`);
  const magic = buf.readUInt32BE(0);
  const kind = KIND_BY_MAGIC.get(magic);
  if (kind === undefined) throw new ProtocolError('unknown-magic', `unknown magic 0x${magic.toString(16).padStart(8, '0')}`);
  if (SENT_BY[kind] !== from) {
    throw new ProtocolError('wrong-direction', `${kind} is sent by the ${SENT_BY[kind]}, not the ${from}`);
  }
  const r = new Reader(buf, kind);
  const msg = decodeBody(kind, r);
  r.end();
  return msg;
}

function decodeBody(kind: MagicName, r: Reader): Message {
  switch (kind) {
    case 'SAFT': {
      const minVersion = r.u16();
      const maxVersion = r.u16();
      const flags = checkFlags(kind, 'flags', r.u32(), HELLO_FLAGS_ALL);
      if (minVersion > maxVersion) throw new ProtocolError('bad-version', `SAFT min_version ${minVersion} > max_version ${maxVersion}`);
      return { kind, minVersion, maxVersion, flags };
    }
    case 'LAST': {
      const version = r.u16();
      r.padding16();
      return { kind, version };
    }
    case 'FILE':
      return { kind, error: r.u32(), path: r.string() };
    case 'OPEN':
    case 'BDEV': {
      const openFlags = r.u32();
      const createMode = r.u32();
      const requestFlags = checkFlags(kind, 'request_flags', r.u32(), REQUEST_FLAGS_ALL);
      const blockSize = r.u32();
      return { kind, openFlags, createMode, requestFlags, blockSize, path: r.string() };
    }
    case 'TYPE':
      return { kind, fsopenFlags: checkFlags(kind, 'fsopen_flags', r.u32(), FSOPEN_FLAGS_ALL) };
    case 'NAME':
      return { kind, source: r.string() };
    case 'MNTP': {
      const expectedFormat = r.u16();
      r.padding16();
      if (!MNTP_FORMATS.includes(expectedFormat)) {
        throw new ProtocolError('bad-format', `MNTP expected_fmt 0o${expectedFormat.toString(8)} is not S_IFDIR, S_IFREG or 0`);
      }
      return { kind, expectedFormat, path: r.string() };
    }
    case 'OPTS':
    case 'MTAB':
      return { kind, options: r.string() };
    case 'DOIT':
      return { kind, msFlags: r.u32() };
    case 'REPL':
      return { kind, error: r.u32() };
    case 'BYEE':
      return { kind, exitCode: r.u32() };
  }
}
