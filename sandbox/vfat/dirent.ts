/**
 * Directories as byte arrays of 32-byte slots: parsing short entries and
 * VFAT long-name runs (ordinals, checksums), timestamps, and the helpers
 * that build new short entries. Parsing trusts nothing: a broken long-name
 * run falls back to the short name, names a POSIX path cannot hold are
 * skipped with a log line, the label entry is not a file.
 *
 * Timestamps: FAT stores local time without a zone; this engine treats it
 * as UTC (as Linux does with tz=UTC). Resolution: modification 2 s,
 * creation 10 ms, access a date only.
 */
import { FatLogger } from './errors';
import { displayShortName, lfnChecksum, lfnUnits, ShortnameMode, upcase } from './names';
import { FatType } from './bpb';

export const ATTR_RO = 0x01;
export const ATTR_HIDDEN = 0x02;
export const ATTR_SYSTEM = 0x04;
export const ATTR_VOLUME = 0x08;
export const ATTR_DIR = 0x10;
export const ATTR_ARCHIVE = 0x20;
export const ATTR_LFN = 0x0f;

export interface DirEntry {
  /** the name readdir shows */
  name: string;
  /** upcase(name), for case-insensitive lookups */
  key: string;
  /** upcase of the short name as displayed, which lookups also match */
  shortKey: string;
  /** the 32-byte short entry, copied */
  raw: Buffer;
  attr: number;
  isDir: boolean;
  cluster: number;
  size: number;
  /** byte offset of the short entry in the directory */
  offset: number;
  /** byte offset of its first long-name slot (== offset without one) */
  firstSlot: number;
}

export interface ParsedDir {
  entries: DirEntry[];
  /** offset of the end marker, or the directory's length */
  end: number;
  /** raw 11-byte short names in use (latin1), for short-name generation */
  shortNames: Set<string>;
  label: string | null;
}

export function entryCluster(raw: Buffer, fatType: FatType): number {
  const lo = raw.readUInt16LE(26);
  return fatType === 32 ? ((raw.readUInt16LE(20) << 16) | lo) >>> 0 : lo;
}

export function setEntryCluster(raw: Buffer, cluster: number, fatType: FatType): void {
  raw.writeUInt16LE(cluster & 0xffff, 26);
  raw.writeUInt16LE(fatType === 32 ? (cluster >>> 16) & 0xffff : 0, 20);
}

export function parseDir(buf: Buffer, fatType: FatType, mode: ShortnameMode, what: string, log: FatLogger): ParsedDir {
  const entries: DirEntry[] = [];
  const shortNames = new Set<string>();
  const seen = new Set<string>();
  let label: string | null = null;
  let lfn: number[][] | null = null;
  let lfnNext = 0;
  let lfnSum = 0;
  let lfnStart = 0;
  let end = buf.length;
  for (let off = 0; off + 32 <= buf.length; off += 32) {
    const b0 = buf[off];
    if (b0 === 0x00) {
      end = off;
      break;
    }
    if (b0 === 0xe5) {
      lfn = null;
      continue;
    }
    const attr = buf[off + 11];
    if ((attr & 0x3f) === ATTR_LFN) {
      const slot = buf.subarray(off, off + 32);
      const ord = b0 & 0x3f;
      if (b0 & 0x40) {
        if (ord < 1 || ord > 20) {
          lfn = null;
          continue;
        }
        lfn = new Array(ord);
        lfn[ord - 1] = lfnUnits(slot);
        lfnNext = ord - 1;
        lfnSum = slot[13];
        lfnStart = off;
      } else if (lfn && ord === lfnNext && ord >= 1 && slot[13] === lfnSum) {
        lfn[ord - 1] = lfnUnits(slot);
        lfnNext = ord - 1;
      } else {
        lfn = null;
      }
      continue;
    }
    const raw = Buffer.from(buf.subarray(off, off + 32));
    const short11 = raw.subarray(0, 11);
    shortNames.add(short11.toString('latin1'));
    const pendingLfn = lfn;
    const pendingNext = lfnNext;
    lfn = null;
    if (attr & ATTR_VOLUME) {
      if (!(attr & ATTR_DIR) && label === null) label = short11.toString('latin1').replace(/ +$/, '');
      continue;
    }
    if (b0 === 0x2e) continue; // "." and ".." (and nothing else may start with a dot in a short name)
    let name: string | null = null;
    let firstSlot = off;
    if (pendingLfn && pendingNext === 0 && lfnSum === lfnChecksum(short11)) {
      const units = pendingLfn.flat();
      let s = '';
      for (const u of units) {
        if (u === 0) break;
        s += String.fromCharCode(u);
      }
      if (s.length > 0 && !/[\u0000/]/.test(s) && s !== '.' && s !== '..') {
        name = s;
        firstSlot = lfnStart;
      } else {
        log(`${what}: long name at offset ${lfnStart} is not usable; using the short name`);
      }
    }
    const ntCase = raw[12];
    const shortDisplay = displayShortName(short11, ntCase, mode);
    if (name === null) {
      name = shortDisplay;
      if (name.length === 0 || /[\u0000-\u001f/]/.test(name) || name === '.' || name === '..') {
        log(`${what}: entry at offset ${off} has an invalid short name; skipped`);
        continue;
      }
    }
    const key = upcase(name);
    if (seen.has(key)) {
      log(`${what}: duplicate name ${JSON.stringify(name)} at offset ${off}; skipped`);
      continue;
    }
    seen.add(key);
    entries.push({
      name,
      key,
      shortKey: upcase(displayShortName(short11, 0, 'win95')),
      raw,
      attr,
      isDir: (attr & ATTR_DIR) !== 0,
      cluster: entryCluster(raw, fatType),
      size: raw.readUInt32LE(28),
      offset: off,
      firstSlot,
    });
  }
  return { entries, end, shortNames, label };
}

// ------------------------------------------------------------ timestamps

export function fatDateTime(ms: number): { date: number; time: number; tenths: number } {
  const d = new Date(ms);
  let year = d.getUTCFullYear();
  if (year < 1980) return { date: (1 << 5) | 1, time: 0, tenths: 0 };
  if (year > 2107) {
    year = 2107;
    return { date: ((year - 1980) << 9) | (12 << 5) | 31, time: (23 << 11) | (59 << 5) | 29, tenths: 199 };
  }
  const date = ((year - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate();
  const time = (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | (d.getUTCSeconds() >> 1);
  const tenths = (d.getUTCSeconds() & 1) * 100 + Math.floor(d.getUTCMilliseconds() / 10);
  return { date, time, tenths };
}

/** Milliseconds since the epoch for a FAT date/time; out-of-range fields are clamped. */
export function fromFatDateTime(date: number, time: number, tenths = 0): number {
  const year = 1980 + (date >> 9);
  const month = Math.min(12, Math.max(1, (date >> 5) & 0x0f));
  const day = Math.min(31, Math.max(1, date & 0x1f));
  const h = Math.min(23, time >> 11);
  const m = Math.min(59, (time >> 5) & 0x3f);
  const s = Math.min(29, time & 0x1f) * 2;
  return Date.UTC(year, month - 1, day, h, m, s) + Math.min(199, tenths) * 10;
}

export interface EntryTimes {
  mtime: number;
  atime: number;
  crtime: number;
}

export function entryTimes(raw: Buffer): EntryTimes {
  const mtime = fromFatDateTime(raw.readUInt16LE(24), raw.readUInt16LE(22));
  const adate = raw.readUInt16LE(18);
  const cdate = raw.readUInt16LE(16);
  return {
    mtime,
    atime: adate ? fromFatDateTime(adate, 0) : mtime,
    crtime: cdate ? fromFatDateTime(cdate, raw.readUInt16LE(14), raw[13]) : mtime,
  };
}

export function setMtime(raw: Buffer, ms: number): void {
  const t = fatDateTime(ms);
  raw.writeUInt16LE(t.time, 22);
  raw.writeUInt16LE(t.date, 24);
}

export function setAtime(raw: Buffer, ms: number): void {
  raw.writeUInt16LE(fatDateTime(ms).date, 18);
}

export function newShortEntry(short11: Buffer, attr: number, ntCase: number, cluster: number, fatType: FatType, nowMs: number): Buffer {
  const raw = Buffer.alloc(32);
  short11.copy(raw, 0, 0, 11);
  raw[11] = attr;
  raw[12] = ntCase;
  const t = fatDateTime(nowMs);
  raw[13] = t.tenths;
  raw.writeUInt16LE(t.time, 14);
  raw.writeUInt16LE(t.date, 16);
  raw.writeUInt16LE(t.date, 18);
  raw.writeUInt16LE(t.time, 22);
  raw.writeUInt16LE(t.date, 24);
  setEntryCluster(raw, cluster, fatType);
  return raw;
}
