import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FusegateError } from '../../lib/errors';
import {
  checkPolicy, loadPolicy, loadPolicyForMount, parsePolicy, PolicyError, policyPath,
} from '../../policy/load';
import { validatePolicyText } from '../../policy/validate';

/** "line:column severity: message | hint" for each diagnostic. */
function diags(text: string): string[] {
  return validatePolicyText(text, 'p.yaml').diagnostics.map((d) => `${d.line}:${d.column} ${d.severity}: ${d.message} | ${d.hint}`);
}

// [name, policy text, exact diagnostics]
const INVALID: Array<[string, string, string[]]> = [
  ['YAML syntax: unclosed flow sequence', `version: 1
rules:
  - name: a
    match: { bus: [usb }
    action: fuse
`, [
    '4:24 error: YAML syntax: Flow sequence in block collection must be sufficiently indented and end with a ] | close the [ with ] (and check indentation)',
    '5:5 error: YAML syntax: Flow map in block collection must be sufficiently indented and end with a } | close the { with } (and check indentation)',
  ]],
  ['YAML syntax: tab indentation', 'version: 1\nrules:\n\t- name: a\n', [
    '3:1 error: YAML syntax: Tabs are not allowed as indentation | indent with spaces; YAML does not allow tabs',
  ]],
  ['duplicate key', 'version: 1\nversion: 1\nrules: []\n', [
    '2:1 error: YAML syntax: Map keys must be unique | remove or rename one of the two keys',
  ]],
  ['two documents', 'version: 1\nrules: []\n---\nversion: 1\n', [
    '3:1 error: YAML syntax: Source contains multiple documents; please use YAML.parseAllDocuments() | remove the extra "---" document; a policy is one document',
  ]],
  ['empty file', '# nothing here\n', [
    "1:1 error: the policy file is empty | start it with 'version: 1' and a rules: list",
  ]],
  ['not a mapping', '- a\n- b\n', [
    "1:1 error: the policy must be a mapping with version, intercept, defaults and rules | start it with 'version: 1'",
  ]],
  ['missing version', 'rules:\n  - name: a\n    action: fuse\n', [
    "1:1 error: missing required key 'version' | add 'version: 1' at the top",
  ]],
  ['unsupported version', 'version: 2\nrules: []\n', [
    "1:10 error: unsupported policy version 2 | this fusegate reads version 1; write 'version: 1'",
  ]],
  ['unknown top-level key', 'version: 1\nrules: []\nrulez: []\n', [
    "3:1 error: unknown key 'rulez' in the policy | did you mean 'rules'?",
  ]],
  ['unknown rule key', 'version: 1\nrules:\n  - name: a\n    action: fuse\n    force_option: [nosuid]\n', [
    "5:5 error: unknown key 'force_option' in a rule | did you mean 'force_options'?",
  ]],
  ['unknown match key', 'version: 1\nrules:\n  - name: a\n    match:\n      buss: usb\n    action: fuse\n', [
    "5:7 error: unknown key 'buss' in match | did you mean 'bus'?",
  ]],
  ['unknown defaults key', 'version: 1\ndefaults:\n  color: blue\nrules: []\n', [
    "3:3 error: unknown key 'color' in defaults | allowed keys: action, reason, fallback, force_options, refuse_options, on_refused, read_only, allow_unsafe_write, backends, preflight",
  ]],
  ['rules not a list', 'version: 1\nrules:\n  name: a\n', [
    '3:3 error: rules must be a list, found a mapping | write each rule as an item starting with "- name: …"',
  ]],
  ['wrong type: yes for a boolean', 'version: 1\nrules:\n  - name: a\n    match:\n      removable: yes\n    action: fuse\n', [
    '5:18 error: match.removable must be true or false, found "yes" | write true or false (yes/no/on/off are plain strings in YAML 1.2)',
  ]],
  ['wrong type: number for a label', 'version: 1\nrules:\n  - name: a\n    match: { label: 2024 }\n    action: fuse\n', [
    '4:21 error: match.label: expected a string, found 2024 | quote it: "2024"',
  ]],
  ['wrong type: negative uid', 'version: 1\nrules:\n  - name: a\n    match: { user: [-1] }\n    action: fuse\n', [
    '4:21 error: match.user: -1 is neither a user name nor a numeric id | write a name such as alice or an id such as 1000',
  ]],
  ['empty match list', 'version: 1\nrules:\n  - name: a\n    match: { type: [] }\n    action: fuse\n', [
    '4:20 error: match.type is an empty list | list at least one value or remove the key',
  ]],
  ['match without value', 'version: 1\nrules:\n  - name: a\n    match:\n    action: fuse\n', [
    '4:11 error: match must be a mapping of match keys or a list of them, found null | omit match: to match every request; otherwise write e.g. bus: usb',
  ]],
  ['unknown action', 'version: 1\nrules:\n  - name: a\n    action: sandbox\n', [
    "4:13 error: action must be one of kernel, fuse, deny; found \"sandbox\" | write action: kernel",
  ]],
  ['misspelt action', 'version: 1\nrules:\n  - name: a\n    action: kernal\n', [
    "4:13 error: action must be one of kernel, fuse, deny; found \"kernal\" | did you mean 'kernel'?",
  ]],
  ['unknown bus', 'version: 1\nrules:\n  - name: a\n    match: { bus: usbb }\n    action: fuse\n', [
    "4:19 error: unknown bus 'usbb' | did you mean 'usb'? known: usb, mmc, memstick, ieee1394, thunderbolt, nvme, ata, virtio, xen, scsi, virtual, unknown",
  ]],
  ['unknown backend', 'version: 1\nrules:\n  - name: a\n    action: fuse\n    backends: [fuse3fs]\n', [
    "5:16 error: unknown backend 'fuse3fs' | did you mean 'fuse4fs'? known: fuse4fs, fuse2fs, fusegate-vfat, fusefat, exfat-fuse, ntfs-3g, squashfuse, fuseiso",
  ]],
  ['backend listed for a type it does not serve', 'version: 1\nrules:\n  - name: a\n    action: fuse\n    backends:\n      ext4: [fusefat]\n', [
    "6:14 error: backend 'fusefat' does not serve ext4 | backends for ext4: fuse4fs, fuse2fs",
  ]],
  ['defaults.backends must be per type', 'version: 1\ndefaults:\n  backends: [fuse2fs]\nrules: []\n', [
    '3:13 error: defaults.backends must map filesystem types to backend lists, found a list | write e.g. ext4: [fuse4fs, fuse2fs] indented under it',
  ]],
  ['unknown fallback', 'version: 1\ndefaults:\n  fallback: fuse\nrules: []\n', [
    '3:13 error: defaults.fallback must be one of deny, kernel; found "fuse" | write defaults.fallback: deny',
  ]],
  ['deny without reason', 'version: 1\nrules:\n  - name: a\n    action: deny\n', [
    "3:5 error: deny rule 'a' has no reason | add reason: \"…\"; it is shown to whoever tried to mount",
  ]],
  ['rule without name', 'version: 1\nrules:\n  - action: fuse\n', [
    '3:5 error: rule has no name | add name: a-short-name; it is logged with every decision',
  ]],
  ['rule without action', 'version: 1\nrules:\n  - name: a\n', [
    "3:5 error: rule 'a' has no action | add action: kernel, fuse or deny",
  ]],
  ['duplicate rule name', 'version: 1\nrules:\n  - name: a\n    match: { bus: usb }\n    action: fuse\n  - name: a\n    match: { bus: mmc }\n    action: fuse\n', [
    "6:11 error: rule name 'a' is already used on line 3 | give every rule its own name",
  ]],
  ['reserved rule name', 'version: 1\nrules:\n  - name: default\n    action: fuse\n', [
    "3:11 error: rule name 'default' is reserved for the defaults section | choose another name",
  ]],
  ['bad rule name', 'version: 1\nrules:\n  - name: usb sticks\n    action: fuse\n', [
    "3:11 error: rule name 'usb sticks' may only hold letters, digits, '.', '_' and '-' | rename it, e.g. usb-sticks",
  ]],
  ['fuse-only key on a kernel rule', 'version: 1\nrules:\n  - name: a\n    action: kernel\n    backends: [fuse2fs]\n', [
    '5:5 error: backends only applies to action fuse | remove it, or change the action to fuse',
  ]],
  ['option setting on a deny rule', 'version: 1\nrules:\n  - name: a\n    action: deny\n    reason: no\n    force_options: [nosuid]\n', [
    '6:5 error: force_options has no effect on a deny rule | remove it, or change the action',
  ]],
  ['option both forced and refused', 'version: 1\nrules:\n  - name: a\n    action: fuse\n    force_options: [nosuid]\n    refuse_options: [nosuid]\n', [
    "5:20 error: rule 'a' both forces and refuses 'nosuid' | keep it in only one of force_options and refuse_options",
  ]],
  ['contradicting forced options', 'version: 1\ndefaults:\n  force_options: [ro, rw]\nrules: []\n', [
    "3:18 error: defaults forces both 'ro' and 'rw' | keep only one of them",
  ]],
  ['option with a comma', 'version: 1\nrules:\n  - name: a\n    action: fuse\n    force_options: ["nosuid,nodev"]\n', [
    "5:21 error: force_options: 'nosuid,nodev' is not one mount option | list options one per item, without commas or spaces",
  ]],
  ['intercepting a FUSE type', 'version: 1\nintercept: [vfat, fuse.sshfs]\nrules: []\n', [
    "2:19 error: intercepting 'fuse.sshfs' would make the helper call itself | intercept the filesystem types (vfat, ext4, …), not FUSE types",
  ]],
  ['unreachable rule', `version: 1
rules:
  - name: usb
    match: { bus: [usb, mmc] }
    action: fuse
  - name: usb-ext4
    match: { bus: usb, type: ext4 }
    action: kernel
`, [
    "6:5 error: rule 'usb-ext4' can never match: rule 'usb' (line 3) matches every request it would | move 'usb-ext4' above 'usb', or narrow 'usb'",
  ]],
  ['rule after a catch-all', 'version: 1\nrules:\n  - name: all\n    action: fuse\n  - name: never\n    match: { bus: usb }\n    action: kernel\n', [
    "5:5 error: rule 'never' can never match: rule 'all' (line 3) matches every request it would | move 'never' above 'all', or narrow 'all'",
  ]],
  ['unreachable through a YAML alias', 'version: 1\nrules:\n  - name: a\n    match: &usb { bus: usb }\n    action: fuse\n  - name: b\n    match: *usb\n    action: deny\n    reason: x\n', [
    "6:5 error: rule 'b' can never match: rule 'a' (line 3) matches every request it would | move 'b' above 'a', or narrow 'a'",
  ]],
  // issue 12 finding 1: a sandboxed mount is always nosuid,nodev
  ['suid forced on a fuse rule', 'version: 1\nrules:\n  - name: sticks\n    match: { bus: usb }\n    action: fuse\n    force_options: [noexec, suid]\n', [
    "6:29 error: force_options: fusegate never mounts a sandboxed filesystem with 'suid' (every sandboxed mount is nosuid,nodev) | remove 'suid'; only a kernel rule for fixed internal disks may force it",
  ]],
  ['dev forced in the defaults', 'version: 1\ndefaults:\n  force_options: [nosuid, dev]\nrules: []\n', [
    "3:27 error: defaults.force_options: fusegate never mounts a sandboxed filesystem with 'dev' (every sandboxed mount is nosuid,nodev) | remove 'dev': the defaults apply to fuse rules too; force it in a kernel rule for fixed internal disks instead",
  ]],
];

describe('invalid policies: exact line:column diagnostics', () => {
  it('has at least 15 cases', () => {
    expect(INVALID.length).toBeGreaterThanOrEqual(15);
  });

  it.each(INVALID)('%s', (_name, text, expected) => {
    expect(diags(text)).toEqual(expected);
    expect(validatePolicyText(text, 'p.yaml').policy).toBeNull();
  });

  it('lists every error of a file in one pass, in file order', () => {
    const out = diags('version: 1\nrules:\n  - name: a\n    action: kernal\n  - name: b\n    match: { bus: usbb }\n    action: fuse\n    colour: red\n');
    expect(out.map((d) => d.split(' ')[0])).toEqual(['4:13', '6:19', '8:5']);
  });
});

describe('valid policies', () => {
  it('accepts the shipped default policy without diagnostics', () => {
    expect(checkPolicy(path.resolve(__dirname, '../../policy/default-policy.yaml'))).toEqual([]);
  });

  it('warns (but accepts) a kernel rule trusting a UUID alone', () => {
    const r = validatePolicyText('version: 1\nrules:\n  - name: t\n    match: { uuid: 1234-abcd }\n    action: kernel\n', 'p.yaml');
    expect(r.policy).not.toBeNull();
    expect(r.diagnostics.map((d) => `${d.line}:${d.column} ${d.severity}: ${d.message}`)).toEqual([
      "3:5 warning: rule 't' trusts the kernel driver on UUID or label alone; a USB stick can copy both",
    ]);
  });

  it('warns (but accepts) suid forced by a kernel rule: it holds only on fixed internal disks', () => {
    expect(diags('version: 1\nrules:\n  - name: disks\n    match: { bus: nvme }\n    action: kernel\n    force_options: [suid]\n')).toEqual([
      "6:21 warning: force_options: 'suid' takes effect only on fixed internal disks; any other source this rule matches is refused | remove 'suid', or narrow the rule to fixed internal disks (fixed_disk: true)",
    ]);
  });

  it('does not warn when the UUID rule is pinned to the hardware', () => {
    expect(diags('version: 1\nrules:\n  - name: t\n    match: { uuid: 1234-abcd, removable: false, bus: nvme }\n    action: kernel\n')).toEqual([]);
  });

  it('does not report shadowing it cannot prove', () => {
    // user names and uids may be the same person, globs may overlap: no error
    expect(diags(`version: 1
rules:
  - name: a
    match: { user: alice }
    action: fuse
  - name: b
    match: { user: 1000 }
    action: fuse
  - name: c
    match: { label: "A*" }
    action: fuse
  - name: d
    match: { label: "AB*" }
    action: fuse
  - name: e
    match: { bus: usb }
    unless: { type: vfat }
    action: fuse
  - name: f
    match: { bus: usb }
    action: deny
    reason: x
`)).toEqual([]);
  });

  it('turns the file into a normalised Policy', () => {
    const p = parsePolicy(`version: 1
intercept: [vfat]
defaults:
  fallback: kernel
  backends: { ext4: [fuse2fs] }
rules:
  - name: usb
    match: { bus: usb, user: [alice, 1000] }
    unless: [ { type: ntfs } ]
    action: fuse
    backends: [fuse2fs]
    force_options: [nosuid]
    refuse_options: [suid]
    on_refused: strip
    read_only: true
    allow_unsafe_write: true
    fallback: deny
`, 'x.yaml');
    expect(p).toEqual({
      version: 1,
      file: 'x.yaml',
      intercept: ['vfat'],
      defaults: {
        action: 'deny', reason: 'no policy rule matched this mount', fallback: 'kernel', forceOptions: [], refuseOptions: [],
        onRefused: 'deny', readOnly: false, allowUnsafeWrite: false, backends: { ext4: ['fuse2fs'] },
        preflight: { mode: 'none', force: false },
      },
      rules: [{
        name: 'usb', line: 7, match: [{ bus: ['usb'], user: ['alice', 1000] }], unless: [{ type: ['ntfs'] }],
        action: 'fuse', backends: ['fuse2fs'], forceOptions: ['nosuid'], refuseOptions: ['suid'], onRefused: 'strip',
        readOnly: true, allowUnsafeWrite: true, fallback: 'deny',
      }],
    });
  });

  it('accepts every rule example in policy/README.md', () => {
    const readme = fs.readFileSync(path.resolve(__dirname, '../../policy/README.md'), 'utf8');
    const examples = [...readme.matchAll(/```yaml\n(- name:[\s\S]*?)```/g)].map((m) => m[1]!);
    expect(examples.length).toBeGreaterThanOrEqual(4);
    for (const ex of examples) {
      const text = `version: 1\nrules:\n${ex.replace(/^/gm, '  ')}`;
      expect(diags(text), ex).toEqual([]);
    }
  });
});

describe('loading', () => {
  let dir: string;
  beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-policy-')); });
  afterAll(() => { fs.rmSync(dir, { recursive: true, force: true }); });
  const savedEnv = process.env.FUSEGATE_POLICY;
  beforeEach(() => { delete process.env.FUSEGATE_POLICY; });
  afterEach(() => {
    if (savedEnv === undefined) delete process.env.FUSEGATE_POLICY;
    else process.env.FUSEGATE_POLICY = savedEnv;
  });

  const write = (name: string, text: string): string => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  };

  it('throws a PolicyError (a FusegateError) carrying every diagnostic', () => {
    const p = write('bad.yaml', 'version: 1\nrules:\n  - name: a\n    action: kernal\n  - name: b\n    action: fuse\n    colour: red\n');
    let err: unknown;
    try { loadPolicy(p, { cacheDir: null }); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(PolicyError);
    expect(err).toBeInstanceOf(FusegateError);
    const pe = err as PolicyError;
    expect(pe.file).toBe(p);
    expect(pe.message).toBe(`invalid policy ${p}:4:13: action must be one of kernel, fuse, deny; found "kernal" (and 1 more)`);
    expect(pe.hint).toBe(`did you mean 'kernel'?; 'fusegate policy check ${p}' lists every problem`);
    expect(pe.diagnostics.map((d) => [d.file, d.line, d.column])).toEqual([[p, 4, 13], [p, 7, 5]]);
  });

  it('reports a missing file with a hint, and checkPolicy does not throw', () => {
    const p = path.join(dir, 'nope.yaml');
    expect(() => loadPolicy(p, { cacheDir: null })).toThrow(/cannot read the policy: ENOENT/);
    const d = checkPolicy(p);
    expect(d).toHaveLength(1);
    expect(d[0]).toMatchObject({ file: p, line: 0, column: 0, severity: 'error' });
    expect(d[0]!.hint).toMatch(/default-policy\.yaml/);
  });

  it('loadPolicyForMount falls back to the fail-closed policy and keeps the error', () => {
    const p = write('broken.yaml', 'version: [\n');
    const r = loadPolicyForMount(p, { cacheDir: null });
    expect(r.error).toBeInstanceOf(PolicyError);
    expect(r.policy.failClosed?.reason).toMatch(/^invalid policy .*broken\.yaml:/);
    expect(r.policy.rules.map((x) => x.name)).toEqual(['fail-closed-fstab']);
  });

  it('path: argument, then $FUSEGATE_POLICY, then /etc/fusegate/policy.yaml', () => {
    expect(policyPath()).toBe('/etc/fusegate/policy.yaml');
    process.env.FUSEGATE_POLICY = '/tmp/x.yaml';
    expect(policyPath()).toBe('/tmp/x.yaml');
    expect(policyPath('/a.yaml')).toBe('/a.yaml');
  });

  it('caches a validated policy and serves it only for the identical text', () => {
    const cache = path.join(dir, 'cache');
    const p = write('cached.yaml', 'version: 1\nrules:\n  - name: a\n    action: fuse\n');
    const first = loadPolicy(p, { cacheDir: cache });
    const entries = fs.readdirSync(cache);
    expect(entries).toHaveLength(1);
    expect(fs.statSync(path.join(cache, entries[0]!)).mode & 0o777).toBe(0o600);
    expect(fs.statSync(cache).mode & 0o777).toBe(0o700);

    // A forged entry with the same text is served (proving the cache is read)…
    const entryFile = path.join(cache, entries[0]!);
    const entry = JSON.parse(fs.readFileSync(entryFile, 'utf8'));
    entry.policy.rules[0].name = 'from-cache';
    fs.writeFileSync(entryFile, JSON.stringify(entry));
    expect(loadPolicy(p, { cacheDir: cache }).rules[0]!.name).toBe('from-cache');

    // …but not once anyone else may write it,
    fs.chmodSync(entryFile, 0o666);
    expect(loadPolicy(p, { cacheDir: cache }).rules[0]!.name).toBe('a');

    // and an edited policy is parsed afresh.
    fs.writeFileSync(p, 'version: 1\nrules:\n  - name: b\n    action: fuse\n');
    expect(loadPolicy(p, { cacheDir: cache }).rules[0]!.name).toBe('b');
    expect(first.rules[0]!.name).toBe('a');
  });

  it('never caches an invalid policy', () => {
    const cache = path.join(dir, 'cache2');
    const p = write('inv.yaml', 'version: 1\nrules: 3\n');
    expect(() => loadPolicy(p, { cacheDir: cache })).toThrow(PolicyError);
    expect(() => loadPolicy(p, { cacheDir: cache })).toThrow(PolicyError);
    expect(fs.existsSync(cache) ? fs.readdirSync(cache) : []).toEqual([]);
  });
});
