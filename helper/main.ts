#!/usr/bin/env node
/**
 * mount.fusegate: the mount helper mount(8), fstab and udisks2 call.
 *
 * One obvious order: parse the command line; refuse non-root callers; build
 * the mount context (pin paths, gather facts, load the policy, decide); log
 * the decision; then carry it out on the kernel path or the sandbox path, or
 * refuse. Every path ends in one line on stderr (unless it succeeded
 * quietly), one journal entry for the outcome, and a mount(8) exit status.
 */
import { FusegateError, MountExit } from '../lib/errors';
import { VERSION } from '../lib/version';
import { createLogger, Priority, type Logger } from '../lib/log';
import { HELP, parseArgs, type HelperArgs } from './args';
import { buildContext, callerOf, releaseContext, requireRoot, type MountContext } from './context';
import { kernelMount } from './kernel-mount';
import { writeOut } from './output';
import { mark } from './timing';
import { recordInUtab, userspaceOptions } from './utab';
import { claimStorage, type Claim } from './one-writer';
import { mismatchWords, noFilesystemWords } from '../policy/probe-words';

const DEFAULT_TIMEOUT_S = 30;

function say(line: string): void {
  writeOut(2, `mount.fusegate: ${line}\n`);
}

/** The mount's time limit in ms (FUSEGATE_TIMEOUT seconds); the entry adds a last-resort margin. */
export function timeoutMs(): number {
  const s = Number(process.env.FUSEGATE_TIMEOUT ?? DEFAULT_TIMEOUT_S);
  return (Number.isFinite(s) && s > 0 ? s : DEFAULT_TIMEOUT_S) * 1000;
}

/** A one-line summary of what the policy decided, for stderr and the journal. */
function describeDecision(ctx: MountContext): string {
  const d = ctx.decision;
  const where = `${ctx.args.source} on ${ctx.args.mountpoint}`;
  const type = d.fsType ?? 'unknown type';
  const by = d.rule === 'default' ? 'the policy default' : `rule '${d.rule}'`;
  switch (d.action) {
    case 'deny':
      return `${where} (${type}): refused by ${by}: ${d.reason}`;
    case 'kernel':
      return `${where} (${type}): kernel driver, by ${by}${d.readOnly ? ', read-only' : ''}`;
    case 'fuse':
      return `${where} (${type}): sandboxed ${d.backend}, by ${by}${d.readOnly ? ', read-only' : ''}`;
  }
}

function decisionFields(ctx: MountContext) {
  const d = ctx.decision;
  return {
    FUSEGATE_DECISION: d.action,
    FUSEGATE_RULE: d.rule,
    FUSEGATE_REASON: d.reason,
    FUSEGATE_SOURCE: ctx.args.source,
    FUSEGATE_MOUNTPOINT: ctx.args.mountpoint,
    FUSEGATE_FSTYPE: d.fsType,
    FUSEGATE_BACKEND: d.backend,
    FUSEGATE_READ_ONLY: d.readOnly,
    FUSEGATE_OPTIONS: d.finalOptions.join(','),
    FUSEGATE_CALLER_UID: ctx.caller.uid,
    FUSEGATE_UHELPER: ctx.facts.uhelper.value,
    FUSEGATE_FALLBACK: d.fallbackApplied ? `${d.fallbackApplied.from}: ${d.fallbackApplied.why}` : undefined,
    FUSEGATE_POLICY_ERROR: ctx.policyError?.message,
  };
}

function printTrace(ctx: MountContext): void {
  const d = ctx.decision;
  say(`facts: type=${d.fsType} kind=${ctx.facts.kind.value} bus=${ctx.facts.bus.value} removable=${ctx.facts.removable.value} fstab=${ctx.facts.fstab.value}`);
  for (const t of d.trace) say(`rule '${t.rule}' (line ${t.line}): ${t.matched ? 'matched' : 'no match'}${t.why.length ? ': ' + t.why.join('; ') : ''}`);
  for (const n of d.notes) say(`note: ${n}`);
  say(`options: ${d.finalOptions.join(',') || '(none)'}`);
}

async function mountThroughPolicy(args: HelperArgs, log: Logger, started: number): Promise<number> {
  const caller = callerOf();
  requireRoot(caller);
  mark('start');
  const ctx = buildContext(args, caller);
  mark('decided');
  let claim: Claim | null = null;
  try {
    const d = ctx.decision;
    const summary = describeDecision(ctx);
    if (ctx.policyError) say(`policy not loaded, failing closed: ${ctx.policyError.message}`);
    log.log(d.action === 'deny' ? Priority.WARNING : Priority.INFO, `decision: ${summary}`, decisionFields(ctx));
    if (args.verbose) printTrace(ctx);
    // ---- issue 17: a type other than -t asked for is mounted anyway: say so once (policy/probe-words.ts)
    const mismatch = d.action === 'deny' ? null : mismatchWords(ctx.facts);
    if (mismatch !== null) {
      say(mismatch);
      log.warning(mismatch, { FUSEGATE_RULE: d.rule, FUSEGATE_SOURCE: args.source, FUSEGATE_FSTYPE: d.fsType, FUSEGATE_REQUESTED_TYPE: ctx.facts.requestedType.value });
    }
    // ----

    const outcome = (result: 'mounted' | 'refused' | 'failed', extra: Record<string, string | number | null> = {}) =>
      log.log(result === 'mounted' ? Priority.INFO : Priority.ERR, `${result}: ${ctx.args.source} on ${ctx.args.mountpoint}`, {
        FUSEGATE_OUTCOME: result,
        FUSEGATE_RULE: d.rule,
        FUSEGATE_DECISION: d.action,
        FUSEGATE_SOURCE: ctx.args.source,
        FUSEGATE_MOUNTPOINT: ctx.args.mountpoint,
        FUSEGATE_BACKEND: d.backend,
        FUSEGATE_DURATION_MS: Date.now() - started,
        ...extra,
      });

    if (d.action === 'deny') {
      say(summary);
      say(noFilesystemWords(ctx.facts)?.todo ?? `to see why: fusegate policy explain ${args.source} ${args.mountpoint}`);
      outcome('refused', { FUSEGATE_ERROR: d.reason });
      return MountExit.FAILURE;
    }
    if (args.verbose || args.fake) {
      say(summary);
      if (d.readOnly && d.readOnlyWhy) say(`read-only because ${d.readOnlyWhy}`);
    }
    if (args.fake) return MountExit.SUCCESS;

    // ---- issue 17: one writer per storage (helper/one-writer.ts); held until the mount is visible
    claim = await claimStorage(ctx.source.fd, { source: args.source, mountpoint: args.mountpoint, readOnly: d.readOnly, backend: d.backend }, started + timeoutMs());
    if (!claim.verdict.allow) {
      say(claim.verdict.what);
      say(claim.verdict.todo);
      outcome('refused', { FUSEGATE_ERROR: claim.verdict.what, FUSEGATE_CONFLICT: claim.verdict.conflicts[0]?.existing.mountpoint ?? null });
      return MountExit.FAILURE;
    }
    if (claim.verdict.note !== null && args.verbose) say(claim.verdict.note);
    // ----

    const utab = [`x-fusegate.rule=${d.rule}`];
    if (d.action === 'kernel') {
      const { code, message } = await kernelMount({
        source: args.source,
        mountpoint: args.mountpoint,
        fsType: d.fsType!,
        options: d.finalOptions,
        utabOptions: utab,
        noMtab: args.noMtab,
      });
      mark('mounted');
      if (code !== MountExit.SUCCESS) {
        // libmount's words, as mount(8) would print them, then ours.
        if (message !== null) say(message);
        say(`${summary}: the kernel mount failed (mount(8) exit code ${code})`);
        outcome('failed', { FUSEGATE_ERROR: message ?? `mount(8) exit code ${code}`, FUSEGATE_EXIT: code });
      } else {
        if (args.verbose) say(`${args.source} mounted on ${args.mountpoint}.`);
        outcome('mounted');
      }
      return code;
    }

    const deadline = started + timeoutMs();
    // Loaded only here: the kernel and deny paths never pay for the protocol code.
    const { sandboxMount } = await import('./sandbox-mount.js');
    try {
      const { result, unit, serverPid } = await sandboxMount(ctx, deadline, (e) => {
        if (e.kind === 'refused') {
          say(`refused the service's ${e.command}: ${e.why}`);
          log.warning(`refused ${e.command}: ${e.why}`, { FUSEGATE_RULE: d.rule, FUSEGATE_REFUSED: e.command, FUSEGATE_ERRNO: e.error });
        } else if (e.kind === 'policy-applied') {
          if (args.verbose) say(e.what);
          log.info(e.what, { FUSEGATE_RULE: d.rule });
        }
      });
      let exit: number = MountExit.SUCCESS;
      if (!args.noMtab && !result.utabDisabled) {
        // helper=fusegate: umount(8) then runs umount.fusegate, which waits for the server to finish writing.
        const options = [
          'helper=fusegate',
          `x-fusegate.backend=${d.backend}`,
          ...(unit ? [`x-fusegate.unit=${unit}`] : []),
          ...utab,
          ...userspaceOptions(d.finalOptions),
          ...result.utabOptions,
        ];
        const err = await recordInUtab(args.source, args.mountpoint, `fuse.${d.backend}`, options);
        if (err !== null) {
          say(`mounted, but utab could not be written: ${err}`);
          exit = MountExit.MTAB;
        }
      }
      outcome('mounted', { FUSEGATE_UNIT: unit, FUSEGATE_SERVER_PID: serverPid, FUSEGATE_MOUNT_API: result.mount.api });
      return exit;
    } catch (err) {
      const unit = (err as { unit?: string | null }).unit ?? null;
      say(`${summary}: ${(err as Error).message}`);
      outcome('failed', { FUSEGATE_ERROR: (err as Error).message, FUSEGATE_UNIT: unit });
      if (err instanceof FusegateError && err.hint) say(err.hint);
      return err instanceof FusegateError ? err.exitCode : MountExit.FAILURE;
    }
  } finally {
    claim?.release();
    releaseContext(ctx);
  }
}

/**
 * Runs the helper for one command line and returns its exit status. Kept free
 * of process.exit so tests can run it in-process and count fds around it.
 */
export async function runHelper(argv: string[], argv0: string): Promise<number> {
  const started = Date.now();
  try {
    const parsed = parseArgs(argv, argv0);
    if (parsed.kind === 'help') {
      writeOut(1, HELP + '\n');
      return MountExit.SUCCESS;
    }
    if (parsed.kind === 'version') {
      writeOut(1, `mount.fusegate from fusegate ${VERSION}\n`);
      return MountExit.SUCCESS;
    }
    const args = parsed.args;
    const log = createLogger({ identifier: 'fusegate', fallback: args.verbose ? 'stderr' : 'silent' });
    return await mountThroughPolicy(args, log, started);
  } catch (err) {
    if (err instanceof FusegateError) {
      say(err.message);
      if (err.hint) say(err.hint);
      return err.exitCode;
    }
    say(`internal error: ${(err as Error)?.stack ?? String(err)}`);
    return MountExit.INTERNAL;
  }
}
