/**
 * The preflight's two messages, on a SOCK_SEQPACKET connection to
 * fusegate-check.socket (docs/preflight.md §3). Each is one packet;
 * integers are big-endian; strings end with exactly one NUL at the last byte
 * of their field, as in the service-mount protocol (lib/protocol).
 *
 *   CHECK  helper → checker, with exactly one fd (the device) by SCM_RIGHTS
 *     u32 magic 'FGCK' | u8 version 1 | u8 mode (1 check, 2 repair)
 *     | u8 flags (1 force) | u8 0 | u32 timeout ms | type NUL
 *   VERDICT  checker → helper, never with an fd
 *     u32 magic 'FGVD' | u8 version 1 | u8 verdict (0 clean, 1 marked,
 *     2 damaged, 3 failed) | u8 flags (1 repaired) | u8 0 | i32 last exit
 *     status (-1: killed or never ran) | u32 elapsed ms | u16 checker length
 *     | checker NUL | words NUL
 *
 * decode is strict and names the rule a message broke (PreflightRule), so a
 * test or the journal can say exactly what was wrong. What the fields mean
 * (is the type known, is the fd a device) is the receiver's business.
 */
import { isUtf8 } from 'node:buffer';
import { FusegateError, MountExit } from '../errors';
import type { PreflightMode } from './checkers';

export const PREFLIGHT_VERSION = 1;
export const MAGIC_CHECK = 0x4647434b; // 'FGCK'
export const MAGIC_VERDICT = 0x46475644; // 'FGVD'
/** Largest message either side sends; the words are cut to fit. */
export const MAX_PREFLIGHT_MESSAGE = 4096;
/** A filesystem type as blkid names it. */
export const TYPE_RE = /^[a-z0-9][a-z0-9._-]{0,31}$/;
/** Most timeout a request may ask for: more than any mount deadline. */
export const MAX_TIMEOUT_MS = 10 * 60 * 1000;

export type Verdict = 'clean' | 'marked' | 'damaged' | 'failed';
export const VERDICTS: readonly Verdict[] = ['clean', 'marked', 'damaged', 'failed'];
const MODES: readonly PreflightMode[] = ['check', 'repair'];

export interface CheckRequest {
  kind: 'CHECK';
  type: string;
  mode: PreflightMode;
  force: boolean;
  timeoutMs: number;
}

export interface VerdictMessage {
  kind: 'VERDICT';
  verdict: Verdict;
  /** a repair changed the volume (and the check after it decided the verdict) */
  repaired: boolean;
  /** the last checker program's exit status; -1 when it was killed or never ran */
  exitCode: number;
  elapsedMs: number;
  /** the program whose words these are (e.g. 'e2fsck'), '' when none ran */
  checker: string;
  /** what the checker said, bounded, printable */
  words: string;
}

export type PreflightRule =
  | 'oversize'
  | 'truncated'
  | 'unknown-magic'
  | 'bad-version'
  | 'bad-mode'
  | 'bad-verdict'
  | 'unknown-flags'
  | 'nonzero-reserved'
  | 'bad-timeout'
  | 'bad-type'
  | 'missing-nul'
  | 'embedded-nul'
  | 'bad-encoding'
  | 'missing-fd'
  | 'unexpected-fd'
  | 'peer-closed';

export class PreflightMessageError extends FusegateError {
  constructor(
    readonly rule: PreflightRule,
    detail: string,
  ) {
    super(`preflight message refused (${rule}): ${detail}`, {
      hint: 'see the checker\'s log: journalctl -u "fusegate-check@*"',
      exitCode: MountExit.FAILURE,
    });
  }
}

const FLAG_FORCE = 1;
const FLAG_REPAIRED = 1;

/** Printable text only (tabs and newlines kept), so the words can go to a terminal and the journal as they are. */
export function printable(s: string): string {
  return s.replace(/[^\t\n\x20-\x7e\u00a0-\uffff]/g, '?');
}

function terminated(s: string): Buffer {
  return Buffer.from(s + '\0', 'utf8');
}

export function encodeRequest(r: Omit<CheckRequest, 'kind'>): Buffer {
  if (!TYPE_RE.test(r.type)) throw new PreflightMessageError('bad-type', `'${r.type}' is not a filesystem type name`);
  const head = Buffer.alloc(12);
  head.writeUInt32BE(MAGIC_CHECK, 0);
  head.writeUInt8(PREFLIGHT_VERSION, 4);
  head.writeUInt8(MODES.indexOf(r.mode) + 1, 5);
  head.writeUInt8(r.force ? FLAG_FORCE : 0, 6);
  head.writeUInt32BE(Math.max(1, Math.min(Math.floor(r.timeoutMs), MAX_TIMEOUT_MS)), 8);
  return Buffer.concat([head, terminated(r.type)]);
}

/** Cuts the words (from the front: the last lines say most) until the message fits. */
export function encodeVerdict(v: Omit<VerdictMessage, 'kind'>): Buffer {
  const checker = terminated(printable(v.checker).slice(0, 64));
  const head = Buffer.alloc(20);
  head.writeUInt32BE(MAGIC_VERDICT, 0);
  head.writeUInt8(PREFLIGHT_VERSION, 4);
  head.writeUInt8(VERDICTS.indexOf(v.verdict), 5);
  head.writeUInt8(v.repaired ? FLAG_REPAIRED : 0, 6);
  head.writeInt32BE(Math.max(-1, Math.min(v.exitCode, 0x7fffffff)), 8);
  head.writeUInt32BE(Math.max(0, Math.min(Math.floor(v.elapsedMs), 0xffffffff)), 12);
  head.writeUInt16BE(checker.length, 16);
  const room = MAX_PREFLIGHT_MESSAGE - head.length - checker.length - 1;
  let words = Buffer.from(printable(v.words), 'utf8');
  if (words.length > room) {
    words = words.subarray(words.length - room);
    // Do not start in the middle of a UTF-8 sequence.
    while (words.length > 0 && (words[0]! & 0xc0) === 0x80) words = words.subarray(1);
  }
  return Buffer.concat([head, checker, words, Buffer.from([0])]);
}

function check(cond: boolean, rule: PreflightRule, detail: string): void {
  if (!cond) throw new PreflightMessageError(rule, detail);
}

/** One NUL-terminated UTF-8 string filling `b` exactly. */
function stringField(b: Buffer, what: string): string {
  check(b.length > 0 && b[b.length - 1] === 0, 'missing-nul', `${what} is not NUL-terminated`);
  check(b.indexOf(0) === b.length - 1, 'embedded-nul', `${what} has a NUL before its end`);
  check(isUtf8(b.subarray(0, b.length - 1)), 'bad-encoding', `${what} is not valid UTF-8`);
  return b.toString('utf8', 0, b.length - 1);
}

function header(buf: Buffer, magic: number, minLength: number, what: string): void {
  check(buf.length > 0, 'peer-closed', 'the other side closed the connection');
  check(buf.length <= MAX_PREFLIGHT_MESSAGE, 'oversize', `${buf.length} bytes, more than ${MAX_PREFLIGHT_MESSAGE}`);
  check(buf.length >= 4, 'truncated', `${buf.length} bytes hold no magic`);
  const m = buf.readUInt32BE(0);
  check(m === magic, 'unknown-magic', `magic 0x${m.toString(16).padStart(8, '0')} is not ${what}`);
  check(buf.length >= minLength, 'truncated', `${what} of ${buf.length} bytes is too short for its fields`);
  check(buf.readUInt8(4) === PREFLIGHT_VERSION, 'bad-version', `version ${buf.readUInt8(4)}, this side speaks ${PREFLIGHT_VERSION}`);
}

/** The checker's side: a request and the number of fds that came with it. */
export function decodeRequest(buf: Buffer, fds: number): CheckRequest {
  header(buf, MAGIC_CHECK, 14, 'CHECK');
  const mode = MODES[buf.readUInt8(5) - 1];
  check(mode !== undefined, 'bad-mode', `mode ${buf.readUInt8(5)} is neither 1 (check) nor 2 (repair)`);
  const flags = buf.readUInt8(6);
  check((flags & ~FLAG_FORCE) === 0, 'unknown-flags', `flags 0x${flags.toString(16)} has bits outside 0x${FLAG_FORCE.toString(16)}`);
  check(buf.readUInt8(7) === 0, 'nonzero-reserved', 'the reserved byte is not 0');
  const timeoutMs = buf.readUInt32BE(8);
  check(timeoutMs > 0 && timeoutMs <= MAX_TIMEOUT_MS, 'bad-timeout', `timeout ${timeoutMs} ms is outside 1..${MAX_TIMEOUT_MS}`);
  const type = stringField(buf.subarray(12), 'the type');
  check(TYPE_RE.test(type), 'bad-type', `'${printable(type)}' is not a filesystem type name`);
  check(fds >= 1, 'missing-fd', 'CHECK carries no device fd');
  check(fds <= 1, 'unexpected-fd', `CHECK carries ${fds} fds, not one`);
  return { kind: 'CHECK', type, mode: mode!, force: (flags & FLAG_FORCE) !== 0, timeoutMs };
}

/** The helper's side: a verdict, which must come without fds. */
export function decodeVerdict(buf: Buffer, fds: number): VerdictMessage {
  header(buf, MAGIC_VERDICT, 20, 'VERDICT');
  check(fds === 0, 'unexpected-fd', 'VERDICT must not carry an fd');
  const verdict = VERDICTS[buf.readUInt8(5)];
  check(verdict !== undefined, 'bad-verdict', `verdict ${buf.readUInt8(5)} is not 0..${VERDICTS.length - 1}`);
  const flags = buf.readUInt8(6);
  check((flags & ~FLAG_REPAIRED) === 0, 'unknown-flags', `flags 0x${flags.toString(16)} has bits outside 0x${FLAG_REPAIRED.toString(16)}`);
  check(buf.readUInt8(7) === 0, 'nonzero-reserved', 'the reserved byte is not 0');
  const exitCode = buf.readInt32BE(8);
  const elapsedMs = buf.readUInt32BE(12);
  const checkerLength = buf.readUInt16BE(16);
  check(20 + checkerLength < buf.length, 'truncated', `checker name of ${checkerLength} bytes leaves no room for the words`);
  const checker = stringField(buf.subarray(20, 20 + checkerLength), 'the checker name');
  const words = stringField(buf.subarray(20 + checkerLength), 'the words');
  return { kind: 'VERDICT', verdict: verdict!, repaired: (flags & FLAG_REPAIRED) !== 0, exitCode, elapsedMs, checker: printable(checker), words: printable(words) };
}
