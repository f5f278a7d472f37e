/**
 * Rendering facts, the rules tried and a decision for a person, or as one
 * JSON document for scripts. Facts are listed under the names rules use to
 * match them, so what explain shows can be pasted into a policy.
 */
import type { StorageExplanation } from './one-writer';
import { mismatchWords, noFilesystemWords } from './probe-words';
import type { Decision, Diagnostic, Fact, Facts } from './types';
import { type CheckerStep, findChecker } from '../lib/preflight/checkers';
import { findBackend } from '../lib/backends';

export interface Explanation {
  policy: { file: string; rules: number; failClosed: string | null };
  diagnostics: Diagnostic[];
  facts: Facts;
  /** what the policy decides */
  decision: Decision;
  /** what the helper would do on this machine now: the installed backend, or the fallback */
  onThisMachine: Decision;
  /** which storage the source is and which mounts of it exist (null: not a device or file) */
  storage?: StorageExplanation | null;
}

export function formatDiagnostic(d: Diagnostic): string {
  const where = d.line > 0 ? `${d.file}:${d.line}:${d.column}` : d.file;
  return `${where}: ${d.severity}: ${d.message}\n    hint: ${d.hint}`;
}

function show(v: unknown): string {
  if (v === null || v === undefined) return '(none)';
  if (Array.isArray(v)) return v.length === 0 ? '(none)' : v.map(show).join(', ');
  if (typeof v === 'object') {
    const o = v as { id?: number; name?: string | null };
    return o.name ? `${o.id}(${o.name})` : String(o.id);
  }
  return String(v);
}

/** [label shown, fact]; labels are match keys where a key exists. */
function factRows(f: Facts): Array<[string, Fact<unknown>]> {
  return [
    ['source (given)', f.source], ['source', f.path], ['kind', f.kind], ['device', f.device],
    ['type', f.type], ['requested_type', f.requestedType], ['usage', f.usage],
    ['uuid', f.uuid], ['label', f.label], ['partuuid', f.partuuid], ['partlabel', f.partlabel],
    ['loop', f.loop], ['backing_file', f.backingFile], ['bus', f.bus], ['udev ID_BUS', f.udevBus],
    ['removable', f.removable], ['fixed_disk', f.fixedDisk],
    ['fstab', f.fstab], ['fstab_match', f.fstabMatch], ['mountpoint', f.mountpoint],
    ['image_owner', f.imageOwner], ['image_mode', f.imageMode], ['image_root_only', f.imageRootOnly],
    ['user', f.user], ['group', f.groups], ['uhelper', f.uhelper], ['session', f.session], ['options', f.options],
    ['has_backend', f.hasBackend],
  ];
}

function table(rows: Array<[string, string, string?]>, indent = '  '): string[] {
  const w = Math.max(...rows.map(([k]) => k.length));
  const v = Math.min(36, Math.max(...rows.map(([, x]) => x.length)));
  return rows.map(([k, x, src]) => `${indent}${k.padEnd(w)}  ${src === undefined ? x : `${x.padEnd(v)}  [${src}]`}`.trimEnd());
}

export function formatExplanation(e: Explanation): string {
  const { facts: f, decision: d } = e;
  const out: string[] = [];
  const target = f.mountpoint.value === null ? '' : ` on ${f.mountpoint.value}`;
  out.push(`Facts for ${f.source.value}${target}`);
  out.push(...table(factRows(f).map(([k, fact]) => [k, show(fact.value), fact.source])));
  if (d.notes.length > 0) {
    out.push('', 'Notes');
    for (const n of d.notes) out.push(`  - ${n}`);
  }
  out.push('');
  if (e.policy.failClosed !== null) {
    out.push(`Policy: ${e.policy.file}: the real policy could not be loaded, so the helper fails closed`);
    out.push(`  ${e.policy.failClosed}`);
    for (const diag of e.diagnostics.filter((x) => x.severity === 'error')) out.push(`  ${formatDiagnostic(diag).replace(/\n/g, '\n  ')}`);
  } else {
    out.push(`Policy: ${e.policy.file} (${e.policy.rules} rule${e.policy.rules === 1 ? '' : 's'})`);
  }
  out.push('', 'Rules tried, first match wins');
  if (d.trace.length === 0) out.push('  (the policy has no rules)');
  for (const t of d.trace) {
    out.push(`  ${t.matched ? 'MATCH' : 'no   '}  ${t.rule}${t.line > 0 ? ` (line ${t.line})` : ''}`);
    for (const w of t.why) out.push(`           ${w}`);
  }
  const untried = e.policy.rules - d.trace.length;
  if (untried > 0) out.push(`  (${untried} later rule${untried === 1 ? '' : 's'} not tried)`);
  if (d.rule === 'default') out.push('  no rule matched: the defaults section decides');

  out.push('', 'Decision');
  const rows: Array<[string, string]> = [
    ['action', d.action.toUpperCase()],
    ['rule', d.ruleLine !== null && d.ruleLine > 0 ? `${d.rule} (line ${d.ruleLine})` : d.rule],
    ['reason', d.reason],
    ['type', show(d.fsType)],
  ];
  if (d.fallbackApplied !== null) rows.push(['fallback used', `${d.fallbackApplied.from} was not possible: ${d.fallbackApplied.why}`]);
  if (d.action === 'fuse') {
    rows.push(['backends', d.backendPlans.map((p) => `${p.backend} (${p.readOnly ? 'read-only' : 'read-write'})`).join(', ')]);
    for (const p of d.backendPlans) if (p.readOnlyWhy !== null) rows.push([`  ${p.backend}`, `read-only: ${p.readOnlyWhy}`]);
    rows.push(['fallback', `${d.fallback} (when none of the backends is installed or FUSE is unavailable)`]);
  }
  if (d.action !== 'deny') {
    rows.push(['forced', show(d.forcedOptions)]);
    if (d.refusedOptions.options.length > 0) rows.push([d.refusedOptions.handling === 'strip' ? 'stripped' : 'refused', show(d.refusedOptions.options)]);
    if (d.overriddenOptions.length > 0) rows.push(['overridden', show(d.overriddenOptions)]);
    rows.push(['read-only', d.readOnly ? `yes: ${d.readOnlyWhy}` : 'no']);
    // On this machine: whether the mount is read-write (and so checked) depends on the backend really used.
    if (d.action === 'fuse') rows.push(['preflight', preflightLine(e.onThisMachine.action === 'fuse' ? e.onThisMachine : d)]);
    // For the policy's first choice; 'on this machine' says which backend would really serve it.
    const via = d.action === 'fuse' ? ` (through ${d.backend ?? d.backendPlans[0]!.backend}, the first choice)` : '';
    rows.push(['mount -o', `${d.finalOptions.join(',') || '(none)'}${via}`]);
  } else if (d.refusedOptions.options.length > 0) {
    rows.push(['refused', show(d.refusedOptions.options)]);
  }
  rows.push(['on this machine', nowLine(e.onThisMachine)]);
  // Issue 17: the helper's words for a damaged or mislabelled medium.
  const unprobed = noFilesystemWords(f);
  if (unprobed !== null) rows.push(['what to do', unprobed.todo]);
  const mismatch = mismatchWords(f);
  if (mismatch !== null) rows.push(['type mismatch', mismatch]);
  out.push(...table(rows));
  if (e.storage) out.push('', ...storageLines(e.storage));
  return out.join('\n') + '\n';
}

/** The preflight step (docs/preflight.md): which checker runs, when, and what a dirty volume gets. */
function preflightLine(d: Decision): string {
  const p = d.preflight;
  if (p.mode === 'none') return `none (${p.by})`;
  const checker = findChecker(d.fsType);
  const force = p.force ? ', forced full check' : '';
  if (checker === undefined) return `${p.mode} (${p.by}${force}), but fusegate has no checker for ${d.fsType}: the mount would be treated as not checked`;
  const cmd = p.mode === 'repair' ? `${checker.repairCommand}, then ${commandOf(checker.check)}` : commandOf(checker.check);
  const when = d.readOnly ? 'skipped: the mount is read-only' : `runs ${cmd} in a sandbox (fusegate-check@.service) before the read-write mount`;
  const then = p.mode === 'repair'
    ? 'a volume that does not end clean is refused'
    : 'a dirty volume mounts read-only where its server can serve it so, else it is refused';
  // allow_unsafe_write with repair (fuse2fs on ext4): say what the next preflight has to make up for.
  const w = findBackend(d.backend ?? d.backends[0] ?? '')?.types.find((t) => t.type === d.fsType);
  const trade = !d.readOnly && w?.write === 'unsafe'
    ? `; the trade-off: ${w.writeNote ?? 'its writes are not crash-safe'}, so a stick pulled while mounted relies on the next preflight (${checker.repairCommand} under repair) to bring it back`
    : '';
  return `${p.mode} (${p.by}${force}): ${when}; ${then}${trade}`;
}

function commandOf(steps: readonly CheckerStep[]): string {
  return steps.map((s) => `${s.program.split('/').pop()} ${s.argv({ device: 'DEVICE', force: false }).filter((a) => a !== 'DEVICE').join(' ')}`.trim()).join(' and ');
}

/** The decision after availability: which backend would serve it, or which fallback applies. */
function nowLine(n: Decision): string {
  const what = n.action === 'fuse' ? `fuse through ${n.backend}${n.readOnly ? ', read-only' : ''}` : n.action;
  return n.fallbackApplied !== null ? `${what} (${n.fallbackApplied.why})` : what;
}

/** Issue 17: the storage identities and the mounts that share them (policy/one-writer.ts). */
function storageLines(s: StorageExplanation): string[] {
  const out = ['Storage (one writer per storage)'];
  for (const p of s.path) out.push(`  via       ${p}`);
  for (const i of s.identities) out.push(`  is        ${i}`);
  if (s.conflicts.length === 0) out.push('  mounted   nowhere else');
  for (const c of s.conflicts) out.push(`  mounted   ${c}`);
  if (s.verdict !== null) out.push(`  verdict   ${s.verdict}`);
  return out;
}
