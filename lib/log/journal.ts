/**
 * Structured logging to the systemd journal over its native protocol: one
 * datagram per entry to /run/systemd/journal/socket, made of `KEY=value\n`
 * fields (docs/platform.md §3). fusegate's own fields are upper-case and start with
 * FUSEGATE_, so an administrator can ask
 * `journalctl SYSLOG_IDENTIFIER=fusegate FUSEGATE_RULE=usb-sandbox`.
 *
 * Where no journal listens (a container without systemd, a rescue shell) the
 * entry goes to stderr instead, as one readable line, so nothing is lost.
 */
import { sendDatagram, SyscallError } from '../native';
import { writeOut } from '../output';

export const JOURNAL_SOCKET = '/run/systemd/journal/socket';

/** syslog priorities, as journald stores them in PRIORITY= */
export const Priority = {
  EMERG: 0,
  ALERT: 1,
  CRIT: 2,
  ERR: 3,
  WARNING: 4,
  NOTICE: 5,
  INFO: 6,
  DEBUG: 7,
} as const;
export type PriorityValue = (typeof Priority)[keyof typeof Priority];

export type FieldValue = string | number | boolean | undefined | null;
export type Fields = Record<string, FieldValue>;

/** A journal field name: upper-case letters, digits and '_', not starting with '_' (checked without a regular expression, which V8 would compile on every mount). */
function isFieldName(name: string): boolean {
  if (name.length === 0 || name[0] === '_') return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (!((c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95)) return false;
  }
  return true;
}

/**
 * Serializes one entry. Values with a newline use the binary form
 * (name, '\n', 64-bit little-endian length, value, '\n'); all others the text
 * form. Field names that journald would drop are refused here instead, so a
 * typo shows up in tests rather than as a silently missing field.
 */
export function serializeEntry(fields: Fields): Buffer {
  // Text-form fields are joined into one string and encoded once; only a
  // value with a newline needs the binary form and its own buffers.
  let text = '';
  const parts: Buffer[] = [];
  for (const [name, raw] of Object.entries(fields)) {
    if (raw === undefined || raw === null) continue;
    if (!isFieldName(name)) throw new Error(`invalid journal field name '${name}'`);
    const value = String(raw);
    if (!value.includes('\n')) {
      text += `${name}=${value}\n`;
      continue;
    }
    const bytes = Buffer.from(value, 'utf8');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(bytes.length));
    parts.push(Buffer.from(text + name + '\n'), len, bytes, Buffer.from('\n'));
    text = '';
  }
  if (parts.length === 0) return Buffer.from(text, 'utf8');
  parts.push(Buffer.from(text, 'utf8'));
  return Buffer.concat(parts);
}

export interface LoggerOptions {
  /** SYSLOG_IDENTIFIER of every entry */
  identifier: string;
  /** the journal's socket; FUSEGATE_JOURNAL_SOCKET overrides it for tests */
  socketPath?: string;
  /** where entries go when no journal listens */
  fallback?: 'stderr' | 'silent';
}

export class Logger {
  private readonly socketPath: string;
  private journalMissing = false;

  constructor(private readonly opts: LoggerOptions) {
    this.socketPath = opts.socketPath ?? process.env.FUSEGATE_JOURNAL_SOCKET ?? JOURNAL_SOCKET;
  }

  /** Logs one entry; never throws, because logging must not break a mount. */
  log(priority: PriorityValue, message: string, fields: Fields = {}): void {
    const entry: Fields = {
      MESSAGE: message,
      PRIORITY: priority,
      SYSLOG_IDENTIFIER: this.opts.identifier,
      SYSLOG_PID: process.pid,
      ...fields,
    };
    if (!this.journalMissing && this.sendToJournal(entry)) return;
    if (this.opts.fallback !== 'silent') this.writeToStderr(priority, message, fields);
  }

  info(message: string, fields?: Fields): void {
    this.log(Priority.INFO, message, fields);
  }
  notice(message: string, fields?: Fields): void {
    this.log(Priority.NOTICE, message, fields);
  }
  warning(message: string, fields?: Fields): void {
    this.log(Priority.WARNING, message, fields);
  }
  error(message: string, fields?: Fields): void {
    this.log(Priority.ERR, message, fields);
  }
  debug(message: string, fields?: Fields): void {
    this.log(Priority.DEBUG, message, fields);
  }

  private sendToJournal(entry: Fields): boolean {
    try {
      sendDatagram(this.socketPath, serializeEntry(entry));
      return true;
    } catch (err) {
      // No journal here: remember it, so later entries skip straight to stderr.
      if (err instanceof SyscallError && (err.code === 'ENOENT' || err.code === 'ECONNREFUSED')) {
        this.journalMissing = true;
      }
      return false;
    }
  }

  private writeToStderr(priority: PriorityValue, message: string, fields: Fields): void {
    const extra = Object.entries(fields)
      .filter(([, v]) => v !== undefined && v !== null)
      .map(([k, v]) => `${k}=${JSON.stringify(String(v))}`)
      .join(' ');
    // Under systemd (a sandboxed unit cannot open the journal socket) stderr
    // already goes to the journal, which names the unit: give it the priority
    // in the <N> prefix it parses, not a second identifier.
    const prefix = process.env.JOURNAL_STREAM ? `<${priority}>` : `${this.opts.identifier}[${process.pid}]: `;
    writeOut(2, `${prefix}${message}${extra ? ' ' + extra : ''}\n`);
  }
}

export function createLogger(opts: LoggerOptions): Logger {
  return new Logger(opts);
}
