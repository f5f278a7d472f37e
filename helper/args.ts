/**
 * The mount(8) helper calling convention:
 *
 *   mount.fusegate SPEC DIR [-sfnvr] [-N NS] [-o OPTS] [-t TYPE]
 *
 * mount(8) finds us as /sbin/mount.fusegate (for `-t fusegate` and
 * `-t fusegate.ext4`) or as /sbin/mount.<type> for a type the policy
 * intercepts (then `mount -t vfat`, fstab lines and udisks2 all come here).
 * Options may come in any order, before or after SPEC and DIR.
 */
import * as path from 'node:path';
import { FusegateError, MountExit } from '../lib/errors';

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
  32  mount failure: refused by the policy, the FUSE service failed, or the
      kernel refused the mount

Environment:
  FUSEGATE_POLICY       policy file to use instead of /etc/fusegate/policy.yaml
  FUSEGATE_SOCKET_DIR   where backend sockets live instead of /run/filesystems
  FUSEGATE_TIMEOUT      seconds the whole mount may take (default 30)
  FUSEGATE_FSTAB        fstab to consult instead of /etc/fstab (tests)
  These are honoured only because the caller must be root.

Every decision and outcome is logged to the journal:
  journalctl SYSLOG_IDENTIFIER=fusegate
To see why a mount would be refused: fusegate policy explain SOURCE DIR`;

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

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`option ${arg} needs a value`);
      return v;
    };
    if (arg === '-h' || arg === '--help') return { kind: 'help' };
    if (arg === '-V' || arg === '--version') return { kind: 'version' };
    if (arg === '-o') options.push(...value().split(','));
    else if (arg === '-t') typeOption = value();
    else if (arg === '-N') namespace = value();
    else if (arg.startsWith('-o') && arg.length > 2) options.push(...arg.slice(2).split(','));
    else if (arg.startsWith('-t') && arg.length > 2) typeOption = arg.slice(2);
    else if (/^-[sfnvr]+$/.test(arg)) {
      for (const c of arg.slice(1)) {
        if (c === 's') flags.sloppy = true;
        else if (c === 'f') flags.fake = true;
        else if (c === 'n') flags.noMtab = true;
        else if (c === 'v') flags.verbose = true;
        else if (c === 'r') options.push('ro');
      }
    } else if (arg.startsWith('-') && arg !== '-') throw new UsageError(`unknown option ${arg}`);
    else positional.push(arg);
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
