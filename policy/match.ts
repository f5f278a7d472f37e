/**
 * Evaluating rule conditions against facts, with the reasons explain prints.
 *
 * Policies are plain data (they are cached as JSON); the first evaluation
 * compiles each rule's patterns into sets and regular expressions and keeps
 * them in a WeakMap, so a long-running caller pays for it once and the
 * one-shot helper pays only for what it evaluates.
 */
import { MATCH_KEYS } from './schema';
import type { Condition, Facts, MatchKey, Policy, Rule } from './types';

/** `*` any run of characters (including /), `?` one character; nothing else is special. */
export function globToRegExp(pattern: string, fold = false): RegExp {
  let re = '';
  for (const ch of pattern) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, fold ? 'si' : 's');
}

export function isGlob(pattern: string): boolean {
  return pattern.includes('*') || pattern.includes('?');
}

/** A list of patterns compiled for repeated tests: literals in a Set, globs as RegExps. */
export class PatternSet {
  private readonly exact = new Set<string>();
  private readonly globs: RegExp[] = [];
  readonly text: string;

  constructor(patterns: readonly string[], private readonly fold = false) {
    for (const p of patterns) {
      if (isGlob(p)) this.globs.push(globToRegExp(p, fold));
      else this.exact.add(fold ? p.toLowerCase() : p);
    }
    this.text = patterns.join(', ');
  }

  test(value: string | null): boolean {
    if (value === null) return false;
    if (this.exact.has(this.fold ? value.toLowerCase() : value)) return true;
    for (const re of this.globs) if (re.test(value)) return true;
    return false;
  }
}

/**
 * The facts flattened into what conditions compare, built once per decide()
 * so 1,000 rules do not each re-derive option names or group sets.
 */
export interface FactView {
  strings: Partial<Record<MatchKey, string | null>>;
  bools: Partial<Record<MatchKey, boolean>>;
  userId: string;
  userName: string | null;
  imageOwnerId: string | null;
  imageOwnerName: string | null;
  groupIds: string[];
  groupNames: string[];
  options: string[];
  /** how each key's actual value is shown in reasons */
  shown: Record<MatchKey, string>;
}

export function viewFacts(f: Facts): FactView {
  const groupIds = f.groups.value.map((g) => String(g.id));
  const groupNames = f.groups.value.flatMap((g) => (g.name === null ? [] : [g.name]));
  const strings: FactView['strings'] = {
    type: f.type.value,
    requested_type: f.requestedType.value,
    uuid: f.uuid.value,
    partuuid: f.partuuid.value,
    label: f.label.value,
    kind: f.kind.value,
    backing_file: f.backingFile.value,
    source: f.path.value ?? f.source.value,
    mountpoint: f.mountpoint.value,
    bus: f.bus.value,
    uhelper: f.uhelper.value,
    fstab_match: f.fstabMatch.value,
    image_mode: f.imageMode.value,
    session: f.session.value,
  };
  const bools: FactView['bools'] = {
    loop: f.loop.value,
    removable: f.removable.value,
    fstab: f.fstab.value,
    has_backend: f.hasBackend.value,
    fixed_disk: f.fixedDisk.value,
    image_root_only: f.imageRootOnly.value,
  };
  const shown = {} as Record<MatchKey, string>;
  for (const [k, v] of Object.entries(strings)) shown[k as MatchKey] = v === null || v === undefined ? '(none)' : String(v);
  for (const [k, v] of Object.entries(bools)) shown[k as MatchKey] = String(v);
  const u = f.user.value;
  shown.user = u.name === null ? String(u.id) : `${u.id}(${u.name})`;
  shown.group = f.groups.value.map((g) => (g.name === null ? String(g.id) : `${g.id}(${g.name})`)).join(', ') || '(none)';
  shown.options = f.options.value.join(',') || '(none)';
  const o = f.imageOwner.value;
  shown.image_owner = o === null ? '(none)' : o.name === null ? String(o.id) : `${o.id}(${o.name})`;
  return {
    strings, bools,
    userId: String(u.id), userName: u.name,
    imageOwnerId: o === null ? null : String(o.id), imageOwnerName: o?.name ?? null,
    groupIds, groupNames,
    options: f.options.value,
    shown,
  };
}

interface KeyTest {
  key: MatchKey;
  want: string;
  test(v: FactView): boolean;
}

type CompiledCondition = KeyTest[];

export interface CompiledRule {
  rule: Rule;
  match: CompiledCondition[];
  unless: CompiledCondition[];
}

function compileKey(key: MatchKey, value: boolean | Array<string | number>): KeyTest {
  const spec = MATCH_KEYS[key];
  if (typeof value === 'boolean') {
    return { key, want: String(value), test: (v) => v.bools[key] === value };
  }
  const items = value.map(String);
  const set = new PatternSet(items, spec.fold === true);
  switch (spec.kind) {
    case 'ids':
      if (key === 'user') {
        return { key, want: set.text, test: (v) => set.test(v.userId) || set.test(v.userName) };
      }
      if (key === 'image_owner') {
        return { key, want: set.text, test: (v) => set.test(v.imageOwnerId) || set.test(v.imageOwnerName) };
      }
      return {
        key, want: set.text,
        test: (v) => v.groupIds.some((g) => set.test(g)) || v.groupNames.some((g) => set.test(g)),
      };
    case 'options':
      return { key, want: set.text, test: (v) => v.options.some((o) => optionMatches(set, o)) };
    default:
      return { key, want: set.text, test: (v) => set.test(v.strings[key] ?? null) };
  }
}

/** `name` patterns match `name` and `name=anything`; `name=value` patterns match whole options. */
export function optionMatches(set: PatternSet, opt: string): boolean {
  if (set.test(opt)) return true;
  const eq = opt.indexOf('=');
  return eq >= 0 && set.test(opt.slice(0, eq));
}

function compileCondition(c: Condition): CompiledCondition {
  return (Object.keys(c) as MatchKey[]).map((k) => compileKey(k, c[k]!));
}

const compiled = new WeakMap<Policy, CompiledRule[]>();

export function compiledRules(policy: Policy): CompiledRule[] {
  let rules = compiled.get(policy);
  if (rules === undefined) {
    rules = policy.rules.map((rule) => ({
      rule,
      match: rule.match.map(compileCondition),
      unless: rule.unless.map(compileCondition),
    }));
    compiled.set(policy, rules);
  }
  return rules;
}

function conditionHolds(c: CompiledCondition, v: FactView, why: string[] | null, label: string): boolean {
  let all = true;
  for (const t of c) {
    const ok = t.test(v);
    if (why !== null) why.push(`${label}${t.key}: ${v.shown[t.key]} ${ok ? 'matches' : 'does not match'} ${t.want}`);
    if (!ok) {
      all = false;
      // Without a trace the remaining keys cannot change the answer.
      if (why === null) return false;
    }
  }
  return all;
}

/**
 * Whether a rule matches; when `why` is given, one line per key tested.
 * Alternatives (a list under match:) are tried in order until one holds.
 */
export function ruleMatches(cr: CompiledRule, v: FactView, why: string[] | null): boolean {
  let matched = cr.match.length === 0;
  if (matched && why !== null) why.push('no match keys: matches every request');
  const many = cr.match.length > 1;
  for (let i = 0; i < cr.match.length && !matched; i++) {
    matched = conditionHolds(cr.match[i]!, v, why, many ? `match[${i}] ` : '');
  }
  if (!matched) return false;
  for (let i = 0; i < cr.unless.length; i++) {
    const sub: string[] | null = why === null ? null : [];
    const holds = conditionHolds(cr.unless[i]!, v, sub, `unless${cr.unless.length > 1 ? `[${i}]` : ''} `);
    if (why !== null) why.push(...sub!);
    if (holds) {
      if (why !== null) why.push('skipped: an unless condition holds');
      return false;
    }
  }
  return true;
}
