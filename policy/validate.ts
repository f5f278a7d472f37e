/**
 * Policy file text → Policy, or diagnostics with line and column.
 *
 * Validation walks the YAML syntax tree rather than the plain JS value so
 * every complaint (unknown key, wrong type, unknown backend, shadowed rule)
 * points at the exact place in the file. Everything wrong is reported in one
 * pass; a policy with any error is not returned at all.
 *
 * The yaml package takes ~40 ms to load on the target machines, so it is
 * required only here and only when a file really has to be parsed.
 */
import type { Document, LineCounter, Node as YNode, Pair, YAMLMap, YAMLSeq } from 'yaml';
import { BACKENDS, findBackend } from '../lib/backends';
import {
  ACTIONS, BUILTIN_DEFAULTS, closest, DEFAULTS_KEYS, FALLBACKS, FSTYPE_RE, MATCH_KEYS, NAME_RE, ON_REFUSED, OPTION_RE,
  POLICY_VERSION, PREFLIGHT_KEYS, PREFLIGHT_MODES, RULE_KEYS, TOP_KEYS,
} from './schema';
import { opposite } from './options';
import { FORBIDDEN_OPTIONS, MANDATORY_OPTIONS } from './mandatory';
import { findShadowed, spoofableTrust } from './shadow';
import type {
  Action, BackendPrefs, Condition, Defaults, Diagnostic, MatchKey, Policy, Preflight, Rule, Severity,
} from './types';

type Yaml = typeof import('yaml');

export interface ValidateResult {
  /** null when there was any error */
  policy: Policy | null;
  diagnostics: Diagnostic[];
}

const YAML_HINTS: Partial<Record<string, string>> = {
  BAD_INDENT: 'indent nested keys consistently with spaces',
  TAB_AS_INDENT: 'indent with spaces; YAML does not allow tabs',
  DUPLICATE_KEY: 'remove or rename one of the two keys',
  MULTIPLE_DOCS: 'remove the extra "---" document; a policy is one document',
  MISSING_CHAR: 'close the bracket or quote that was opened',
  BAD_DQ_ESCAPE: 'use a valid escape or single quotes',
  BLOCK_IN_FLOW: 'do not nest block syntax inside [ ] or { }',
  MULTILINE_IMPLICIT_KEY: 'put the key on one line and quote values containing ":"',
  UNEXPECTED_TOKEN: 'check quoting and indentation around this position',
  BAD_ALIAS: 'define the &anchor before using the *alias',
};

/** Collects diagnostics at syntax-tree positions. */
class Reporter {
  readonly diagnostics: Diagnostic[] = [];
  constructor(readonly file: string, private readonly lc: LineCounter) {}

  at(offset: number, severity: Severity, message: string, hint: string): void {
    const { line, col } = this.lc.linePos(offset);
    this.diagnostics.push({ file: this.file, line, column: col, severity, message, hint });
  }

  error(node: YNode | Pair | null | undefined, message: string, hint: string): void {
    this.at(offsetOf(node), 'error', message, hint);
  }

  warn(node: YNode | Pair | null | undefined, message: string, hint: string): void {
    this.at(offsetOf(node), 'warning', message, hint);
  }

  lineOf(node: YNode): number {
    return this.lc.linePos(offsetOf(node)).line;
  }

  get failed(): boolean {
    return this.diagnostics.some((d) => d.severity === 'error');
  }
}

function offsetOf(node: YNode | Pair | null | undefined): number {
  if (node === null || node === undefined) return 0;
  if ('range' in node && node.range) return node.range[0];
  const key = (node as Pair).key as YNode | null;
  return key?.range?.[0] ?? 0;
}

/** Parses and validates; never throws for a bad policy. */
export function validatePolicyText(text: string, file: string): ValidateResult {
  const y: Yaml = require('yaml');
  const lc = new y.LineCounter();
  const doc = y.parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const r = new Reporter(file, lc);
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const msg = e.message.replace(/\s+/g, ' ').trim();
      const unclosed = /end with a ([\]}])/.exec(msg);
      r.at(e.pos[0], 'error', `YAML syntax: ${msg}`,
        unclosed !== null ? `close the ${unclosed[1] === ']' ? '[ with ]' : '{ with }'} (and check indentation)` : YAML_HINTS[e.code] ?? 'fix the YAML syntax at this position');
    }
    return { policy: null, diagnostics: sorted(r.diagnostics) };
  }
  const policy = new Walker(y, doc, r).policy();
  return { policy: r.failed ? null : policy, diagnostics: sorted(r.diagnostics) };
}

function sorted(d: Diagnostic[]): Diagnostic[] {
  return d.sort((a, b) => a.line - b.line || a.column - b.column);
}


/** Keys that only mean something for a fuse rule (or for kernel/fuse, not deny). */
const NOT_FOR_DENY = ['backends', 'force_options', 'refuse_options', 'on_refused', 'read_only', 'allow_unsafe_write', 'fallback', 'preflight'];
const FUSE_ONLY = ['backends', 'allow_unsafe_write', 'fallback', 'preflight'];

class Walker {
  constructor(private readonly y: Yaml, private readonly doc: Document, private readonly r: Reporter) {}

  private deref(node: unknown): YNode | null {
    if (node === null || node === undefined) return null;
    if (this.y.isAlias(node)) return (node.resolve(this.doc) as YNode | undefined) ?? null;
    return node as YNode;
  }

  /** The pairs of a mapping, with unknown and non-string keys reported. */
  private pairs(map: YAMLMap, known: readonly string[], where: string): Array<[string, YNode | null, Pair]> {
    const out: Array<[string, YNode | null, Pair]> = [];
    for (const pair of map.items) {
      const key = this.deref(pair.key);
      if (!this.y.isScalar(key) || typeof key.value !== 'string') {
        this.r.error(key ?? pair, `${where}: keys must be plain words`, `use one of: ${known.join(', ')}`);
        continue;
      }
      if (!known.includes(key.value)) {
        const near = closest(key.value, known);
        this.r.error(key, `unknown key '${key.value}' in ${where}`,
          near !== undefined ? `did you mean '${near}'?` : `allowed keys: ${known.join(', ')}`);
        continue;
      }
      out.push([key.value, this.deref(pair.value), pair]);
    }
    return out;
  }

  policy(): Policy | null {
    const root = this.deref(this.doc.contents);
    if (root === null) {
      this.r.error(null, 'the policy file is empty', `start it with 'version: ${POLICY_VERSION}' and a rules: list`);
      return null;
    }
    if (!this.y.isMap(root)) {
      this.r.error(root, 'the policy must be a mapping with version, intercept, defaults and rules', `start it with 'version: ${POLICY_VERSION}'`);
      return null;
    }
    const fields = new Map(this.pairs(root, TOP_KEYS, 'the policy').map(([k, v, p]) => [k, { v, p }]));
    const version = fields.get('version');
    if (version === undefined) {
      this.r.error(root, 'missing required key \'version\'', `add 'version: ${POLICY_VERSION}' at the top`);
    } else if (!this.y.isScalar(version.v) || version.v.value !== POLICY_VERSION) {
      this.r.error(version.v ?? version.p, `unsupported policy version ${this.show(version.v)}`,
        `this fusegate reads version ${POLICY_VERSION}; write 'version: ${POLICY_VERSION}'`);
    }
    const intercept = fields.has('intercept') ? this.intercept(fields.get('intercept')!.v, fields.get('intercept')!.p) : [];
    const defaults = fields.has('defaults') ? this.defaults(fields.get('defaults')!.v, fields.get('defaults')!.p) : { ...BUILTIN_DEFAULTS };
    const rules = fields.has('rules') ? this.rules(fields.get('rules')!.v, fields.get('rules')!.p) : [];
    if (!fields.has('rules')) {
      this.r.warn(root, 'the policy has no rules: every mount gets the defaults\' action', 'add a rules: list');
    }
    return { version: POLICY_VERSION, file: this.r.file, intercept, defaults, rules };
  }

  private show(node: YNode | null): string {
    if (node === null) return 'null';
    if (this.y.isScalar(node)) return JSON.stringify(node.value);
    return this.y.isMap(node) ? 'a mapping' : 'a list';
  }

  private intercept(node: YNode | null, pair: Pair): string[] {
    const types = this.strings(node, pair, 'intercept', 'filesystem type names, e.g. [vfat, exfat, ntfs]') ?? [];
    for (const [t, n] of types) {
      if (!FSTYPE_RE.test(t)) {
        this.r.error(n, `'${t}' is not a filesystem type name`, 'use lower-case type names as mount -t takes them');
      } else if (t === 'fuse' || t.startsWith('fuse.') || t === 'fuseblk' || t === 'fusegate') {
        this.r.error(n, `intercepting '${t}' would make the helper call itself`, 'intercept the filesystem types (vfat, ext4, …), not FUSE types');
      }
    }
    return types.map(([t]) => t);
  }

  /** A scalar string or a list of them (a lone value stands for a one-item list). */
  private strings(node: YNode | null, pair: Pair, what: string, example: string, allowEmpty = false): Array<[string, YNode]> | null {
    const items = this.listItems(node, pair, what, example, allowEmpty);
    if (items === null) return null;
    const out: Array<[string, YNode]> = [];
    for (const item of items) {
      if (!this.y.isScalar(item) || typeof item.value !== 'string') {
        this.r.error(item, `${what}: expected a string, found ${this.show(item)}`,
          this.y.isScalar(item) && item.value !== null ? `quote it: "${String(item.value)}"` : `write ${example}`);
        continue;
      }
      out.push([item.value, item]);
    }
    return out;
  }

  private listItems(node: YNode | null, pair: Pair, what: string, example: string, allowEmpty = false): YNode[] | null {
    if (node === null) {
      this.r.error(pair, `${what} has no value`, `write ${example}`);
      return null;
    }
    if (this.y.isSeq(node)) {
      const items = (node as YAMLSeq).items.map((i) => this.deref(i) ?? node);
      if (items.length === 0 && !allowEmpty) {
        this.r.error(node, `${what} is an empty list`, 'list at least one value or remove the key');
        return null;
      }
      return items;
    }
    if (this.y.isMap(node)) {
      this.r.error(node, `${what}: expected a value or a list, found a mapping`, `write ${example}`);
      return null;
    }
    return [node];
  }

  private bool(node: YNode | null, pair: Pair, what: string): boolean | undefined {
    if (this.y.isScalar(node) && typeof node.value === 'boolean') return node.value;
    this.r.error(node ?? pair, `${what} must be true or false, found ${this.show(node)}`,
      'write true or false (yes/no/on/off are plain strings in YAML 1.2)');
    return undefined;
  }

  private str(node: YNode | null, pair: Pair, what: string): string | undefined {
    if (this.y.isScalar(node) && typeof node.value === 'string' && node.value.trim() !== '') return node.value;
    this.r.error(node ?? pair, `${what} must be a non-empty string, found ${this.show(node)}`, `write ${what}: "…"`);
    return undefined;
  }

  private oneOf<T extends string>(node: YNode | null, pair: Pair, what: string, allowed: readonly T[]): T | undefined {
    if (this.y.isScalar(node) && typeof node.value === 'string' && (allowed as readonly string[]).includes(node.value)) {
      return node.value as T;
    }
    const near = this.y.isScalar(node) && typeof node.value === 'string' ? closest(node.value, allowed) : undefined;
    this.r.error(node ?? pair, `${what} must be one of ${allowed.join(', ')}; found ${this.show(node)}`,
      near !== undefined ? `did you mean '${near}'?` : `write ${what}: ${allowed[0]}`);
    return undefined;
  }

  /**
   * @param applies for force_options: which mounts the list applies to, so
   *   suid/dev (which fusegate never allows on a sandboxed mount) are reported
   */
  private options(node: YNode | null, pair: Pair, what: string, applies?: Action | 'any'): string[] | undefined {
    // An empty list is meaningful here: a rule's [] replaces the defaults' list.
    const items = this.strings(node, pair, what, '[nosuid, nodev]', true);
    if (items === null) return undefined;
    for (const [o, n] of items) {
      if (!OPTION_RE.test(o)) this.r.error(n, `${what}: '${o}' is not one mount option`, 'list options one per item, without commas or spaces');
      else if (applies !== undefined && FORBIDDEN_OPTIONS.includes(o)) this.forbidden(n, what, o, applies);
    }
    return items.map(([o]) => o);
  }

  /** suid/dev forced: an error where a sandboxed mount would get it, a warning on a kernel rule. */
  private forbidden(n: YNode, what: string, o: string, applies: Action | 'any'): void {
    const never = `fusegate never mounts a sandboxed filesystem with '${o}' (every sandboxed mount is ${MANDATORY_OPTIONS.join(',')})`;
    if (applies === 'kernel') {
      this.r.warn(n, `${what}: '${o}' takes effect only on fixed internal disks; any other source this rule matches is refused`,
        `remove '${o}', or narrow the rule to fixed internal disks (fixed_disk: true)`);
    } else {
      this.r.error(n, `${what}: ${never}`, applies === 'any'
        ? `remove '${o}': the defaults apply to fuse rules too; force it in a kernel rule for fixed internal disks instead`
        : `remove '${o}'; only a kernel rule for fixed internal disks may force it`);
    }
  }

  private defaults(node: YNode | null, pair: Pair): Defaults {
    const d: Defaults = { ...BUILTIN_DEFAULTS, backends: {} };
    if (!this.y.isMap(node)) {
      this.r.error(node ?? pair, `defaults must be a mapping, found ${this.show(node)}`, 'write defaults: followed by indented keys such as action: deny');
      return d;
    }
    for (const [key, v, p] of this.pairs(node, DEFAULTS_KEYS, 'defaults')) {
      switch (key) {
        case 'action': d.action = this.oneOf(v, p, 'defaults.action', ACTIONS) ?? d.action; break;
        case 'reason': d.reason = this.str(v, p, 'reason') ?? d.reason; break;
        case 'fallback': d.fallback = this.oneOf(v, p, 'defaults.fallback', FALLBACKS) ?? d.fallback; break;
        case 'force_options': d.forceOptions = this.options(v, p, 'defaults.force_options', 'any') ?? []; break;
        case 'refuse_options': d.refuseOptions = this.options(v, p, 'defaults.refuse_options') ?? []; break;
        case 'on_refused': d.onRefused = this.oneOf(v, p, 'defaults.on_refused', ON_REFUSED) ?? d.onRefused; break;
        case 'read_only': d.readOnly = this.bool(v, p, 'defaults.read_only') ?? false; break;
        case 'allow_unsafe_write': d.allowUnsafeWrite = this.bool(v, p, 'defaults.allow_unsafe_write') ?? false; break;
        case 'preflight': d.preflight = this.preflight(v, p, 'defaults.preflight') ?? d.preflight; break;
        case 'backends': {
          const b = this.backends(v, p, 'defaults.backends', true);
          if (b !== undefined && !Array.isArray(b)) d.backends = b;
          break;
        }
      }
    }
    this.checkOptionSets(node.items.find((p) => this.y.isScalar(p.key) && p.key.value === 'force_options')?.value as YNode ?? node,
      'defaults', d.forceOptions, d.refuseOptions);
    return d;
  }

  private rules(node: YNode | null, pair: Pair): Rule[] {
    if (!this.y.isSeq(node)) {
      this.r.error(node ?? pair, `rules must be a list, found ${this.show(node)}`, 'write each rule as an item starting with "- name: …"');
      return [];
    }
    const rules: Rule[] = [];
    const nodes = new Map<Rule, YNode>();
    const names = new Map<string, number>();
    for (const item of (node as YAMLSeq).items) {
      const n = this.deref(item);
      const rule = this.rule(n, node as YAMLSeq, names);
      if (rule !== null) { rules.push(rule); nodes.set(rule, n!); }
    }
    for (const { rule, by } of findShadowed(rules)) {
      this.r.error(nodes.get(rule), `rule '${rule.name}' can never match: rule '${by.name}' (line ${by.line}) matches every request it would`,
        `move '${rule.name}' above '${by.name}', or narrow '${by.name}'`);
    }
    for (const rule of spoofableTrust(rules)) {
      this.r.warn(nodes.get(rule), `rule '${rule.name}' trusts the kernel driver on UUID or label alone; a USB stick can copy both`,
        'also match fixed_disk: true (loop devices, dm over loop and hot-plug buses are never fixed disks)');
    }
    return rules;
  }

  private rule(node: YNode | null, list: YAMLSeq, names: Map<string, number>): Rule | null {
    if (!this.y.isMap(node)) {
      this.r.error(node ?? list, `each rule must be a mapping, found ${this.show(node)}`, 'start the rule with "- name: …" and indent its keys');
      return null;
    }
    const line = this.r.lineOf(node);
    const fields = new Map(this.pairs(node, RULE_KEYS, 'a rule').map(([k, v, p]) => [k, { v, p }]));
    const errorsBefore = this.r.diagnostics.length;
    let name: string | undefined;
    const nameField = fields.get('name');
    if (nameField === undefined) {
      this.r.error(node, 'rule has no name', 'add name: a-short-name; it is logged with every decision');
    } else {
      name = this.str(nameField.v, nameField.p, 'name');
      if (name !== undefined && !NAME_RE.test(name)) {
        this.r.error(nameField.v, `rule name '${name}' may only hold letters, digits, '.', '_' and '-'`, 'rename it, e.g. usb-sticks');
      } else if (name === 'default') {
        this.r.error(nameField.v, 'rule name \'default\' is reserved for the defaults section', 'choose another name');
      } else if (name !== undefined && names.has(name)) {
        this.r.error(nameField.v, `rule name '${name}' is already used on line ${names.get(name)}`, 'give every rule its own name');
      } else if (name !== undefined) {
        names.set(name, line);
      }
    }
    const actionField = fields.get('action');
    let action: Action | undefined;
    if (actionField === undefined) {
      this.r.error(node, `rule '${name ?? '?'}' has no action`, 'add action: kernel, fuse or deny');
    } else {
      action = this.oneOf(actionField.v, actionField.p, 'action', ACTIONS);
    }
    const rule: Rule = { name: name ?? '?', line, match: [], unless: [], action: action ?? 'deny' };
    for (const [key, { v, p }] of fields) {
      if (action === 'deny' && NOT_FOR_DENY.includes(key)) {
        this.r.error(p, `${key} has no effect on a deny rule`, 'remove it, or change the action');
        continue;
      }
      if (action === 'kernel' && FUSE_ONLY.includes(key)) {
        this.r.error(p, `${key} only applies to action fuse`, 'remove it, or change the action to fuse');
        continue;
      }
      switch (key) {
        case 'match': rule.match = this.conditions(v, p, 'match'); break;
        case 'unless': rule.unless = this.conditions(v, p, 'unless'); break;
        case 'reason': { const s = this.str(v, p, 'reason'); if (s !== undefined) rule.reason = s; break; }
        case 'backends': { const b = this.backends(v, p, 'backends', false); if (b !== undefined) rule.backends = b; break; }
        case 'force_options': { const o = this.options(v, p, 'force_options', action ?? 'any'); if (o) rule.forceOptions = o; break; }
        case 'refuse_options': { const o = this.options(v, p, 'refuse_options'); if (o) rule.refuseOptions = o; break; }
        case 'on_refused': { const o = this.oneOf(v, p, 'on_refused', ON_REFUSED); if (o) rule.onRefused = o; break; }
        case 'read_only': { const b = this.bool(v, p, 'read_only'); if (b !== undefined) rule.readOnly = b; break; }
        case 'allow_unsafe_write': { const b = this.bool(v, p, 'allow_unsafe_write'); if (b !== undefined) rule.allowUnsafeWrite = b; break; }
        case 'fallback': { const f = this.oneOf(v, p, 'fallback', FALLBACKS); if (f) rule.fallback = f; break; }
        case 'preflight': { const f = this.preflight(v, p, 'preflight'); if (f) rule.preflight = f; break; }
      }
    }
    if (action === 'deny' && !fields.has('reason')) {
      this.r.error(node, `deny rule '${name ?? '?'}' has no reason`, 'add reason: "…"; it is shown to whoever tried to mount');
    }
    this.checkOptionSets(fields.get('force_options')?.v ?? node, `rule '${rule.name}'`, rule.forceOptions ?? [], rule.refuseOptions ?? []);
    // A rule with errors is left out so the shadow check does not report on half a rule.
    const broken = this.r.diagnostics.slice(errorsBefore).some((d) => d.severity === 'error');
    return broken ? null : rule;
  }


  private checkOptionSets(node: YNode, where: string, force: string[], refuse: string[]): void {
    for (const o of force) {
      if (refuse.includes(o)) {
        this.r.error(node, `${where} both forces and refuses '${o}'`, 'keep it in only one of force_options and refuse_options');
      }
      const opp = opposite(o);
      if (opp !== undefined && force.includes(opp) && o < opp) {
        this.r.error(node, `${where} forces both '${o}' and '${opp}'`, 'keep only one of them');
      }
    }
  }

  /**
   * preflight: a mode (none, check, repair), or the long form
   * { mode: check, force: true } (docs/preflight.md).
   */
  private preflight(node: YNode | null, pair: Pair, what: string): Preflight | undefined {
    if (this.y.isMap(node)) {
      let mode: Preflight['mode'] | undefined;
      let force = false;
      let broken = false;
      for (const [key, v, p] of this.pairs(node, PREFLIGHT_KEYS, what)) {
        if (key === 'mode') {
          mode = this.oneOf(v, p, `${what}.mode`, PREFLIGHT_MODES);
          broken ||= mode === undefined;
        } else {
          const b = this.bool(v, p, `${what}.force`);
          broken ||= b === undefined;
          force = b ?? false;
        }
      }
      if (mode === undefined && !broken) {
        this.r.error(node, `${what} has no mode`, `write ${what}: { mode: check, force: true }`);
        return undefined;
      }
      if (mode === 'none' && force) {
        this.r.error(node, `${what}: force has no effect with mode none`, 'remove force, or set mode: check or repair');
        return undefined;
      }
      return mode === undefined ? undefined : { mode, force };
    }
    const mode = this.oneOf(node, pair, what, PREFLIGHT_MODES);
    return mode === undefined ? undefined : { mode, force: false };
  }

  /** backends: a list (any type) or, with perType, a mapping type → list. */
  private backends(node: YNode | null, pair: Pair, what: string, perTypeOnly: boolean): BackendPrefs | undefined {
    const known = BACKENDS.map((b) => b.name);
    const check = (items: Array<[string, YNode]>, fsType: string | null): string[] => {
      const ok: string[] = [];
      for (const [b, n] of items) {
        const backend = findBackend(b);
        if (backend === undefined) {
          const near = closest(b, known);
          this.r.error(n, `unknown backend '${b}'`, near !== undefined ? `did you mean '${near}'? known: ${known.join(', ')}` : `known backends: ${known.join(', ')}`);
        } else if (fsType !== null && !backend.types.some((t) => t.type === fsType)) {
          const serving = BACKENDS.filter((x) => x.types.some((t) => t.type === fsType)).map((x) => x.name);
          this.r.error(n, `backend '${b}' does not serve ${fsType}`,
            serving.length > 0 ? `backends for ${fsType}: ${serving.join(', ')}` : `no backend serves ${fsType}; deny it instead`);
        } else {
          ok.push(b);
        }
      }
      return ok;
    };
    if (this.y.isMap(node)) {
      const out: Record<string, string[]> = {};
      for (const p of node.items) {
        const k = this.deref(p.key);
        if (!this.y.isScalar(k) || typeof k.value !== 'string' || !FSTYPE_RE.test(k.value)) {
          this.r.error(k ?? p, `${what}: keys must be filesystem type names`, 'write e.g. ext4: [fuse4fs, fuse2fs]');
          continue;
        }
        const items = this.strings(this.deref(p.value), p, `${what}.${k.value}`, '[fuse4fs, fuse2fs]');
        if (items !== null) out[k.value] = check(items, k.value);
      }
      return out;
    }
    if (perTypeOnly) {
      this.r.error(node ?? pair, `${what} must map filesystem types to backend lists, found ${this.show(node)}`, 'write e.g. ext4: [fuse4fs, fuse2fs] indented under it');
      return undefined;
    }
    const items = this.strings(node, pair, what, '[fuse4fs, fuse2fs] or a mapping ext4: [fuse4fs, fuse2fs]');
    return items === null ? undefined : check(items, null);
  }

  /** match:/unless: one condition mapping, or a list of them (any one holding is enough). */
  private conditions(node: YNode | null, pair: Pair, what: string): Condition[] {
    if (this.y.isMap(node)) return [this.condition(node, what)];
    if (this.y.isSeq(node) && node.items.length === 0) {
      this.r.error(node, `${what} is an empty list`, what === 'match' ? 'omit match: to match every request' : 'remove it');
      return [];
    }
    if (this.y.isSeq(node)) {
      return node.items.map((i) => {
        const n = this.deref(i);
        if (this.y.isMap(n)) return this.condition(n, what);
        this.r.error(n ?? node, `${what}: each alternative must be a mapping of match keys, found ${this.show(n)}`, 'write e.g. - bus: usb');
        return {};
      });
    }
    this.r.error(node ?? pair, `${what} must be a mapping of match keys or a list of them, found ${this.show(node)}`,
      what === 'match' ? 'omit match: to match every request; otherwise write e.g. bus: usb' : 'write e.g. bus: usb');
    return [];
  }

  private condition(map: YAMLMap, what: string): Condition {
    const c: Condition = {};
    const keys = Object.keys(MATCH_KEYS);
    const pairs = this.pairs(map, keys, what);
    if (map.items.length === 0) {
      this.r.error(map, `${what}: empty condition`, what === 'match' ? 'omit match: to match every request' : 'remove it or add a match key');
    }
    for (const [key, v, p] of pairs) {
      const k = key as MatchKey;
      const spec = MATCH_KEYS[k];
      if (spec.kind === 'bool') {
        const b = this.bool(v, p, `${what}.${k}`);
        if (b !== undefined) c[k] = b;
        continue;
      }
      if (spec.kind === 'ids') {
        const items = this.listItems(v, p, `${what}.${k}`, `[alice, 1000]`);
        if (items === null) continue;
        const ids: Array<string | number> = [];
        for (const n of items) {
          const val = this.y.isScalar(n) ? n.value : undefined;
          if (typeof val === 'number' && Number.isInteger(val) && val >= 0 && val < 2 ** 32) ids.push(val);
          else if (typeof val === 'string' && /^[A-Za-z_][A-Za-z0-9_.-]*\$?$/.test(val)) ids.push(val);
          else this.r.error(n, `${what}.${k}: ${this.show(n)} is neither a ${k} name nor a numeric id`, `write a name such as ${k === 'user' ? 'alice' : 'disk'} or an id such as 1000`);
        }
        c[k] = ids;
        continue;
      }
      const items = this.strings(v, p, `${what}.${k}`, spec.values !== undefined ? `[${spec.values.slice(0, 2).join(', ')}]` : '["pattern*"]');
      if (items === null) continue;
      for (const [s, n] of items) {
        if (spec.values !== undefined && !spec.values.includes(s)) {
          const near = closest(s, spec.values);
          this.r.error(n, `unknown ${k} '${s}'`, `${near !== undefined ? `did you mean '${near}'? ` : ''}known: ${spec.values.join(', ')}`);
        } else if (spec.kind === 'options' && !OPTION_RE.test(s)) {
          this.r.error(n, `${what}.${k}: '${s}' is not one mount option`, 'list options one per item');
        }
      }
      c[k] = items.map(([s]) => s);
    }
    return c;
  }
}
