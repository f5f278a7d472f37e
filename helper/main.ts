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
import { signalDecided } from './decided';
import { buildContext, callerOf, releaseContext, requireRoot, type HelperHooks, type MountContext } from './context';
import { kernelMount } from './kernel-mount';
import { writeOut } from '../lib/output';
import { mark } from './timing';
import { recordInUtab, sandboxUtabOptions } from './utab';
import { timeoutMs } from '../lib/timeouts';
import { guardPathsThroughFuse } from './watchdog';
import { claimStorage, type Claim } from './one-writer';
import { mismatchWords, noFilesystemWords } from '../policy/probe-words';
import { wantsPreflight } from '../policy/decide';
import { forwardUserMount } from './fstab-user';

function say(line: string): void {
  writeOut(2, `mount.fusegate: ${line}\n`);
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
    // The name mount(8) ran (mount.vfat): the process itself is node running the launcher's helper.
    FUSEGATE_INVOKED_AS: ctx.args.invokedAs,
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

async function mountThroughPolicy(args: HelperArgs, log: Logger, started: number, hooks: HelperHooks): Promise<number> {
  const caller = callerOf();
  // An fstab `user`/`users` entry arrives as the user: the broker mounts it (helper/fstab-user.ts).
  if (caller.uid !== 0 || process.geteuid!() !== 0) {
    const forwarded = await forwardUserMount(args.mountpoint, say);
    if (forwarded !== null) {
      // The broker's answer is the decision: the launcher must not fall back on its own rule.
      signalDecided();
      return forwarded;
    }
  }
  requireRoot(caller);
  // Before SOURCE and DIR are touched: a FUSE server on their way that never
  // answers would hold the helper where only the watchdog's abort frees it.
  guardPathsThroughFuse([args.source, args.mountpoint]);
  mark('start');
  const ctx = buildContext(args, caller);
  mark('decided');
  signalDecided();
  let claim: Claim | null = null;
  try {
    let d = ctx.decision;
    const summary = describeDecision(ctx);
    if (ctx.policyError) say(`policy not loaded, failing closed: ${ctx.policyError.message}`);
    log.log(d.action === 'deny' ? Priority.WARNING : Priority.INFO, `decision: ${summary}`, decisionFields(ctx));
    if (args.verbose) printTrace(ctx);
    // a type other than -t asked for is mounted anyway: say so once (policy/probe-words.ts)
    const mismatch = d.action === 'deny' ? null : mismatchWords(ctx.facts);
    if (mismatch !== null) {
      say(mismatch);
      log.warning(mismatch, { FUSEGATE_RULE: d.rule, FUSEGATE_SOURCE: args.source, FUSEGATE_FSTYPE: d.fsType, FUSEGATE_REQUESTED_TYPE: ctx.facts.requestedType.value });
    }

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
    hooks.beforeMount?.();

    // one writer per storage (helper/one-writer.ts); held until the mount is visible
    claim = await claimStorage(ctx.source.fd, { source: args.source, mountpoint: args.mountpoint, readOnly: d.readOnly, backend: d.backend }, started + timeoutMs('mount'));
    if (!claim.verdict.allow) {
      say(claim.verdict.what);
      say(claim.verdict.todo);
      outcome('refused', { FUSEGATE_ERROR: claim.verdict.what, FUSEGATE_CONFLICT: claim.verdict.conflicts[0]?.existing.mountpoint ?? null });
      return MountExit.FAILURE;
    }
    if (claim.verdict.note !== null && args.verbose) say(claim.verdict.note);
    mark('claimed');

    const utab = [`x-fusegate.rule=${d.rule}`];

    if (d.action === 'kernel') {
      const { code, message } = await kernelMount({
        source: ctx.source,
        mountpoint: ctx.mountpoint,
        fsType: d.fsType!,
        options: d.mountOptions,
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

    const deadline = started + timeoutMs('mount');
    // The sandboxed check before a read-write mount (docs/preflight.md); loaded
    // only here, so the kernel and deny paths and read-only mounts never pay for it.
    if (wantsPreflight(d)) {
      const { preflightBeforeMount } = await import('./preflight.js');
      const pf = await preflightBeforeMount(ctx, log, deadline);
      mark('preflight');
      if (pf.line !== null) say(pf.line);
      if (pf.action === 'refused') {
        if (pf.hint !== null) say(pf.hint);
        outcome('refused', { FUSEGATE_ERROR: pf.line, FUSEGATE_PREFLIGHT_VERDICT: pf.verdict.verdict });
        return MountExit.FAILURE;
      }
      if (pf.action === 'read-only' && pf.hint !== null) say(pf.hint);
      d = ctx.decision;
    }
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
      // The server's -n drops only its own options: fusegate's record is what
      // makes umount(8) run umount.fusegate and wait for the server.
      if (!args.noMtab) {
        const options = sandboxUtabOptions({ backend: d.backend!, unit, rule: d.rule, mount: d.mountOptions, server: result });
        const err = await recordInUtab(args.source, ctx.mountpoint.path, `fuse.${d.backend}`, options);
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
export async function runHelper(argv: string[], argv0: string, hooks: HelperHooks = {}): Promise<number> {
  const started = Date.now();
  try {
    const parsed = parseArgs(argv, argv0);
    // --help, --version and usage errors are the helper's answer as well.
    if (parsed.kind !== 'mount') signalDecided();
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
    return await mountThroughPolicy(args, log, started, hooks);
  } catch (err) {
    if (err instanceof FusegateError) {
      // A deliberate refusal (not root, bad arguments, a source that cannot
      // be pinned) stands; only an internal error lets the launcher fall back.
      signalDecided();
      say(err.message);
      if (err.hint) say(err.hint);
      return err.exitCode;
    }
    say(`internal error: ${(err as Error)?.stack ?? String(err)}`);
    return MountExit.INTERNAL;
  }
}
