/**
 * The decision for one mount: pure, no I/O, so the helper can call it with
 * facts it gathered and tests can call it with facts they made up.
 *
 * Availability (is a backend's socket there, does the kernel have the
 * driver) is only known to the helper at mount time; resolveFallback() turns
 * a decision plus that knowledge into the final, explicit action.
 */
import { backendsForType, findBackend } from '../lib/backends';
import { compiledRules, optionMatches, PatternSet, ruleMatches, viewFacts } from './match';
import { forbiddenIn, mandatoryOptions } from './mandatory';
import { applyForced, mountOptionsOf } from './options';
import { noFilesystemWords } from './probe-words';
import type {
  Action, BackendPlan, Decision, Facts, Fallback, MountPlan, OnRefused, Policy, Preflight, Rule, TraceEntry,
} from './types';

export interface DecideOptions {
  /** record why every rule tried did or did not match (default true) */
  trace?: boolean;
}

/** The settings in force for a request: the matching rule's, else the defaults'. */
interface Effective {
  action: Action;
  reason: string;
  forceOptions: string[];
  refuseOptions: string[];
  onRefused: OnRefused;
  readOnly: boolean;
  /** who set readOnly, for readOnlyWhy */
  readOnlyBy: string;
  allowUnsafeWrite: boolean;
  fallback: Fallback;
  backends: string[];
  backendsFrom: string;
  preflight: Preflight;
  preflightBy: string;
}

export function decide(policy: Policy, facts: Facts, opts: DecideOptions = {}): Decision {
  const withTrace = opts.trace !== false;
  const view = viewFacts(facts);
  const trace: TraceEntry[] = [];
  let hit: Rule | undefined;
  for (const cr of compiledRules(policy)) {
    const why: string[] | null = withTrace ? [] : null;
    const matched = ruleMatches(cr, view, why);
    if (withTrace) trace.push({ rule: cr.rule.name, line: cr.rule.line, matched, why: why! });
    if (matched) { hit = cr.rule; break; }
  }
  const eff = effective(policy, hit, facts.type.value);
  const d: Decision = {
    action: eff.action,
    rule: hit?.name ?? 'default',
    ruleLine: hit?.line ?? null,
    reason: eff.reason,
    fsType: facts.type.value,
    backends: [],
    backendPlans: [],
    backend: null,
    forcedOptions: eff.forceOptions,
    refusedOptions: { patterns: eff.refuseOptions, options: [], handling: 'none' },
    overriddenOptions: [],
    readOnly: false,
    readOnlyWhy: null,
    fallback: eff.fallback,
    fallbackApplied: null,
    finalOptions: [],
    mountOptions: mountOptionsOf([]),
    requestedOptions: facts.options.value,
    kernelPlan: null,
    preflight: { ...eff.preflight, by: eff.preflightBy },
    trace,
    notes: [...facts.notes],
  };
  // Issue 17: no filesystem found is the story, whatever rule matched (policy/probe-words.ts).
  const unprobed = noFilesystemWords(facts);
  if (unprobed !== null) return deny(d, unprobed.what);
  if (d.action === 'deny') return deny(d, d.reason);

  const unusable = unusableSource(facts);
  if (unusable !== null) return deny(d, unusable);

  let requested = facts.options.value;
  if (eff.refuseOptions.length > 0) {
    const refuse = new PatternSet(eff.refuseOptions);
    const refused = requested.filter((o) => optionMatches(refuse, o));
    if (refused.length > 0) {
      d.refusedOptions = { patterns: eff.refuseOptions, options: refused, handling: eff.onRefused };
      if (eff.onRefused === 'deny') {
        return deny(d, `${who(d.rule)} refuses the option${refused.length > 1 ? 's' : ''} ${refused.join(',')}; mount without ${refused.length > 1 ? 'them' : 'it'}`);
      }
      requested = requested.filter((o) => !refused.includes(o));
    }
  }

  const baseRoWhy = eff.readOnly
    ? `${eff.readOnlyBy} forces read-only`
    : requested.includes('ro') ? 'requested by the caller (-o ro)' : null;
  // nosuid,nodev whatever the policy says (policy/mandatory.ts): asking for
  // suid or dev where they are mandatory refuses the mount, never weakens it.
  const mandatory = mandatoryOptions(d.action, facts);
  const forbidden = forbiddenIn([...requested, ...eff.forceOptions], mandatory);
  if (forbidden.length > 0) {
    const on = d.action === 'fuse' ? 'a sandboxed mount' : 'a kernel mount of removable media, a loop device or an image';
    return deny(d, `${forbidden.join(',')} ${forbidden.length > 1 ? 'are' : 'is'} never allowed on ${on}; fusegate always mounts it ${mandatory.join(',')}`);
  }
  const plan = (ro: boolean, why: string | null, must: readonly string[]): MountPlan => {
    const r = applyForced(requested, [...eff.forceOptions, ...must.filter((m) => !eff.forceOptions.includes(m))], ro);
    return { readOnly: ro, readOnlyWhy: why, finalOptions: r.options, overriddenOptions: r.overridden };
  };
  d.kernelPlan = plan(baseRoWhy !== null, baseRoWhy, mandatoryOptions('kernel', facts));

  if (d.action === 'kernel') {
    d.preflight = NO_PREFLIGHT;
    return adopt(d, d.kernelPlan);
  }

  const fsType = facts.type.value!;
  if (eff.backends.length === 0) {
    d.notes.push(`${eff.backendsFrom} names no backend that serves ${fsType}`);
    return applyFallback(d, `no sandboxed backend serves ${fsType}`);
  }
  d.backends = eff.backends;
  d.backendPlans = eff.backends.map((name): BackendPlan => {
    const w = findBackend(name)!.types.find((t) => t.type === fsType)!;
    if (baseRoWhy !== null) return { backend: name, ...plan(true, baseRoWhy, mandatory) };
    if (w.write === 'none') return { backend: name, ...plan(true, w.writeNote ?? `${name} cannot write ${fsType}`, mandatory) };
    if (w.write === 'unsafe' && !eff.allowUnsafeWrite) {
      return { backend: name, ...plan(true, `${w.writeNote ?? `${name} writes ${fsType} unsafely`}; allow_unsafe_write: true accepts the risk`, mandatory) };
    }
    return { backend: name, ...plan(false, null, mandatory) };
  });
  return adopt(d, d.backendPlans[0]!);
}

/** Why a source cannot be mounted at all, whatever the rule said. */
function unusableSource(f: Facts): string | null {
  const src = f.source.value;
  if (f.kind.value === 'missing') return `${src} does not exist`;
  if (f.kind.value === 'other') return `${src} is neither a block device nor a regular file`;
  if (f.type.value === null) {
    return `no single filesystem was identified on ${src} (${f.type.source}); fusegate never mounts what it could not probe`;
  }
  return null;
}

function effective(policy: Policy, rule: Rule | undefined, fsType: string | null): Effective {
  const d = policy.defaults;
  const action = rule?.action ?? d.action;
  const [backends, backendsFrom] = backendList(policy, rule, fsType);
  return {
    action,
    reason: rule?.reason ?? (rule === undefined ? d.reason : defaultReason(rule.name, action)),
    forceOptions: rule?.forceOptions ?? d.forceOptions,
    refuseOptions: rule?.refuseOptions ?? d.refuseOptions,
    onRefused: rule?.onRefused ?? d.onRefused,
    readOnly: rule?.readOnly ?? d.readOnly,
    readOnlyBy: rule?.readOnly !== undefined ? who(rule.name) : 'defaults.read_only',
    allowUnsafeWrite: rule?.allowUnsafeWrite ?? d.allowUnsafeWrite,
    fallback: rule?.fallback ?? d.fallback,
    backends,
    backendsFrom,
    preflight: rule?.preflight ?? d.preflight,
    preflightBy: rule?.preflight !== undefined ? who(rule.name) : 'defaults.preflight',
  };
}

/** Kernel mounts and refusals run no preflight: only a sandboxed checker may parse the image. */
const NO_PREFLIGHT: Decision['preflight'] = { mode: 'none', force: false, by: 'the action' };

/**
 * Backend preference for the probed type: the rule's list (a plain list is
 * filtered to backends that serve the type), else defaults.backends, else the
 * backends table's own order.
 */
function backendList(policy: Policy, rule: Rule | undefined, fsType: string | null): [string[], string] {
  if (fsType === null) return [[], 'nothing'];
  const serves = (name: string): boolean => findBackend(name)?.types.some((t) => t.type === fsType) === true;
  const prefs = rule?.backends;
  if (Array.isArray(prefs)) return [prefs.filter(serves), `rule '${rule!.name}'`];
  if (prefs !== undefined && prefs[fsType] !== undefined) return [prefs[fsType]!.filter(serves), `rule '${rule!.name}'`];
  const def = policy.defaults.backends[fsType];
  if (def !== undefined) return [def.filter(serves), 'defaults.backends'];
  return [backendsForType(fsType).map((b) => b.name), 'the backends table'];
}

function defaultReason(rule: string, action: Action): string {
  switch (action) {
    case 'kernel': return `rule '${rule}' trusts this source to the kernel driver`;
    case 'fuse': return `rule '${rule}' mounts this source through a sandboxed FUSE server`;
    case 'deny': return `rule '${rule}' refuses this mount`;
  }
}

function who(rule: string): string {
  return rule === 'default' ? 'the defaults section' : `rule '${rule}'`;
}

function adopt(d: Decision, p: MountPlan): Decision {
  d.readOnly = p.readOnly;
  d.readOnlyWhy = p.readOnlyWhy;
  d.finalOptions = p.finalOptions;
  d.mountOptions = mountOptionsOf(p.finalOptions);
  d.overriddenOptions = p.overriddenOptions;
  return d;
}

function deny(d: Decision, reason: string): Decision {
  d.action = 'deny';
  d.reason = reason;
  d.backends = [];
  d.backendPlans = [];
  d.backend = null;
  d.kernelPlan = null;
  d.preflight = NO_PREFLIGHT;
  d.readOnly = false;
  d.readOnlyWhy = null;
  d.forcedOptions = [];
  d.finalOptions = [];
  d.mountOptions = mountOptionsOf([]);
  d.overriddenOptions = [];
  return d;
}

function applyFallback(d: Decision, why: string): Decision {
  d.fallbackApplied = { from: d.action, why };
  if (d.fallback === 'kernel' && d.kernelPlan !== null) {
    d.action = 'kernel';
    d.reason = `${why}; ${who(d.rule)} falls back to the kernel driver`;
    d.backend = null;
    d.preflight = NO_PREFLIGHT;
    return adopt(d, d.kernelPlan);
  }
  return deny(d, `${why}; ${who(d.rule)} falls back to deny`);
}

/** What the helper found on the machine at mount time. */
export interface Availability {
  /** /dev/fuse usable (default true) */
  fuse?: boolean;
  /** backends whose socket /run/filesystems/<name> exists */
  backends: Iterable<string>;
  /** the kernel has a driver for the type (default true) */
  kernel?: boolean;
}

/**
 * The decision the helper acts on: the first available backend, or the
 * fallback when none is, or a denial when the kernel lacks the driver. Never
 * changes the action without saying so in `fallbackApplied` and `reason`.
 */
/**
 * Whether a decision asks for the sandboxed check before its mount: only a
 * read-write sandboxed mount is checked (docs/preflight.md); decide() gives
 * kernel mounts and refusals preflight none.
 */
export function wantsPreflight(d: Decision): boolean {
  return !d.readOnly && d.preflight.mode !== 'none';
}

export function resolveFallback(decision: Decision, avail: Availability): Decision {
  const d: Decision = { ...decision, notes: [...decision.notes] };
  const kernelOk = avail.kernel !== false;
  if (d.action === 'kernel') {
    if (kernelOk) return d;
    return deny(d, `the kernel has no ${d.fsType} driver; ${who(d.rule)} chose the kernel and kernel mounts have no fallback`);
  }
  if (d.action !== 'fuse') return d;
  const have = new Set(avail.backends);
  let why: string;
  if (avail.fuse === false) {
    why = 'FUSE is not available (/dev/fuse missing or unusable)';
  } else {
    const i = d.backends.findIndex((b) => have.has(b));
    if (i >= 0) {
      d.backend = d.backends[i]!;
      if (i > 0) d.notes.push(`preferred backend${i > 1 ? 's' : ''} ${d.backends.slice(0, i).join(', ')} not installed; using ${d.backend}`);
      return adopt(d, d.backendPlans[i]!);
    }
    why = `no backend for ${d.fsType} is installed (tried ${d.backends.join(', ')})`;
  }
  if (d.fallback === 'kernel' && !kernelOk) {
    d.fallbackApplied = { from: 'fuse', why };
    return deny(d, `${why}; the kernel fallback is impossible too: the kernel has no ${d.fsType} driver`);
  }
  return applyFallback(d, why);
}
