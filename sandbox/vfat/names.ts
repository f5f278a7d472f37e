/**
 * File names: validation, case folding, VFAT long-name slots and 8.3 short
 * names generated the way Linux's vfat driver does (basis name, `~N` tails),
 * and the shortname= display/create modes.
 *
 * Short-name characters: ASCII letters are uppercased, `+,;=[]` and every
 * non-ASCII character become `_` (lossy: the name then always gets a long
 * name and a numeric tail). Existing short names are decoded as code page
 * 437, the default of Linux and mtools.
 */
import { FatError } from './errors';

export type ShortnameMode = 'lower' | 'win95' | 'winnt' | 'mixed';

export const CP437_HIGH =
  'ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0';

export const MAX_NAME_UNITS = 255;
export const CASE_LOWER_BASE = 0x08;
export const CASE_LOWER_EXT = 0x10;

/** Uppercases per UTF-16 unit, as FAT's upcase tables do (no length-changing mappings like ß → SS). */
export function upcase(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    const code = ch.charCodeAt(0);
    if (code < 0x80) {
      out += code >= 0x61 && code <= 0x7a ? String.fromCharCode(code - 32) : ch;
      continue;
    }
    if (code >= 0xd800 && code <= 0xdfff) {
      out += ch;
      continue;
    }
    const up = ch.toUpperCase();
    out += up.length === 1 ? up : ch;
  }
  return out;
}

const BAD_LONG = new Set(['"', '*', '/', ':', '<', '>', '?', '\\', '|']);

/**
 * Checks a name given by a caller and returns it as stored: trailing dots
 * are dropped (as Linux vfat and Windows do). EINVAL for empty, `.`/`..`,
 * control characters and `"*\/:<>?\|`; ENAMETOOLONG above 255 UTF-16 units.
 */
export function checkName(name: string): string {
  if (name === '.' || name === '..') throw new FatError('EINVAL', `"${name}" cannot be created`);
  let n = name;
  while (n.endsWith('.')) n = n.slice(0, -1);
  if (n.length === 0) throw new FatError('EINVAL', `invalid name "${name}"`);
  for (const ch of n) {
    const c = ch.codePointAt(0)!;
    if (c < 0x20 || c === 0x7f || BAD_LONG.has(ch)) throw new FatError('EINVAL', `invalid character in name ${JSON.stringify(name)}`);
    if (c >= 0xd800 && c <= 0xdfff) throw new FatError('EINVAL', 'unpaired surrogate in name');
  }
  if (n.length > MAX_NAME_UNITS) throw new FatError('ENAMETOOLONG', `name of ${n.length} UTF-16 units (at most ${MAX_NAME_UNITS})`);
  return n;
}

/** For lookups: the same rules without throwing for the too-long case; null when the name cannot exist. */
export function lookupForm(name: string): string | null {
  let n = name;
  while (n.endsWith('.')) n = n.slice(0, -1);
  if (n.length === 0 || n.length > MAX_NAME_UNITS) return null;
  return n;
}

export function lfnChecksum(short11: Buffer): number {
  let sum = 0;
  for (let i = 0; i < 11; i++) sum = ((((sum & 1) << 7) | (sum >> 1)) + short11[i]) & 0xff;
  return sum;
}

function cp437Char(b: number): string {
  return b < 0x80 ? String.fromCharCode(b) : CP437_HIGH[b - 0x80];
}

/** The name a short-only entry shows, per shortname= mode (Linux: lower lowercases all, winnt/mixed honour the NT case bits). */
export function displayShortName(raw: Buffer, ntCase: number, mode: ShortnameMode): string {
  const bytes = Buffer.from(raw.subarray(0, 11));
  if (bytes[0] === 0x05) bytes[0] = 0xe5;
  let base = '';
  let ext = '';
  let baseEnd = 8;
  while (baseEnd > 0 && bytes[baseEnd - 1] === 0x20) baseEnd--;
  let extEnd = 11;
  while (extEnd > 8 && bytes[extEnd - 1] === 0x20) extEnd--;
  for (let i = 0; i < baseEnd; i++) base += cp437Char(bytes[i]);
  for (let i = 8; i < extEnd; i++) ext += cp437Char(bytes[i]);
  const lowerAscii = (s: string) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());
  if (mode === 'lower') {
    base = lowerAscii(base);
    ext = lowerAscii(ext);
  } else if (mode === 'winnt' || mode === 'mixed') {
    if (ntCase & CASE_LOWER_BASE) base = lowerAscii(base);
    if (ntCase & CASE_LOWER_EXT) ext = lowerAscii(ext);
  }
  return ext ? `${base}.${ext}` : base;
}

const SHORT_OK = new Set("!#$%&'()-@^_`{}~".split(''));
const SHORT_REPLACE = new Set('+,;=[]'.split(''));

interface PartInfo {
  chars: string; // converted, uppercase
  lossless: boolean;
  upper: boolean; // no lowercase letter in the original
  lower: boolean; // no uppercase letter in the original
}

function convertPart(s: string, max: number): PartInfo {
  let chars = '';
  let lossless = true;
  let upper = true;
  let lower = true;
  for (const ch of s) {
    if (ch === ' ' || ch === '.') {
      lossless = false;
      continue;
    }
    const c = ch.codePointAt(0)!;
    let out: string;
    if (c >= 0x61 && c <= 0x7a) {
      upper = false;
      out = ch.toUpperCase();
    } else if (c >= 0x41 && c <= 0x5a) {
      lower = false;
      out = ch;
    } else if (c >= 0x30 && c <= 0x39) out = ch;
    else if (SHORT_OK.has(ch)) out = ch;
    else {
      out = '_';
      lossless = false;
      if (!SHORT_REPLACE.has(ch) && ch.toLowerCase() !== ch.toUpperCase()) {
        if (ch === ch.toLowerCase()) upper = false;
        else lower = false;
      }
    }
    if (chars.length < max) chars += out;
    else lossless = false;
  }
  return { chars, lossless, upper, lower };
}

export interface ShortNameChoice {
  /** 11 bytes, space padded */
  raw: Buffer;
  ntCase: number;
  /** whether long-name slots must be written */
  needLfn: boolean;
}

function pack(base: string, ext: string): Buffer {
  const b = Buffer.alloc(11, 0x20);
  b.write(base.slice(0, 8), 0, 'latin1');
  b.write(ext.slice(0, 3), 8, 'latin1');
  if (b[0] === 0xe5) b[0] = 0x05;
  return b;
}

/**
 * Chooses the short name for a new entry `name` (already checked), like
 * Linux vfat_create_shortname: a name that is a valid 8.3 name is stored
 * as a short entry alone when the mode allows its case (win95/mixed/lower:
 * all upper case; winnt: each part all upper or all lower, with the NT case
 * bits); otherwise a long name is written and the short name is the basis
 * name, with `~N` numeric tails when the basis is lossy or taken.
 * `taken(raw)` says whether a short name exists in the directory.
 */
export function chooseShortName(name: string, mode: ShortnameMode, taken: (raw: Buffer) => boolean): ShortNameChoice {
  // Split like Linux: the extension follows the last dot, unless only dots/spaces precede it.
  let baseStr = name;
  let extStr = '';
  let hasExt = false;
  const lastDot = name.lastIndexOf('.');
  if (lastDot > 0 && lastDot < name.length - 1) {
    const before = name.slice(0, lastDot);
    if (/[^. ]/.test(before)) {
      baseStr = before;
      extStr = name.slice(lastDot + 1);
      hasExt = true;
    }
  }
  const base = convertPart(baseStr, 8);
  const ext = convertPart(extStr, 3);
  const baseFits = [...baseStr].length <= 8;
  const extFits = [...extStr].length <= 3;
  let isShort = base.lossless && ext.lossless && baseFits && extFits && base.chars.length > 0 && (!hasExt || ext.chars.length > 0);
  if (lastDot === 0) isShort = false;
  const basis = base.chars.length > 0 ? base.chars : '_';
  if (isShort) {
    const raw = pack(basis, ext.chars);
    if (!taken(raw)) {
      if (mode === 'winnt') {
        if ((base.upper || base.lower) && (ext.upper || ext.lower)) {
          let ntCase = 0;
          if (!base.upper && base.lower) ntCase |= CASE_LOWER_BASE;
          if (!ext.upper && ext.lower) ntCase |= CASE_LOWER_EXT;
          return { raw, ntCase, needLfn: false };
        }
        return { raw, ntCase: 0, needLfn: true };
      }
      if (base.upper && ext.upper) return { raw, ntCase: 0, needLfn: false };
      return { raw, ntCase: 0, needLfn: true };
    }
  }
  for (let n = 1; n <= 999999; n++) {
    const tail = `~${n}`;
    const keep = Math.min(basis.length, n < 10 ? 6 : 8 - tail.length);
    const raw = pack(basis.slice(0, keep) + tail, ext.chars);
    if (!taken(raw)) return { raw, ntCase: 0, needLfn: true };
  }
  throw new FatError('ENOSPC', 'no free short name for this basis');
}

/** The long-name slots for `name`, in on-disk order (highest ordinal first). */
export function buildLfnSlots(name: string, checksum: number): Buffer[] {
  const units: number[] = [];
  for (let i = 0; i < name.length; i++) units.push(name.charCodeAt(i));
  const count = Math.ceil(units.length / 13);
  if (units.length % 13 !== 0) units.push(0);
  while (units.length < count * 13) units.push(0xffff);
  const slots: Buffer[] = [];
  for (let ord = count; ord >= 1; ord--) {
    const b = Buffer.alloc(32);
    b[0] = ord | (ord === count ? 0x40 : 0);
    b[11] = 0x0f;
    b[12] = 0;
    b[13] = checksum;
    const part = units.slice((ord - 1) * 13, ord * 13);
    LFN_OFFSETS.forEach((off, i) => b.writeUInt16LE(part[i], off));
    slots.push(b);
  }
  return slots;
}

export const LFN_OFFSETS = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];

/** The 13 name units of one long-name slot (0x0000 terminator and 0xFFFF fill included). */
export function lfnUnits(slot: Buffer): number[] {
  return LFN_OFFSETS.map((off) => slot.readUInt16LE(off));
}
