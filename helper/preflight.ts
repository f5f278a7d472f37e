/**
 * The preflight (docs/preflight.md): before a read-write sandboxed mount,
 * have the filesystem's checker look at the device in a sandbox of its own
 * (fusegate-check@.service, sandbox/check.ts), and act on its verdict:
 *
 *   check:  clean → read-write; dirty → read-only where the backend can serve
 *           it so (lib/backends.ts servesDirty), else refused
 *   repair: the checker's automatic repair, then a check; clean → read-write,
 *           anything else → refused
 *
 * The helper never parses the device itself: it opens it through the pin
 * with the caller's rights (read-only for a check, read-write and, for a
 * block device, exclusive for a repair), passes the fd and reads back a
 * small, strictly decoded verdict. Everything runs within the mount's
 * deadline; a checker that cannot answer in time counts as failed.
 * Loaded only on the sandbox path (helper/main.ts), like sandbox-mount.ts.
 */
import * as fs from 'node:fs';
import { findBackend } from '../lib/backends';
import * as native from '../lib/native';
import { findChecker } from '../lib/preflight/checkers';
import { decodeVerdict, encodeRequest, MAX_PREFLIGHT_MESSAGE, type VerdictMessage } from '../lib/preflight/messages';
import { checkSocketPath } from '../lib/preflight/socket';
import { mountOptionsOf } from '../policy/options';
import type { Decision } from '../policy/types';
import { Priority, type Logger } from '../lib/log';
import type { MountContext } from './context';

/** Time kept for the mount itself after the checker's deadline. */
export const MOUNT_RESERVE_MS = 3000;
/** A checker given less than this cannot do anything useful: the preflight fails instead. */
const MIN_CHECK_MS = 500;

export type PreflightAction = 'read-write' | 'read-only' | 'refused';

export interface PreflightResult {
  verdict: VerdictMessage;
  action: PreflightAction;
  /** the decision to carry out: read-only when the action is read-only */
  decision: Decision;
  /** one line for mount(8)'s stderr; null when there is nothing to say (a clean check) */
  line: string | null;
  /** how to repair, for a dirty volume */
  hint: string | null;
  /** the checker's most telling line */
  said: string;
}

function failed(words: string, started: number): VerdictMessage {
  return { kind: 'VERDICT', verdict: 'failed', repaired: false, exitCode: -1, elapsedMs: Date.now() - started, checker: '', words };
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
}

/** Asks fusegate-check for a verdict on the pinned source. Never throws: a failure is a 'failed' verdict. */
export async function askChecker(ctx: MountContext, deadline: number): Promise<VerdictMessage> {
  const started = Date.now();
  const { mode, force } = ctx.decision.preflight;
  const type = ctx.decision.fsType!;
  const budget = deadline - started - MOUNT_RESERVE_MS;
  if (budget < MIN_CHECK_MS) return failed(`no time left for a check within the mount's deadline (${Math.max(0, deadline - started)} ms)`, started);
  let device = -1;
  let sock = -1;
  try {
    const repair = mode === 'repair';
    // O_EXCL on a block device: no other opener (a kernel mount) while the repair writes.
    const flags = (repair ? fs.constants.O_RDWR : fs.constants.O_RDONLY) | (repair && ctx.source.stat.isBlockDevice() ? fs.constants.O_EXCL : 0);
    device = native.openAs(`/proc/self/fd/${ctx.source.fd}`, flags, 0, ctx.caller);
    sock = native.socketSeqpacket();
    native.refusePassedFds(sock);
    const socket = checkSocketPath();
    try {
      await native.connect(sock, socket, budget);
    } catch (err) {
      return failed(`cannot reach the checker at ${socket}: ${(err as Error).message}`, started);
    }
    await native.sendMessage(sock, encodeRequest({ type, mode: repair ? 'repair' : 'check', force, timeoutMs: deadline - Date.now() - MOUNT_RESERVE_MS }), device, budget);
    closeQuietly(device);
    device = -1;
    // The checker's own deadline is the request's; this one is the helper's, a little later.
    const raw = await native.receiveMessage(sock, MAX_PREFLIGHT_MESSAGE + 1, Math.max(1, deadline - Date.now() - MOUNT_RESERVE_MS / 2));
    for (const fd of raw.fds) closeQuietly(fd);
    if (raw.truncated) return failed('the checker answered with an oversize message', started);
    return decodeVerdict(raw.data, raw.fds.length);
  } catch (err) {
    const e = err as native.SyscallError;
    if (e.code === 'ETIMEDOUT') return failed('the checker did not answer within the mount\'s deadline', started);
    return failed(`the check failed: ${(err as Error).message}`, started);
  } finally {
    if (device >= 0) closeQuietly(device);
    if (sock >= 0) closeQuietly(sock);
  }
}

/** The decision with the mount made read-only, and why. */
export function readOnlyDecision(d: Decision, why: string): Decision {
  const options = [...d.finalOptions.filter((o) => o !== 'rw' && o !== 'ro'), 'ro'];
  return { ...d, readOnly: true, readOnlyWhy: why, finalOptions: options, mountOptions: mountOptionsOf(options) };
}

/** The checker line that says most: one its table calls a dirty mark, else its last line. */
export function tellingLine(v: VerdictMessage, type: string): string {
  const lines = v.words.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !/^\[… \d+ bytes left out …\]$/.test(l));
  const markers = findChecker(type)?.check.flatMap((s) => s.marked ?? []) ?? [];
  const marked = lines.find((l) => markers.some((re) => re.test(l)));
  const line = marked ?? lines[lines.length - 1] ?? '';
  return line.length > 200 ? line.slice(0, 199) + '…' : line;
}

function whatIsWrong(v: VerdictMessage): string {
  switch (v.verdict) {
    case 'marked': return 'is marked dirty (not cleanly unmounted)';
    case 'damaged': return 'has errors the checker did not fix';
    case 'failed': return 'could not be checked';
    case 'clean': return 'is clean';
  }
}

/** What the helper does with a verdict; pure, so tests can call it with made-up verdicts. */
export function actOn(ctx: Pick<MountContext, 'args' | 'decision'>, v: VerdictMessage): PreflightResult {
  const d = ctx.decision;
  const type = d.fsType!;
  const where = `${ctx.args.source} (${type})`;
  const said = tellingLine(v, type);
  const by = v.checker !== '' ? `${v.checker}: ${said}` : said;
  const checker = findChecker(type);
  const rule = d.rule === 'default' ? 'the defaults section' : `rule '${d.rule}'`;
  const repairHint = `to repair it in the sandbox, set 'preflight: repair' in ${rule} of the fusegate policy and mount again${checker ? `; or, unmounted, run ${checker.repairCommand} ${ctx.args.source}` : ''}`;
  if (v.verdict === 'clean') {
    const line = v.repaired ? `${where} was repaired in the sandbox by ${v.checker} and checks clean` : null;
    return { verdict: v, action: 'read-write', decision: d, line, hint: null, said };
  }
  if (d.preflight.mode === 'repair') {
    const line = `${where} ${whatIsWrong(v)}${v.repaired ? ' after the repair' : ''} (${by}); refused: preflight repair mounts only a volume that ends clean`;
    return { verdict: v, action: 'refused', decision: d, line, hint: `run ${checker?.repairCommand ?? 'its fsck'} ${ctx.args.source} by hand, or copy the data off a read-only mount (preflight: check)`, said };
  }
  const serves = findBackend(d.backend ?? '')?.types.find((t) => t.type === type)?.servesDirty;
  const readOnly = serves === 'read-only' || (serves === 'marked-only' && v.verdict === 'marked');
  if (readOnly) {
    const why = `the preflight found it dirty: it ${whatIsWrong(v)}`;
    return { verdict: v, action: 'read-only', decision: readOnlyDecision(d, why), line: `${where} ${whatIsWrong(v)} (${by}); mounted read-only`, hint: repairHint, said };
  }
  return {
    verdict: v,
    action: 'refused',
    decision: d,
    line: `${where} ${whatIsWrong(v)} (${by}); refused: ${d.backend} cannot serve it even read-only`,
    hint: repairHint,
    said,
  };
}

/**
 * The preflight step of a mount, for every front end that runs one (the
 * helper, the broker's worker): asks the checker, writes the journal entry,
 * and makes the decision to carry out the one the verdict allows (read-only
 * for a dirty volume) unless the mount is refused. What to tell the caller
 * (the line, the hint) is left to the front end.
 */
export async function preflightBeforeMount(ctx: MountContext, log: Logger, deadline: number): Promise<PreflightResult> {
  const asked = ctx.decision;
  const pf = actOn(ctx, await askChecker(ctx, deadline));
  logPreflight(log, asked, ctx.args.source, pf);
  if (pf.action !== 'refused') ctx.decision = pf.decision;
  return pf;
}

/**
 * The journal entry of one preflight: the checker's verdict, what was done,
 * and the checker's own words. `d` is the decision the preflight was run for.
 */
function logPreflight(log: Logger, d: Decision, source: string, pf: PreflightResult): void {
  const v = pf.verdict;
  log.log(pf.action === 'read-write' ? Priority.INFO : Priority.WARNING, `preflight ${d.preflight.mode}: ${source} is ${v.verdict}${v.repaired ? ', repaired' : ''}: ${pf.action}`, {
    FUSEGATE_RULE: d.rule,
    FUSEGATE_SOURCE: source,
    FUSEGATE_FSTYPE: d.fsType,
    FUSEGATE_BACKEND: d.backend,
    FUSEGATE_PREFLIGHT: d.preflight.mode,
    FUSEGATE_PREFLIGHT_FORCE: d.preflight.force,
    FUSEGATE_PREFLIGHT_VERDICT: v.verdict,
    FUSEGATE_PREFLIGHT_REPAIRED: v.repaired,
    FUSEGATE_PREFLIGHT_ACTION: pf.action,
    FUSEGATE_PREFLIGHT_MS: v.elapsedMs,
    FUSEGATE_CHECKER: v.checker || null,
    FUSEGATE_CHECKER_EXIT: v.exitCode,
    FUSEGATE_CHECKER_SAID: pf.said,
    FUSEGATE_CHECKER_OUTPUT: v.words,
  });
}
