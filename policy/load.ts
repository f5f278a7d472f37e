/**
 * Loading the policy for a mount, and what happens when it cannot be loaded.
 *
 * Fail closed: the helper never mounts with a policy it could not fully
 * load. It then uses failClosedPolicy(): fixed internal disks listed in
 * /etc/fstab, and images only root can write that fstab names by path, go to
 * the kernel driver (what the system did before fusegate, for mounts the
 * administrator wrote down); everything else is denied with a reason naming
 * the broken file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BACKENDS } from '../lib/backends';
import { FusegateError, MountExit } from '../lib/errors';
import { BUILTIN_DEFAULTS, DEFAULT_POLICY_PATH, POLICY_VERSION } from './schema';
import type { Diagnostic, Policy } from './types';
// Cheap to import: validate.ts requires the (slow to load) yaml package only when called.
import { validatePolicyText } from './validate';

export class PolicyError extends FusegateError {
  readonly file: string;
  readonly diagnostics: Diagnostic[];

  constructor(file: string, diagnostics: Diagnostic[]) {
    const errors = diagnostics.filter((d) => d.severity === 'error');
    const first = errors[0];
    const where = first === undefined ? file : first.line > 0 ? `${file}:${first.line}:${first.column}` : file;
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
    super(`invalid policy ${where}: ${first?.message ?? 'unknown error'}${more}`, {
      hint: first === undefined ? `run 'fusegate policy check ${file}'` : `${first.hint}; 'fusegate policy check ${file}' lists every problem`,
      exitCode: MountExit.USAGE,
    });
    this.file = file;
    this.diagnostics = diagnostics;
  }
}

/**
 * Which file to read: the argument, else $FUSEGATE_POLICY, else
 * /etc/fusegate/policy.yaml. The variable is ignored in a set-uid process:
 * an unprivileged caller must not pick the policy that judges its own mount.
 */
export function policyPath(path?: string): string {
  if (path !== undefined && path !== '') return path;
  const env = process.env.FUSEGATE_POLICY;
  const setuid = process.getuid !== undefined && process.geteuid !== undefined && process.getuid() !== process.geteuid();
  if (env !== undefined && env !== '' && !setuid) return env;
  return DEFAULT_POLICY_PATH;
}

function readPolicyFile(file: string): { text: string } | { diagnostic: Diagnostic } {
  try {
    return { text: fs.readFileSync(file, 'utf8') };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    const hint = code === 'ENOENT'
      ? `install one: cp policy/default-policy.yaml ${DEFAULT_POLICY_PATH} (or run 'fusegate install')`
      : code === 'EACCES' ? 'make it readable by root' : 'check the path';
    return { diagnostic: { file, line: 0, column: 0, severity: 'error', message: `cannot read the policy: ${code} (${(e as Error).message})`, hint } };
  }
}

/** Every diagnostic for a file (errors and warnings); never throws for a bad policy. */
export function checkPolicy(path?: string): Diagnostic[] {
  const file = policyPath(path);
  const read = readPolicyFile(file);
  if ('diagnostic' in read) return [read.diagnostic];
  return validateText(read.text, file).diagnostics;
}

/** Parse and validate text that did not come from a file (tests, `explain --policy -`). */
export function parsePolicy(text: string, file = '(inline policy)'): Policy {
  const r = validateText(text, file);
  if (r.policy === null) throw new PolicyError(file, r.diagnostics);
  return r.policy;
}

function validateText(text: string, file: string): { policy: Policy | null; diagnostics: Diagnostic[] } {
  return validatePolicyText(text, file);
}

export interface LoadOptions {
  /**
   * Where compiled policies are cached between mounts; null disables the
   * cache. Default /run/fusegate when running as root, else no cache.
   */
  cacheDir?: string | null;
}

/**
 * The policy, fully validated, or a PolicyError listing every problem.
 * A cache of validated policies keeps the yaml package off the mount path.
 */
export function loadPolicy(path?: string, opts: LoadOptions = {}): Policy {
  const file = policyPath(path);
  const read = readPolicyFile(file);
  if ('diagnostic' in read) throw new PolicyError(file, [read.diagnostic]);
  const dir = opts.cacheDir === undefined ? defaultCacheDir() : opts.cacheDir;
  const hit = dir === null ? null : cachedPolicy(dir, file, read.text);
  if (hit !== null) return hit;
  const r = validateText(read.text, file);
  if (r.policy === null) throw new PolicyError(file, r.diagnostics);
  if (dir !== null) storeCachedPolicy(dir, file, read.text, r.policy);
  return r.policy;
}

function defaultCacheDir(): string | null {
  return process.geteuid?.() === 0 ? '/run/fusegate' : null;
}

/**
 * The policy the helper uses when the real one is missing or invalid. Only
 * what the administrator listed in /etc/fstab still mounts, on the kernel
 * driver as it would without fusegate, and only where the content is the
 * administrator's: a fixed internal disk. Removable and hot-plug media, loop
 * devices (and dm/md devices over one) and image files are denied even then:
 * a USB stick can copy the UUID or label an fstab line names, and an image
 * is whatever its file's writer made it. (The shipped policy also trusts an
 * image only root can write, named by path; the fail-closed rule stays with
 * what helper/mount-launcher.sh can check without Node.)
 */
export function failClosedPolicy(reason: string, file = policyPath()): Policy {
  return {
    version: 1,
    file: '(built-in fail-closed policy)',
    intercept: [],
    failClosed: { reason },
    defaults: {
      ...BUILTIN_DEFAULTS,
      reason: `the policy ${file} could not be loaded (${reason}); fusegate fails closed and only mounts fixed internal disks listed in /etc/fstab`,
      backends: {},
    },
    rules: [{
      name: 'fail-closed-fstab',
      line: 0,
      // helper/mount-launcher.sh applies the same rule when Node cannot run;
      // test/unit/fail-closed-table.test.ts holds both to one table.
      match: [{ fstab: true, fixed_disk: true }],
      unless: [{ loop: true }, { removable: true }, { bus: ['usb', 'mmc', 'memstick', 'ieee1394', 'thunderbolt'] }],
      action: 'kernel',
      reason: `the policy ${file} could not be loaded (${reason}); this fixed disk (or root-only image) is listed in /etc/fstab, so it goes to the kernel driver`,
    }],
  };
}

/**
 * What the helper calls: the policy, or the fail-closed policy together with
 * the error that made it necessary (for the journal and the user's terminal).
 */
export function loadPolicyForMount(path?: string, opts: LoadOptions = {}): { policy: Policy; error: PolicyError | null } {
  try {
    return { policy: loadPolicy(path, opts), error: null };
  } catch (e) {
    if (!(e instanceof PolicyError)) throw e;
    return { policy: failClosedPolicy(e.message, e.file), error: e };
  }
}

/*
 * The cache of validated policies: loading the yaml package alone takes
 * ~40 ms on the target machines, more than the whole policy step may add to
 * a mount (docs/platform.md §2).
 *
 * An entry holds the exact policy text and a stamp of everything validation
 * depends on (format versions, the backends table, the validator's files);
 * it is used only when both are identical, so an edited policy or an
 * upgraded fusegate is never served a stale result. It lives on tmpfs
 * (/run/fusegate) and is ignored unless owned by the reading user and
 * writable by nobody else: a forged entry would be a forged policy.
 */

const CACHE_FORMAT = 1;

function codeStamp(): string {
  const ext = path.extname(__filename);
  // The validator's files as compiled, and the file this code runs from
  // (a bundle holds them all; then the others are absent).
  const paths = [...['validate', 'shadow', 'schema', 'load'].map((m) => path.join(__dirname, m + ext)), __filename];
  const files = paths.map((p) => {
    try {
      const st = fs.statSync(p);
      return `${path.basename(p)}:${st.size}:${st.mtimeMs}`;
    } catch {
      return `${path.basename(p)}:?`;
    }
  });
  return `${CACHE_FORMAT}/${POLICY_VERSION}/${files.join(',')}/${JSON.stringify(BACKENDS)}`;
}

/** One entry per policy file; FNV-1a of the path keeps names short (a collision only costs a re-parse). */
function entryPath(dir: string, file: string): string {
  let h = 0x811c9dc5;
  for (const ch of path.resolve(file)) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return path.join(dir, `policy-${h.toString(16).padStart(8, '0')}.json`);
}

function trustworthy(st: fs.Stats): boolean {
  return st.uid === (process.geteuid?.() ?? -1) && (st.mode & 0o022) === 0;
}

interface CacheEntry { stamp: string; file: string; text: string; policy: Policy }

function cachedPolicy(dir: string, file: string, text: string): Policy | null {
  let fd = -1;
  try {
    const dst = fs.lstatSync(dir);
    if (!dst.isDirectory() || !trustworthy(dst)) return null;
    fd = fs.openSync(entryPath(dir, file), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    const st = fs.fstatSync(fd);
    if (!st.isFile() || !trustworthy(st)) return null;
    const e = JSON.parse(fs.readFileSync(fd, 'utf8')) as Partial<CacheEntry>;
    if (e.text !== text || e.file !== file || e.stamp !== codeStamp() || !Array.isArray(e.policy?.rules)) return null;
    return e.policy!;
  } catch {
    return null;
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
}

/** Best effort: a cache that cannot be written only costs time. */
function storeCachedPolicy(dir: string, file: string, text: string, policy: Policy): void {
  const target = entryPath(dir, file);
  const tmp = `${target}.${process.pid}.tmp`;
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const dst = fs.lstatSync(dir);
    if (!dst.isDirectory() || !trustworthy(dst)) return;
    const entry: CacheEntry = { stamp: codeStamp(), file, text, policy };
    const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
    try {
      fs.writeSync(fd, JSON.stringify(entry));
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, target);
  } catch {
    try { fs.unlinkSync(tmp); } catch { /* it was never created */ }
  }
}
