/**
 * Validation of what a caller sends the broker, before anything is opened:
 * one function per method, pure (test/unit/broker-request.test.ts). Every
 * refusal is one line that says what was wrong and what would be accepted.
 */
import * as path from 'node:path';

/** Mount options an ordinary user may ask for; nosuid,nodev are forced whatever is asked. */
export const USER_OPTIONS: ReadonlySet<string> = new Set([
  'ro', 'rw', 'noatime', 'relatime', 'nodiratime', 'noexec', 'exec', 'sync', 'async', 'dirsync', 'nosuid', 'nodev',
]);

/** Options forced on every mount the broker makes for an ordinary user. */
export const FORCED_USER_OPTIONS = ['nosuid', 'nodev'] as const;

export interface MountRequest {
  /** absolute path, or null: the broker picks /run/media/$USER/<label> */
  mountpoint: string | null;
  readOnly: boolean;
  /** the type the caller expects (-t); the probe decides anyway */
  fsType: string | undefined;
  options: string[];
}

export class RequestError extends Error {}

const PATH_MAX = 4096;

/** A variant's value as dbus-next hands it over ({ signature, value }). */
interface VariantLike {
  signature: string;
  value: unknown;
}

function isVariant(v: unknown): v is VariantLike {
  return typeof v === 'object' && v !== null && 'signature' in v && 'value' in v;
}

/** An absolute, normalized path without NUL bytes; '' means "not given". */
export function checkPath(p: unknown, what: string): string | null {
  if (typeof p !== 'string') throw new RequestError(`${what} must be a string`);
  if (p === '') return null;
  if (p.length > PATH_MAX || p.includes('\0')) throw new RequestError(`${what} is not a valid path`);
  if (!p.startsWith('/')) throw new RequestError(`${what} ${p} is not an absolute path (the client makes it absolute)`);
  if (path.posix.normalize(p) !== p && path.posix.normalize(p) !== p.replace(/\/+$/, '')) {
    throw new RequestError(`${what} ${p} is not in normal form (no '.', '..' or '//')`);
  }
  return p.length > 1 ? p.replace(/\/+$/, '') : p;
}

/** Mount(h source, s mountpoint, a{sv} options): the options and the mountpoint. */
export function parseMountRequest(mountpoint: unknown, options: unknown): MountRequest {
  const req: MountRequest = { mountpoint: checkPath(mountpoint, 'mountpoint'), readOnly: false, fsType: undefined, options: [] };
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new RequestError('options must be a{sv}');
  for (const [key, v] of Object.entries(options as Record<string, unknown>)) {
    if (!isVariant(v)) throw new RequestError(`option ${key} is not a variant`);
    switch (key) {
      case 'read-only':
        if (v.signature !== 'b') throw new RequestError("option 'read-only' must be a boolean (b)");
        req.readOnly = v.value === true;
        break;
      case 'type':
        if (v.signature !== 's' || typeof v.value !== 'string' || !/^[a-z0-9][a-z0-9_.]{0,31}$/.test(v.value)) {
          throw new RequestError("option 'type' must be a filesystem type name such as 'vfat' (s)");
        }
        req.fsType = v.value === 'auto' ? undefined : v.value;
        break;
      case 'options': {
        if (v.signature !== 's' || typeof v.value !== 'string') throw new RequestError("option 'options' must be a comma-separated string (s)");
        const list = v.value.split(',').filter((o) => o !== '');
        const bad = list.filter((o) => !USER_OPTIONS.has(o));
        if (bad.length > 0) {
          throw new RequestError(`mount option(s) ${bad.join(',')} are not available to users; allowed: ${[...USER_OPTIONS].join(',')}`);
        }
        req.options = list;
        if (list.includes('ro')) req.readOnly = true;
        break;
      }
      default:
        throw new RequestError(`unknown option '${key}'; known: read-only (b), type (s), options (s)`);
    }
  }
  return req;
}

/**
 * A label as a directory name under /run/media/$USER, as udisks2 makes it:
 * '/' becomes '_', nothing hidden, never empty.
 */
export function mountDirName(label: string | null, uuid: string | null, fallback: string): string {
  const raw = (label ?? '').trim() || (uuid ?? '').trim() || fallback;
  let name = raw.replace(/[/\0]/g, '_').replace(/[\x00-\x1f\x7f]/g, '_');
  if (name.startsWith('.')) name = `_${name.slice(1)}`;
  return name.slice(0, 200) || 'disk';
}

/** fdinfo's flags (octal): the access mode, and whether it is an O_PATH fd that proves no right at all. */
export function fdAccess(fdinfo: string): { mode: 'read' | 'write' | 'read-write'; opath: boolean } {
  const m = /^flags:\s*([0-7]+)$/m.exec(fdinfo);
  if (!m) throw new RequestError('cannot read the source fd flags');
  const flags = parseInt(m[1]!, 8);
  const acc = flags & 3;
  return { mode: acc === 0 ? 'read' : acc === 1 ? 'write' : 'read-write', opath: (flags & 0o10000000) !== 0 };
}
