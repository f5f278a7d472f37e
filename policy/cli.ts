/**
 * `fusegate policy check|explain`: the administrator's view of the policy.
 * Explain uses exactly the helper's path (gatherFacts, loadPolicyForMount,
 * decide), so what it prints is what a mount would do.
 */
import { isHelpWord, parseCommandLine, stringValue, stringValues, UsageError } from '../lib/cli-args';
import { MountExit } from '../lib/errors';
import { processIo } from '../lib/output';
import { Accounts } from './etc';
import { SESSIONS } from './schema';
import type { SessionState } from './types';
import { machineAvailability } from '../lib/availability';
import { decide, resolveFallback } from './decide';
import { formatDiagnostic, formatExplanation, type Explanation } from './explain';
import { explainStorage } from './one-writer';
import { gatherFacts, type FactEnv } from './facts';
import { checkPolicy, loadPolicyForMount, policyPath } from './load';
import { DEFAULT_POLICY_PATH } from './schema';
import type { MountRequest } from './types';

export const HELP = `FUSEGATE-POLICY(8)

NAME
    fusegate policy - check a fusegate trust policy and explain its decisions

SYNOPSIS
    fusegate policy check [FILE] [--json]
    fusegate policy explain SOURCE [MOUNTPOINT] [-t TYPE] [-o OPTIONS]
                            [--uid N] [--gid N] [--groups N,N...] [--session S]
                            [--policy FILE] [--json]

DESCRIPTION
    The policy decides, for every mount the fusegate helper handles, between
    the in-kernel driver, a sandboxed FUSE server, or refusal. Its format is
    described in policy/README.md.

    check validates FILE and lists every error and warning with file, line,
    column and a hint. A policy with errors is never used: the helper then
    fails closed (only fixed internal disks listed in /etc/fstab are mounted, on the
    kernel driver; everything else is denied).

    explain gathers the facts about SOURCE the way the mount helper does
    (filesystem type from blkid -p, bus and removable flag from sysfs and
    udev, /etc/fstab, the caller), then shows every rule tried and why it did
    or did not match, and the decision with the options the helper would
    mount with. Nothing is mounted.

OPTIONS
    -t TYPE         the type the caller asks for (a request; the probed type decides)
    -o OPTIONS      requested mount options, comma-separated
    --uid N         explain for user N (default: you); gid and groups from /etc/passwd and /etc/group
    --gid N         primary group (default: from --uid, or yours)
    --session S     the caller's session as the broker would see it: active,
                    inactive, remote or none (what 'fusegate mount' gets);
                    without it the session is unknown, as for mount(8)
    --groups LIST   supplementary group ids, comma-separated
    --policy FILE   policy to use (default: $FUSEGATE_POLICY, else ${DEFAULT_POLICY_PATH})
    --json          one JSON document on standard output, for scripts
    -h, --help      this text

EXIT STATUS
    0   check: no errors (warnings allowed); explain: the policy loaded and a decision was made
    1   check: the policy has errors or cannot be read; explain: the policy could not be
        loaded (the fail-closed decision is shown) or the command line is wrong

FILES
    ${DEFAULT_POLICY_PATH}    the policy
    /etc/fstab                  consulted for the fstab match key

ENVIRONMENT
    FUSEGATE_POLICY   policy file to use instead of ${DEFAULT_POLICY_PATH} (ignored by set-uid callers)

EXAMPLES
    fusegate policy check /etc/fusegate/policy.yaml
    fusegate policy explain /dev/sdb1 /media/alice/STICK -o nosuid,nodev,uhelper=udisks2 --uid 1000
    fusegate policy explain ./disk.img --json | jq .decision.action
`;

/** Test hooks: where facts come from. Not reachable from the command line. */
export interface CliEnv {
  facts?: FactEnv;
  out?: (s: string) => void;
  err?: (s: string) => void;
}

export async function main(args: string[], cenv: CliEnv = {}): Promise<number> {
  const out = cenv.out ?? processIo.out;
  const err = cenv.err ?? processIo.err;
  const [cmd, ...rest] = args;
  if (cmd === undefined) {
    err(HELP);
    return MountExit.USAGE;
  }
  if (isHelpWord(cmd)) {
    out(HELP);
    return MountExit.SUCCESS;
  }
  try {
    switch (cmd) {
      case 'check':
        return check(rest, out);
      case 'explain':
        return explain(rest, cenv.facts ?? {}, out);
      default:
        throw new UsageError(`unknown policy command '${cmd}'`);
    }
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    err(`fusegate policy: ${e.message}\nfusegate policy: run 'fusegate policy --help' for usage\n`);
    return MountExit.USAGE;
  }
}

function check(args: string[], out: (s: string) => void): number {
  const p = parseCommandLine(args, { options: { json: { type: 'boolean' } }, prefix: 'check: ' });
  if (p.help) { out(HELP); return MountExit.SUCCESS; }
  const json = p.values.json === true;
  const files = p.positionals;
  if (files.length > 1) throw new UsageError('check takes at most one FILE');
  const file = policyPath(files[0]);
  const diags = checkPolicy(file);
  const errors = diags.filter((d) => d.severity === 'error').length;
  if (json) {
    out(JSON.stringify({ file, ok: errors === 0, diagnostics: diags }, null, 2) + '\n');
  } else {
    for (const d of diags) out(formatDiagnostic(d) + '\n');
    const warnings = diags.length - errors;
    out(errors === 0
      ? `${file}: OK${warnings > 0 ? ` (${warnings} warning${warnings > 1 ? 's' : ''})` : ''}\n`
      : `${file}: ${errors} error${errors > 1 ? 's' : ''}${warnings > 0 ? `, ${warnings} warning${warnings > 1 ? 's' : ''}` : ''}; the helper would fail closed with this policy\n`);
  }
  return errors === 0 ? MountExit.SUCCESS : MountExit.USAGE;
}

function num(flag: string, v: string | undefined): number {
  if (v === undefined || !/^\d+$/.test(v)) throw new UsageError(`${flag} takes a number`);
  return Number(v);
}

const EXPLAIN_OPTIONS = {
  type: { type: 'string', short: 't' },
  options: { type: 'string', short: 'o', multiple: true },
  uid: { type: 'string' },
  gid: { type: 'string' },
  groups: { type: 'string' },
  session: { type: 'string' },
  policy: { type: 'string' },
  json: { type: 'boolean' },
} as const;

function explain(args: string[], factEnv: FactEnv, out: (s: string) => void): number {
  const p = parseCommandLine(args, { options: EXPLAIN_OPTIONS, prefix: 'explain: ' });
  if (p.help) { out(HELP); return MountExit.SUCCESS; }
  const v = p.values;
  const positional = p.positionals;
  const type = stringValue(v, 'type');
  const options = stringValues(v, 'options').flatMap((o) => o.split(',').filter(Boolean));
  const numeric = (name: string): number | undefined => {
    const s = stringValue(v, name);
    return s === undefined ? undefined : num(`--${name}`, s);
  };
  const uid = numeric('uid');
  const gid = numeric('gid');
  const groupList = stringValue(v, 'groups');
  const groups = groupList === undefined ? undefined : groupList.split(',').filter(Boolean).map((g) => num('--groups', g));
  const policyFile = stringValue(v, 'policy');
  const json = v.json === true;
  if (positional.length < 1 || positional.length > 2) throw new UsageError('explain takes SOURCE and optionally MOUNTPOINT');

  const accounts = new Accounts(factEnv.passwd, factEnv.group);
  const self = { uid: process.getuid!(), gid: process.getgid!(), groups: process.getgroups!() };
  const base = uid === undefined ? self : accounts.credentials(uid);
  const req: MountRequest = {
    source: positional[0]!,
    options,
    caller: { uid: base.uid, gid: gid ?? base.gid, groups: groups ?? base.groups },
  };
  if (positional[1] !== undefined) req.mountpoint = positional[1];
  if (type !== undefined) req.requestedType = type;
  const session = stringValue(v, 'session');
  if (session !== undefined) {
    if (!(SESSIONS as readonly string[]).includes(session)) throw new UsageError(`--session takes one of ${SESSIONS.join(', ')}`);
    req.session = session as SessionState;
  }

  const { policy, error } = loadPolicyForMount(policyFile, { cacheDir: null });
  const facts = gatherFacts(req, factEnv);
  const decision = decide(policy, facts);
  const e: Explanation = {
    policy: { file: error?.file ?? policy.file, rules: policy.rules.length, failClosed: policy.failClosed?.reason ?? null },
    diagnostics: error?.diagnostics ?? [],
    facts,
    decision,
    // The helper's view: the first installed backend, or the fallback, said explicitly.
    onThisMachine: resolveFallback(decision, machineAvailability(facts.type.value)),
  };
  // Issue 17: the same one-writer facts the helper checks before mounting.
  const planned = e.onThisMachine.action !== 'deny' ? e.onThisMachine : decision;
  if (planned.action !== 'deny') {
    e.storage = explainStorage(facts.path.value, {
      source: req.source,
      mountpoint: req.mountpoint ?? '(mountpoint)',
      readOnly: planned.readOnly,
      backend: planned.action === 'fuse' ? planned.backend ?? planned.backendPlans[0]?.backend ?? null : null,
    });
  }
  out(json ? JSON.stringify(e, null, 2) + '\n' : formatExplanation(e));
  return error === null ? MountExit.SUCCESS : MountExit.USAGE;
}
