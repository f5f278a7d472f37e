/**
 * What the end-to-end scenarios look at, the way a user would: mount tables
 * (findmnt, utab), systemd's units, the journal, and the host kernel's log.
 */
import type { Container } from './container';
import { run, sleep } from './host';

export interface MountRow {
  target: string;
  source: string;
  fstype: string;
  options: string[];
}

/** The mount at `target` as findmnt shows it inside the container, or null. */
export async function findmnt(c: Container, target: string): Promise<MountRow | null> {
  const r = await c.exec(['findmnt', '--json', '--output', 'TARGET,SOURCE,FSTYPE,OPTIONS', '--mountpoint', target]);
  if (r.code !== 0) return null;
  const rows = (JSON.parse(r.stdout) as { filesystems: Array<Record<string, string>> }).filesystems;
  const last = rows[rows.length - 1];
  if (!last) return null;
  return { target: last.target!, source: last.source!, fstype: last.fstype!, options: (last.options ?? '').split(',') };
}

/** The userspace options libmount recorded for `target` in /run/mount/utab, or null. */
export async function utabOptions(c: Container, target: string): Promise<string[] | null> {
  const r = await c.exec(['cat', '/run/mount/utab']);
  if (r.code !== 0) return null;
  for (const line of r.stdout.split('\n')) {
    const fields = new Map(line.split(' ').map((f) => [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)] as const));
    if (fields.get('TARGET') === target) return (fields.get('OPTS') ?? '').split(',');
  }
  return null;
}

export interface UnitRow {
  unit: string;
  load: string;
  active: string;
  sub: string;
}

/** Units matching `pattern` (e.g. 'fuse2fs@*'), loaded or not, as systemctl lists them. */
export async function listUnits(c: Container, pattern: string): Promise<UnitRow[]> {
  const r = await c.execOk(['systemctl', 'list-units', '--all', '--no-legend', '--plain', '--full', pattern]);
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 4 && f[0] !== '')
    .map(([unit, load, active, sub]) => ({ unit: unit!, load: load!, active: active!, sub: sub! }));
}

/** Waits until no unit matches `pattern`; returns what is left after `ms`. */
export async function waitForNoUnits(c: Container, pattern: string, ms = 10_000): Promise<UnitRow[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const left = await listUnits(c, pattern);
    if (left.length === 0 || Date.now() > deadline) return left;
    await sleep(100);
  }
}

/** Waits for a unit matching `pattern` in one of `states` (ActiveState); null after `ms`. */
export async function waitForUnit(c: Container, pattern: string, states: string[], ms = 10_000): Promise<UnitRow | null> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = (await listUnits(c, pattern)).find((u) => states.includes(u.active));
    if (found || Date.now() > deadline) return found ?? null;
    await sleep(50);
  }
}

export async function unitProperty(c: Container, unit: string, property: string): Promise<string> {
  return (await c.execOk(['systemctl', 'show', '--property', property, '--value', unit])).stdout.trim();
}

export type JournalEntry = Record<string, string>;

/** A cursor after the journal's current end (journald flushed first). */
export async function journalCursor(c: Container): Promise<string> {
  await c.exec(['journalctl', '--sync']);
  const r = await c.execOk(['journalctl', '--lines=1', '--output=json', '--no-pager']);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return line === '' ? '' : ((JSON.parse(line) as JournalEntry).__CURSOR ?? '');
}

/**
 * Journal entries after `cursor` with every FIELD=value of `matches`, oldest
 * first. The matches are applied here, not by journalctl: systemd 252's
 * journalctl, given --after-cursor and a match the cursor's own entry does
 * not satisfy, drops the first matching entry after it.
 */
export async function journalSince(
  c: Container,
  cursor: string,
  matches: string[] = [],
  opts: { fields?: string[] } = {},
): Promise<JournalEntry[]> {
  await c.exec(['journalctl', '--sync']);
  const argv = ['journalctl', '--output=json', '--no-pager', ...(cursor ? [`--after-cursor=${cursor}`] : [])];
  if (opts.fields) argv.push(`--output-fields=${opts.fields.join(',')}`);
  const r = await c.exec(argv, { maxOutputBytes: 64 * 1024 * 1024 });
  const want = matches.map((m) => [m.slice(0, m.indexOf('=')), m.slice(m.indexOf('=') + 1)] as const);
  const entries: JournalEntry[] = [];
  for (const line of r.stdout.split('\n')) {
    if (line.trim() === '') continue;
    let e: Record<string, unknown>;
    try {
      e = JSON.parse(line) as Record<string, unknown>;
    } catch {
      // Only a last line cut off by the output cap can be incomplete.
      continue;
    }
    // Binary fields come as byte arrays: decode them.
    for (const [k, v] of Object.entries(e)) if (Array.isArray(v)) e[k] = Buffer.from(v as number[]).toString('utf8');
    if (want.every(([k, v]) => e[k] === v)) entries.push(e as JournalEntry);
  }
  return entries;
}

/**
 * journalSince(), polled until `done` holds for the entries (or `ms` passed):
 * journald reads datagrams asynchronously, and systemd 252's
 * `journalctl --sync` does not wait for ones still queued on its socket.
 */
export async function waitForJournal(
  c: Container,
  cursor: string,
  matches: string[],
  done: (entries: JournalEntry[]) => boolean,
  ms = 5_000,
): Promise<JournalEntry[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const entries = await journalSince(c, cursor, matches);
    if (done(entries) || Date.now() > deadline) return entries;
    await sleep(100);
  }
}

/** Replaces a whole policy file inside the container and checks it with `fusegate policy check`. */
export async function writePolicy(c: Container, text: string): Promise<void> {
  await c.execOk(['sh', '-c', 'cat > /etc/fusegate/policy.yaml'], { input: text });
  await c.execOk(['fusegate', 'policy', 'check', '/etc/fusegate/policy.yaml']);
}

export async function readPolicy(c: Container): Promise<string> {
  return (await c.execOk(['cat', '/etc/fusegate/policy.yaml'])).stdout;
}

/**
 * Adds `key: value` lines right after the `action:` line of rule `rule`
 * in a policy text (as an administrator would edit it), or throws.
 */
export function addToRule(policy: string, rule: string, lines: string[]): string {
  const out: string[] = [];
  let inRule = false;
  let done = false;
  for (const line of policy.split('\n')) {
    out.push(line);
    if (/^  - name: /.test(line)) inRule = line.trim() === `- name: ${rule}`;
    if (inRule && !done && /^    action: /.test(line)) {
      out.push(...lines.map((l) => `    ${l}`));
      done = true;
    }
  }
  if (!done) throw new Error(`policy has no rule '${rule}' with an action line`);
  return out.join('\n');
}

/** Inserts rule lines (already indented as list items) as the first rules of a policy text. */
export function prependRule(policy: string, ruleLines: string[]): string {
  if (!/^rules:$/m.test(policy)) throw new Error('policy has no rules: section');
  return policy.replace(/^rules:$/m, `rules:\n${ruleLines.join('\n')}\n`);
}

// ------------------------------------------------------------- host kernel log

export interface KernelLine {
  /** seconds since boot, from the [ssss.uuuuuu] prefix */
  time: number;
  text: string;
}

/** The host kernel's ring buffer, via dmesg (root). */
export async function kernelLog(): Promise<KernelLine[]> {
  const r = await run(['dmesg', '--kernel', '--nopager'], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`dmesg failed: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .map((l) => {
      const m = /^\[\s*(\d+\.\d+)\]\s?(.*)$/.exec(l);
      return m ? { time: Number(m[1]), text: m[2]! } : null;
    })
    .filter((l): l is KernelLine => l !== null);
}

/** The time of the newest kernel log line: later lines are the ones a scenario caused (or saw). */
export async function kernelLogMark(): Promise<number> {
  const lines = await kernelLog();
  return lines.length === 0 ? 0 : lines[lines.length - 1]!.time;
}

export async function kernelLinesSince(mark: number): Promise<KernelLine[]> {
  return (await kernelLog()).filter((l) => l.time > mark);
}

/** Lines that mean the kernel itself got into trouble. */
export const KERNEL_TROUBLE = /Oops|BUG:|WARNING:|general protection|Call Trace|kernel panic|stack-protector|KASAN|UBSAN/i;
