/**
 * The preflight's pure parts (docs/preflight.md): the message codec and its
 * named rules, the checkers table's reading of exit statuses and words, the
 * policy key (validation with line:column, the decision, explain), and what
 * the helper does with each verdict.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { actOn, readOnlyDecision, tellingLine } from '../../helper/preflight';
import { CHECKERS, dirtyFlagSet, findChecker, stepOutcome } from '../../lib/preflight/checkers';
import {
  decodeRequest, decodeVerdict, encodeRequest, encodeVerdict, MAGIC_CHECK, MAGIC_VERDICT, MAX_PREFLIGHT_MESSAGE,
  PreflightMessageError, type PreflightRule, type VerdictMessage,
} from '../../lib/preflight/messages';
import { decide, resolveFallback } from '../../policy/decide';
import { formatExplanation } from '../../policy/explain';
import { loadPolicy, parsePolicy } from '../../policy/load';
import { syntheticFacts } from '../../policy/synthetic';
import { validatePolicyText } from '../../policy/validate';

const DEFAULT_POLICY = path.resolve(__dirname, '../../policy/default-policy.yaml');

function rule(fn: () => unknown): PreflightRule | 'no error' {
  try {
    fn();
    return 'no error';
  } catch (err) {
    if (err instanceof PreflightMessageError) return err.rule;
    throw err;
  }
}

function request(over: { mode?: number; flags?: number; reserved?: number; timeout?: number; type?: Buffer; version?: number; magic?: number } = {}): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt32BE(over.magic ?? MAGIC_CHECK, 0);
  head.writeUInt8(over.version ?? 1, 4);
  head.writeUInt8(over.mode ?? 1, 5);
  head.writeUInt8(over.flags ?? 0, 6);
  head.writeUInt8(over.reserved ?? 0, 7);
  head.writeUInt32BE(over.timeout ?? 1000, 8);
  return Buffer.concat([head, over.type ?? Buffer.from('ext4\0')]);
}

describe('preflight messages', () => {
  it('CHECK round-trips, and carries exactly one fd', () => {
    const buf = encodeRequest({ type: 'exfat', mode: 'repair', force: true, timeoutMs: 25_000 });
    expect(decodeRequest(buf, 1)).toEqual({ kind: 'CHECK', type: 'exfat', mode: 'repair', force: true, timeoutMs: 25_000 });
    expect(rule(() => decodeRequest(buf, 0))).toBe('missing-fd');
    expect(rule(() => decodeRequest(buf, 2))).toBe('unexpected-fd');
  });

  it.each<[string, Buffer, PreflightRule]>([
    ['empty (peer closed)', Buffer.alloc(0), 'peer-closed'],
    ['no magic', Buffer.from([0x46, 0x47]), 'truncated'],
    ['a verdict sent as a request', encodeVerdict({ verdict: 'clean', repaired: false, exitCode: 0, elapsedMs: 1, checker: 'x', words: '' }), 'unknown-magic'],
    ['short', request().subarray(0, 12), 'truncated'],
    ['version 2', request({ version: 2 }), 'bad-version'],
    ['mode 0', request({ mode: 0 }), 'bad-mode'],
    ['mode 3', request({ mode: 3 }), 'bad-mode'],
    ['unknown flag', request({ flags: 2 }), 'unknown-flags'],
    ['reserved byte set', request({ reserved: 1 }), 'nonzero-reserved'],
    ['timeout 0', request({ timeout: 0 }), 'bad-timeout'],
    ['timeout over ten minutes', request({ timeout: 600_001 }), 'bad-timeout'],
    ['type without NUL', request({ type: Buffer.from('ext4') }), 'missing-nul'],
    ['NUL inside the type', request({ type: Buffer.from('ext\x004\0') }), 'embedded-nul'],
    ['type not UTF-8', request({ type: Buffer.from([0xff, 0xfe, 0]) }), 'bad-encoding'],
    ['type with a slash', request({ type: Buffer.from('../ext4\0') }), 'bad-type'],
    ['oversize', Buffer.concat([request({ type: Buffer.alloc(0) }), Buffer.alloc(MAX_PREFLIGHT_MESSAGE, 0x61)]), 'oversize'],
  ])('CHECK refused: %s', (_name, buf, expected) => {
    expect(rule(() => decodeRequest(buf, 1))).toBe(expected);
  });

  it('VERDICT round-trips; the words are cut from the front to fit, never mid-character', () => {
    const v = { verdict: 'marked' as const, repaired: true, exitCode: 4, elapsedMs: 1234, checker: 'e2fsck', words: 'line one\nline two' };
    expect(decodeVerdict(encodeVerdict(v), 0)).toEqual({ kind: 'VERDICT', ...v });
    const long = 'é'.repeat(5000) + '\nthe last line';
    const buf = encodeVerdict({ ...v, words: long });
    expect(buf.length).toBeLessThanOrEqual(MAX_PREFLIGHT_MESSAGE);
    const back = decodeVerdict(buf, 0);
    expect(back.words.endsWith('\nthe last line')).toBe(true);
    expect(back.words.startsWith('é')).toBe(true);
    // control characters from a hostile checker's output never reach a terminal
    expect(decodeVerdict(encodeVerdict({ ...v, words: 'a\x1b[2Jb\x07' }), 0).words).toBe('a?[2Jb?');
  });

  it.each<[string, (b: Buffer) => Buffer, number, PreflightRule]>([
    ['with an fd', (b) => b, 1, 'unexpected-fd'],
    ['verdict 4', (b) => (b.writeUInt8(4, 5), b), 0, 'bad-verdict'],
    ['unknown flag', (b) => (b.writeUInt8(2, 6), b), 0, 'unknown-flags'],
    ['reserved byte set', (b) => (b.writeUInt8(1, 7), b), 0, 'nonzero-reserved'],
    ['checker length past the end', (b) => (b.writeUInt16BE(400, 16), b), 0, 'truncated'],
    ['words without NUL', (b) => b.subarray(0, b.length - 1), 0, 'missing-nul'],
    ['wrong magic', (b) => (b.writeUInt32BE(MAGIC_CHECK, 0), b), 0, 'unknown-magic'],
  ])('VERDICT refused: %s', (_name, mangle, fds, expected) => {
    const buf = encodeVerdict({ verdict: 'clean', repaired: false, exitCode: 0, elapsedMs: 5, checker: 'fsck.fat', words: 'ok' });
    expect(buf.readUInt32BE(0)).toBe(MAGIC_VERDICT);
    expect(rule(() => decodeVerdict(mangle(Buffer.from(buf)), fds))).toBe(expected);
  });
});

describe('checkers table', () => {
  const e2fsck = findChecker('ext4')!.check[0]!;
  const ok = { code: 0, signal: null };

  it('has a check and a repair for every type with a writable backend it names', () => {
    expect(CHECKERS.map((c) => c.type).sort()).toEqual(['exfat', 'ext2', 'ext3', 'ext4', 'ntfs', 'vfat']);
    for (const c of CHECKERS) {
      expect(c.check.length, c.type).toBeGreaterThan(0);
      expect(c.repair.length, c.type).toBeGreaterThan(0);
      // a check never writes: every check step has -n or -m (ntfsinfo reads only)
      for (const s of c.check) expect(s.argv({ device: '/d', force: false }).some((a) => /^-f?n$|^-m$/.test(a)), `${c.type} ${s.program}`).toBe(true);
    }
    expect(findChecker('squashfs')).toBeUndefined();
  });

  it('e2fsck: force adds -f; exit 4 is damage; words mark a volume its exit status calls clean', () => {
    expect(e2fsck.argv({ device: '/d', force: true })).toEqual(['-fn', '/d']);
    expect(e2fsck.argv({ device: '/d', force: false })).toEqual(['-n', '/d']);
    expect(stepOutcome(e2fsck, ok, '/d: clean, 11/16384 files')).toBe('clean');
    expect(stepOutcome(e2fsck, ok, '/d was not cleanly unmounted, check forced.')).toBe('marked');
    expect(stepOutcome(e2fsck, ok, 'Warning: skipping journal recovery because doing a read-only filesystem check.')).toBe('marked');
    expect(stepOutcome(e2fsck, { code: 4, signal: null }, '/d was not cleanly unmounted')).toBe('damaged');
    expect(stepOutcome(e2fsck, { code: 8, signal: null }, '')).toBe('failed');
    expect(stepOutcome(e2fsck, { code: 3, signal: null }, '')).toBe('failed');
    expect(stepOutcome(e2fsck, { code: null, signal: 'SIGSEGV' }, '')).toBe('failed');
  });

  it('ntfsinfo: exit 1 with "scheduled for check" is a dirty mark, without it a failure', () => {
    const ntfsinfo = findChecker('ntfs')!.check[1]!;
    expect(stepOutcome(ntfsinfo, { code: 1, signal: null }, 'Volume is scheduled for check.\nPlease boot into Windows TWICE')).toBe('marked');
    expect(stepOutcome(ntfsinfo, { code: 1, signal: null }, 'Failed to open')).toBe('failed');
  });

  it('the exFAT VolumeDirty flag, only behind the exFAT signature', () => {
    const flag = findChecker('exfat')!.dirtyFlag!;
    const header = Buffer.alloc(512);
    header.write('EXFAT   ', 3, 'latin1');
    expect(dirtyFlagSet(flag, header)).toBe(false);
    header.writeUInt16LE(0x0002, 106);
    expect(dirtyFlagSet(flag, header)).toBe(true);
    header.write('NTFS    ', 3, 'latin1');
    expect(dirtyFlagSet(flag, header)).toBe(false);
    expect(dirtyFlagSet(flag, header.subarray(0, 100))).toBe(false);
  });
});

describe('policy: preflight', () => {
  const diags = (text: string) => validatePolicyText(text, 'p.yaml').diagnostics.map((d) => `${d.line}:${d.column} ${d.severity}: ${d.message} | ${d.hint}`);
  const rules = (body: string) => `version: 1\nrules:\n  - name: a\n    action: fuse\n${body}`;

  it('accepts a mode and the long form, in rules and defaults', () => {
    expect(diags(rules('    preflight: check\n'))).toEqual([]);
    expect(diags(rules('    preflight: { mode: repair, force: true }\n'))).toEqual([]);
    expect(diags('version: 1\ndefaults:\n  preflight: check\nrules: []\n')).toEqual([]);
    const p = parsePolicy(rules('    preflight: { mode: repair, force: true }\n'));
    expect(p.rules[0]!.preflight).toEqual({ mode: 'repair', force: true });
  });

  it.each<[string, string, string[]]>([
    ['unknown mode', rules('    preflight: fix\n'), ["5:16 error: preflight must be one of none, check, repair; found \"fix\" | write preflight: none"]],
    ['misspelt mode', rules('    preflight: chek\n'), ["5:16 error: preflight must be one of none, check, repair; found \"chek\" | did you mean 'check'?"]],
    ['force not a boolean', rules('    preflight: { mode: check, force: yes }\n'), ['5:38 error: preflight.force must be true or false, found "yes" | write true or false (yes/no/on/off are plain strings in YAML 1.2)']],
    ['no mode', rules('    preflight: { force: true }\n'), ['5:16 error: preflight has no mode | write preflight: { mode: check, force: true }']],
    ['force with none', rules('    preflight: { mode: none, force: true }\n'), ['5:16 error: preflight: force has no effect with mode none | remove force, or set mode: check or repair']],
    ['unknown key', rules('    preflight: { mode: check, fast: true }\n'), ["5:31 error: unknown key 'fast' in preflight | allowed keys: mode, force"]],
    ['on a kernel rule', 'version: 1\nrules:\n  - name: a\n    action: kernel\n    preflight: check\n', ['5:5 error: preflight only applies to action fuse | remove it, or change the action to fuse']],
    ['on a deny rule', 'version: 1\nrules:\n  - name: a\n    action: deny\n    reason: no\n    preflight: check\n', ['6:5 error: preflight has no effect on a deny rule | remove it, or change the action']],
  ])('refuses %s, with line:column and a hint', (_name, text, expected) => {
    expect(diags(text)).toEqual(expected);
  });

  it('the decision carries the rule\'s preflight, else the defaults\'; kernel and deny run none', () => {
    const p = parsePolicy('version: 1\ndefaults:\n  preflight: { mode: check, force: true }\nrules:\n  - name: usb\n    match: { bus: usb }\n    action: fuse\n    preflight: repair\n  - name: rest\n    match: { kind: image }\n    action: fuse\n  - name: k\n    action: kernel\n');
    expect(decide(p, syntheticFacts({ bus: 'usb', type: 'exfat' })).preflight).toEqual({ mode: 'repair', force: false, by: "rule 'usb'" });
    expect(decide(p, syntheticFacts({ kind: 'image', bus: 'virtual', type: 'exfat' })).preflight).toEqual({ mode: 'check', force: true, by: 'defaults.preflight' });
    expect(decide(p, syntheticFacts({ bus: 'ata', type: 'exfat' })).preflight.mode).toBe('none');
    // a fuse rule that falls back to the kernel runs no preflight: the kernel path never starts a checker
    const fb = parsePolicy('version: 1\nrules:\n  - name: f\n    action: fuse\n    fallback: kernel\n    preflight: check\n');
    const d = resolveFallback(decide(fb, syntheticFacts({ type: 'exfat' })), { backends: [] });
    expect(d.action).toBe('kernel');
    expect(d.preflight.mode).toBe('none');
  });

  it('the default policy checks removable media and images; explain shows the step', () => {
    const policy = loadPolicy(DEFAULT_POLICY, { cacheDir: null });
    const usb = resolveFallback(decide(policy!, syntheticFacts({ bus: 'usb', removable: true, type: 'exfat' })), { backends: ['exfat-fuse'] });
    expect(usb.preflight).toMatchObject({ mode: 'check', by: "rule 'removable-media'" });
    const img = decide(policy!, syntheticFacts({ kind: 'image', bus: 'virtual', type: 'vfat' }));
    expect(img.preflight).toMatchObject({ mode: 'check', by: "rule 'images-and-loop-devices'" });
    const text = formatExplanation({
      policy: { file: DEFAULT_POLICY, rules: policy!.rules.length, failClosed: null },
      diagnostics: [],
      facts: syntheticFacts({ bus: 'usb', removable: true, type: 'exfat' }),
      decision: usb,
      onThisMachine: usb,
    });
    expect(text).toMatch(/preflight\s+check \(rule 'removable-media'\): runs fsck\.exfat -n in a sandbox \(fusegate-check@\.service\) before the read-write mount; a dirty volume mounts read-only where its server can serve it so, else it is refused/);
    // ext4 through fuse2fs stays read-only by default: the preflight is skipped, and explain says so
    const ext4 = decide(policy!, syntheticFacts({ kind: 'image', bus: 'virtual', type: 'ext4' }));
    const e = formatExplanation({ policy: { file: DEFAULT_POLICY, rules: 1, failClosed: null }, diagnostics: [], facts: syntheticFacts({ kind: 'image', bus: 'virtual', type: 'ext4' }), decision: ext4, onThisMachine: resolveFallback(ext4, { backends: ['fuse2fs'] }) });
    expect(e).toMatch(/preflight\s+check .*skipped: the mount is read-only/);
  });

  it('explain states the trade-off of read-write ext4 through fuse2fs under repair', () => {
    const p = parsePolicy('version: 1\nrules:\n  - name: sticks\n    action: fuse\n    backends: [fuse2fs]\n    allow_unsafe_write: true\n    preflight: repair\n');
    const d = resolveFallback(decide(p, syntheticFacts({ kind: 'image', bus: 'virtual', type: 'ext4' })), { backends: ['fuse2fs'] });
    const text = formatExplanation({ policy: { file: 'p', rules: 1, failClosed: null }, diagnostics: [], facts: syntheticFacts({ kind: 'image', bus: 'virtual', type: 'ext4' }), decision: d, onThisMachine: d });
    expect(text).toMatch(/repair \(rule 'sticks'\): runs e2fsck -p, then e2fsck -n .*the trade-off: fuse2fs in Debian 12 does not write the ext3\/ext4 journal.*e2fsck -p under repair/);
  });
});

describe('what the helper does with a verdict', () => {
  const policy = parsePolicy('version: 1\nrules:\n  - name: fixit\n    match: { label: FIXIT }\n    action: fuse\n    preflight: repair\n  - name: sticks\n    action: fuse\n    preflight: check\n');
  const decision = (type: string, backend: string, label = 'STICK') =>
    resolveFallback(decide(policy, syntheticFacts({ kind: 'image', type, label })), { backends: [backend] });
  const verdict = (v: Partial<VerdictMessage>): VerdictMessage => ({ kind: 'VERDICT', verdict: 'clean', repaired: false, exitCode: 0, elapsedMs: 10, checker: 'fsck.exfat', words: '', ...v });
  const args = { source: '/dev/sdb1' } as never;

  it('clean: read-write, nothing said', () => {
    const r = actOn({ args, decision: decision('exfat', 'exfat-fuse') }, verdict({}));
    expect(r).toMatchObject({ action: 'read-write', line: null });
    expect(r.decision.readOnly).toBe(false);
  });

  it('marked dirty under check: read-only, why, and how to repair', () => {
    const r = actOn({ args, decision: decision('exfat', 'exfat-fuse') }, verdict({ verdict: 'marked', words: 'exfatprogs version : 1.2.0\n/run/fusegate/source: clean. directories 1, files 0\nthe exFAT VolumeDirty flag is set' }));
    expect(r.action).toBe('read-only');
    expect(r.line).toBe('/dev/sdb1 (exfat) is marked dirty (not cleanly unmounted) (fsck.exfat: the exFAT VolumeDirty flag is set); mounted read-only');
    expect(r.hint).toBe("to repair it in the sandbox, set 'preflight: repair' in rule 'sticks' of the fusegate policy and mount again; or, unmounted, run fsck.exfat -p /dev/sdb1");
    expect(r.decision).toMatchObject({ readOnly: true, readOnlyWhy: 'the preflight found it dirty: it is marked dirty (not cleanly unmounted)' });
    expect(r.decision.finalOptions).toContain('ro');
    expect(r.decision.finalOptions).not.toContain('rw');
    expect(r.decision.mountOptions.msFlags & 1).toBe(1);
  });

  it('damage exfat-fuse cannot serve even read-only: refused', () => {
    const r = actOn({ args, decision: decision('exfat', 'exfat-fuse') }, verdict({ verdict: 'damaged', exitCode: 4, words: 'ERROR: bad checksum' }));
    expect(r.action).toBe('refused');
    expect(r.line).toMatch(/has errors the checker did not fix \(fsck\.exfat: ERROR: bad checksum\); refused: exfat-fuse cannot serve it even read-only$/);
  });

  it('damage ntfs-3g can serve read-only: read-only; a failed check counts as damage', () => {
    expect(actOn({ args, decision: decision('ntfs', 'ntfs-3g') }, verdict({ verdict: 'damaged', checker: 'ntfsfix' })).action).toBe('read-only');
    expect(actOn({ args, decision: decision('ntfs', 'ntfs-3g') }, verdict({ verdict: 'failed', checker: '', words: 'cannot reach the checker' })).action).toBe('read-only');
    expect(actOn({ args, decision: decision('exfat', 'exfat-fuse') }, verdict({ verdict: 'failed', exitCode: -1 })).action).toBe('refused');
  });

  it('repair: read-write when it ends clean, refused otherwise', () => {
    const d = decision('vfat', 'fusegate-vfat', 'FIXIT');
    expect(d.preflight.mode).toBe('repair');
    const fixed = actOn({ args, decision: d }, verdict({ verdict: 'clean', repaired: true, checker: 'fsck.fat' }));
    expect(fixed).toMatchObject({ action: 'read-write', line: '/dev/sdb1 (vfat) was repaired in the sandbox by fsck.fat and checks clean' });
    const still = actOn({ args, decision: d }, verdict({ verdict: 'damaged', repaired: true, checker: 'fsck.fat' }));
    expect(still.action).toBe('refused');
    expect(still.line).toMatch(/after the repair .*refused: preflight repair mounts only a volume that ends clean/);
  });

  it('the telling line is a dirty mark where there is one, else the last line, bounded', () => {
    expect(tellingLine(verdict({ checker: 'e2fsck', words: 'e2fsck 1.47.0\n/run/fusegate/source was not cleanly unmounted, check forced.\nPass 1\n/run/fusegate/source: 11/16384 files' }), 'ext4')).toBe('/run/fusegate/source was not cleanly unmounted, check forced.');
    expect(tellingLine(verdict({ words: 'x'.repeat(500) }), 'exfat')).toHaveLength(200);
  });

  it('readOnlyDecision replaces rw with ro', () => {
    const d = decision('exfat', 'exfat-fuse');
    const ro = readOnlyDecision({ ...d, finalOptions: ['rw', 'nosuid', 'nodev'] }, 'because');
    expect(ro.finalOptions).toEqual(['nosuid', 'nodev', 'ro']);
    expect(ro.readOnly).toBe(true);
  });
});
