/**
 * The mount(8) helper calling convention:
 *
 *   mount.fusegate SPEC DIR [-sfnvr] [-N NS] [-o OPTS] [-t TYPE]
 *
 * mount(8) finds us as /sbin/mount.fusegate (for `-t fusegate` and
 * `-t fusegate.ext4`) or as /sbin/mount.<type> for a type the policy
 * intercepts (then `mount -t vfat`, fstab lines and udisks2 all come here).
 * Options may come in any order, before or after SPEC and DIR.
 *
 * The mount helpers scan their words with helperWords() below, not with
 * util.parseArgs (lib/cli-args.ts, which every other command uses): loading
 * and first running it costs the helper ~1 ms of its 12 ms start-up budget
 * (bench/helper-startup), and mount(8)'s convention is a short fixed one
 * (flag letters, three options with a value, SPEC and DIR) that a dozen
 * lines state exactly, exit statuses and messages included.
 */
import * as path from 'node:path';
import { FusegateError, MountExit } from '../lib/errors';
import { BUILT_SOCKET_DIR } from '../lib/socket-dir';
import { BUILT_CHECK_SOCKET } from '../lib/preflight/socket';
import { TIMEOUTS } from '../lib/timeouts';

export interface HelperArgs {
  source: string;
  mountpoint: string;
  /** -o, split on commas, empty items dropped; -r adds 'ro' */
  options: string[];
  /** the filesystem type asked for: from -t, or from our own name (mount.vfat); undefined means probe */
  requestedType: string | undefined;
  /** -f: decide and report, but do not mount */
  fake: boolean;
  /** -n: do not write utab */
  noMtab: boolean;
  /** -v: print the decision trace */
  verbose: boolean;
  /** -s: tolerate sloppy options (accepted for compatibility; the policy still applies) */
  sloppy: boolean;
  /** -N: mount namespace to mount in (refused: see parseArgs) */
  namespace: string | undefined;
  /** the name we were run as, e.g. 'mount.fusegate' or 'mount.vfat' */
  invokedAs: string;
}

export class UsageError extends FusegateError {
  constructor(message: string) {
    super(message, { hint: "see 'mount.fusegate --help'", exitCode: MountExit.USAGE });
  }
}

export const HELP = `Usage: mount.fusegate SOURCE DIR [-sfnvr] [-N NS] [-o OPTIONS] [-t TYPE]
       mount -t fusegate[.TYPE] SOURCE DIR
       mount.TYPE SOURCE DIR ...            (for types the policy intercepts)

Mount SOURCE (a block device or an image file) on DIR the way the trust
policy in /etc/fusegate/policy.yaml decides: with the kernel's own driver,
through a FUSE server sandboxed in a systemd service, or not at all.

The filesystem type is probed from SOURCE; -t only says what you expect, and
a mismatch is reported. 'auto' probes as well.

Options:
  -o OPTIONS   comma-separated mount options; the policy may force some
               (e.g. nosuid,nodev) and refuse others
  -t TYPE      expected type: TYPE, fusegate.TYPE, or fusegate (probe)
  -r           mount read-only (same as -o ro)
  -f           decide and print the decision, but do not mount
  -n           do not record the mount in /run/mount/utab
  -v           print the facts, every rule tried and the decision
  -s           tolerate options the filesystem does not know (accepted)
  -N NS        not supported: mount(8) enters the namespace itself
  -h, --help   show this text
  -V, --version

Exit status (as mount(8)):
  0   mounted (or, with -f, the policy allows it)
  1   incorrect invocation or permissions (e.g. an unprivileged caller)
  2   system error
  4   internal error
  16  the mount was made but utab could not be written
  32  mount failure: refused by the policy, by the preflight (a dirty volume
      its server cannot serve read-only, or a repair that did not end
      clean), the FUSE service failed, or the kernel refused the mount

Environment:
  FUSEGATE_POLICY       policy file to use instead of /etc/fusegate/policy.yaml
  FUSEGATE_SOCKET_DIR   where backend sockets live instead of ${BUILT_SOCKET_DIR}
  FUSEGATE_CHECK_SOCKET the preflight checker's socket instead of ${BUILT_CHECK_SOCKET}
  FUSEGATE_TIMEOUT      seconds the whole mount may take (default ${TIMEOUTS.mount.defaultMs / 1000})
  FUSEGATE_FSTAB        fstab to consult instead of /etc/fstab (tests)
  These are honoured only because the caller must be root.

Every decision and outcome is logged to the journal:
  journalctl SYSLOG_IDENTIFIER=fusegate
To see why a mount would be refused: fusegate policy explain SOURCE DIR`;

/** One word of a mount or umount helper's command line. */
export type HelperWord =
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'flag'; letter: string }
  | { kind: 'value'; letter: string; value: string }
  | { kind: 'positional'; value: string };

/**
 * The words of a mount(8)/umount(8) helper command line, in order, up to
 * -h/--help or -V/--version. `flags` are the letters that may be grouped
 * (-nv); `valued` the options that take a value (-o OPTS or -oOPTS).
 * Throws a UsageError for an unknown option or a missing value.
 */
export function helperWords(argv: readonly string[], flags: string, valued: string, version = true): HelperWord[] {
  const words: HelperWord[] = [];
  const group = new RegExp(`^-[${flags}]+$`);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-h' || arg === '--help') return [...words, { kind: 'help' }];
    if (version && (arg === '-V' || arg === '--version')) return [...words, { kind: 'version' }];
    const letter = arg[1] ?? '';
    if (arg.length >= 2 && arg[0] === '-' && valued.includes(letter)) {
      const value = arg.length > 2 ? arg.slice(2) : argv[++i];
      if (value === undefined) throw new UsageError(`option ${arg} needs a value`);
      words.push({ kind: 'value', letter, value });
    } else if (group.test(arg)) {
      for (const c of arg.slice(1)) words.push({ kind: 'flag', letter: c });
    } else if (arg.startsWith('-') && arg !== '-') throw new UsageError(`unknown option ${arg}`);
    else words.push({ kind: 'positional', value: arg });
  }
  return words;
}

export type ParseResult = { kind: 'mount'; args: HelperArgs } | { kind: 'help' } | { kind: 'version' };

/** Maps the -t value (and our own name) to the filesystem type asked for. */
function requestedTypeOf(invokedAs: string, typeOption: string | undefined): string | undefined {
  // Our own name says the type only when a mount.<type> link was run (not main.js).
  const fromName = invokedAs.startsWith('mount.') ? invokedAs.slice('mount.'.length) : undefined;
  const t = typeOption ?? fromName ?? '';
  if (t === 'fusegate' || t === 'auto' || t === '') return undefined;
  // `mount -t fusegate.ext4` and `-t fuse.fusegate`-style subtypes both name ext4 / the plain type
  if (t.startsWith('fusegate.')) return t.slice('fusegate.'.length) || undefined;
  return t;
}

export function parseArgs(argv: readonly string[], argv0: string): ParseResult {
  // The bundle runs as …/mount.fusegate.js in tests: the .js is not a type.
  const invokedAs = path.basename(argv0).replace(/\.js$/, '');
  const positional: string[] = [];
  const options: string[] = [];
  let typeOption: string | undefined;
  let namespace: string | undefined;
  const flags = { fake: false, noMtab: false, verbose: false, sloppy: false };

  for (const w of helperWords(argv, 'sfnvr', 'otN')) {
    if (w.kind === 'help' || w.kind === 'version') return w;
    if (w.kind === 'positional') positional.push(w.value);
    else if (w.kind === 'value') {
      if (w.letter === 'o') options.push(...w.value.split(','));
      else if (w.letter === 't') typeOption = w.value;
      else namespace = w.value;
    } else if (w.letter === 's') flags.sloppy = true;
    else if (w.letter === 'f') flags.fake = true;
    else if (w.letter === 'n') flags.noMtab = true;
    else if (w.letter === 'v') flags.verbose = true;
    else options.push('ro');
  }

  if (positional.length !== 2) {
    throw new UsageError(positional.length < 2 ? 'SOURCE and DIR are required' : `unexpected argument '${positional[2]}'`);
  }
  if (namespace !== undefined) {
    throw new UsageError('-N is not supported: run mount(8) with -N, it enters the namespace before calling helpers');
  }
  const [source, mountpoint] = positional as [string, string];
  for (const [what, p] of [['SOURCE', source], ['DIR', mountpoint]] as const) {
    if (p.includes('\uFFFD')) throw new UsageError(`${what} is not valid UTF-8`);
  }
  return {
    kind: 'mount',
    args: {
      source,
      mountpoint,
      options: options.filter((o) => o !== ''),
      requestedType: requestedTypeOf(invokedAs, typeOption),
      ...flags,
      namespace,
      invokedAs,
    },
  };
}
