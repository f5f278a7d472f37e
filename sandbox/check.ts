#!/usr/bin/env node
/**
 * The preflight checker: what fusegate-check@.service starts (Accept=yes,
 * one instance per check) with the helper's connection on fd 3. It runs in
 * the same sandbox as the FUSE servers (DynamicUser, no capabilities, no
 * device nodes, no network, a system call filter), because a checker parses
 * the same hostile bytes a driver does (docs/preflight.md).
 *
 * One request, one answer: receive CHECK with the device fd (lib/preflight/
 * messages.ts), run the type's checker programs from lib/preflight/checkers.ts
 * with the device on fd 3 through the fdmap preload (reopening
 * /proc/self/fd/N of a block device is refused by DevicePolicy=closed), and
 * answer VERDICT. Every program runs under the request's deadline and is
 * killed at it; its output is kept bounded.
 *
 *   check-start.js        (no arguments; entry: check-entry.ts)
 */
import * as fs from 'node:fs';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { createLogger, type Logger } from '../lib/log';
import * as native from '../lib/native';
import {
  type Checker, type CheckerStep, dirtyFlagSet, findChecker, HEADER_BYTES, type StepOutcome, stepOutcome, worse,
} from '../lib/preflight/checkers';
import {
  type CheckRequest, decodeRequest, encodeVerdict, MAX_PREFLIGHT_MESSAGE, PreflightMessageError, type Verdict, type VerdictMessage,
} from '../lib/preflight/messages';
import { allowedDeviceIoctls } from './device-ioctls';
import { preloadPath, SANDBOX_SOURCE } from './launch';

const LISTEN_FD = 3;
/** The device's fd number in each checker program (the preload maps SANDBOX_SOURCE to it). */
const CHILD_SOURCE_FD = 3;
/** How long the helper has to send its request once connected. */
const REQUEST_TIMEOUT_MS = 5000;
/** Output kept per program: its head (where e2fsck says why it checks) and its tail (its summary). */
const KEEP_BYTES = 16 * 1024;
/** The words sent back: the last lines of the last program that mattered. */
const WORDS_BYTES = 1500;

interface StepRun {
  program: string;
  outcome: StepOutcome;
  exitCode: number;
  words: string;
}

/** Keeps the first and the last KEEP_BYTES of a stream. */
class BoundedOutput {
  private head = Buffer.alloc(0);
  private tail: Buffer[] = [];
  private tailBytes = 0;
  private dropped = 0;

  add(chunk: Buffer): void {
    if (this.head.length < KEEP_BYTES) {
      const take = Math.min(chunk.length, KEEP_BYTES - this.head.length);
      this.head = Buffer.concat([this.head, chunk.subarray(0, take)]);
      chunk = chunk.subarray(take);
    }
    if (chunk.length === 0) return;
    this.tail.push(chunk);
    this.tailBytes += chunk.length;
    while (this.tailBytes - this.tail[0]!.length >= KEEP_BYTES) {
      this.dropped += this.tail[0]!.length;
      this.tailBytes -= this.tail.shift()!.length;
    }
  }

  text(): string {
    const gap = this.dropped > 0 ? `\n[… ${this.dropped} bytes left out …]\n` : '';
    return this.head.toString('utf8') + gap + Buffer.concat(this.tail).toString('utf8');
  }
}

function lastWords(text: string): string {
  const t = text.trim();
  return t.length <= WORDS_BYTES ? t : '…' + t.slice(t.length - WORDS_BYTES);
}

/** Runs one checker program with the device on fd 3; kills it at the deadline. */
function runStep(step: CheckerStep, deviceFd: number, force: boolean, deadline: number): Promise<StepRun> {
  const program = path.basename(step.program);
  const left = deadline - Date.now();
  if (left <= 0) return Promise.resolve({ program, outcome: 'failed', exitCode: -1, words: `${program} not started: the deadline had passed` });
  return new Promise((resolve) => {
    const out = new BoundedOutput();
    let timedOut = false;
    const child = spawn(step.program, step.argv({ device: SANDBOX_SOURCE, force }), {
      stdio: ['ignore', 'pipe', 'pipe', deviceFd],
      env: {
        PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
        LANG: 'C',
        LD_PRELOAD: preloadPath(),
        FUSEGATE_SOURCE_PATH: SANDBOX_SOURCE,
        FUSEGATE_SOURCE_FD: String(CHILD_SOURCE_FD),
      },
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, left);
    child.stdout!.on('data', (b: Buffer) => out.add(b));
    child.stderr!.on('data', (b: Buffer) => out.add(b));
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ program, outcome: 'failed', exitCode: -1, words: `cannot run ${step.program}: ${err.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const text = out.text();
      if (timedOut) {
        resolve({ program, outcome: 'failed', exitCode: -1, words: `${lastWords(text)}\n${program} was killed at the deadline`.trim() });
        return;
      }
      const outcome = stepOutcome(step, { code, signal }, text);
      const said = signal !== null ? `${lastWords(text)}\n${program} was killed by ${signal}`.trim() : lastWords(text);
      resolve({ program, outcome, exitCode: code ?? -1, words: said });
    });
  });
}

/** The volume's own dirty flag, where its checker does not report it. */
function readDirtyFlag(checker: Checker, deviceFd: number): boolean {
  if (!checker.dirtyFlag) return false;
  const header = Buffer.alloc(HEADER_BYTES);
  const n = fs.readSync(deviceFd, header, 0, HEADER_BYTES, 0);
  return dirtyFlagSet(checker.dirtyFlag, header.subarray(0, n));
}

/** Runs steps in order; stops at the first that failed. The worst outcome and the run that set it. */
async function runSteps(steps: readonly CheckerStep[], fd: number, force: boolean, deadline: number): Promise<{ outcome: StepOutcome; decisive: StepRun | null }> {
  let outcome: StepOutcome = 'clean';
  let decisive: StepRun | null = null;
  for (const step of steps) {
    const r = await runStep(step, fd, force, deadline);
    // The words worth passing on: those of the first run that found the worst (all clean: the first run's summary).
    if (decisive === null || worse(outcome, r.outcome) !== outcome) decisive = r;
    outcome = worse(outcome, r.outcome);
    if (r.outcome === 'failed') break;
  }
  return { outcome, decisive };
}

export async function runPreflightChecks(req: CheckRequest, deviceFd: number, started: number): Promise<Omit<VerdictMessage, 'kind'>> {
  const checker = findChecker(req.type);
  const deadline = started + req.timeoutMs;
  const answer = (verdict: Verdict, repaired: boolean, run: StepRun | null, extra = ''): Omit<VerdictMessage, 'kind'> => ({
    verdict,
    repaired,
    exitCode: run?.exitCode ?? -1,
    elapsedMs: Date.now() - started,
    checker: run?.program ?? '',
    words: [run?.words ?? '', extra].filter((s) => s !== '').join('\n'),
  });
  if (!checker) return answer('failed', false, null, `fusegate has no checker for ${req.type}`);
  let repaired = false;
  if (req.mode === 'repair') {
    const r = await runSteps(checker.repair, deviceFd, req.force, deadline);
    if (r.outcome === 'failed') return answer('failed', false, r.decisive, 'the repair failed');
    repaired = r.outcome === 'corrected';
  }
  const c = await runSteps(checker.check, deviceFd, req.force, deadline);
  let outcome = c.outcome;
  let extra = '';
  if (outcome === 'clean' && checker.dirtyFlag) {
    try {
      if (readDirtyFlag(checker, deviceFd)) {
        outcome = 'marked';
        extra = checker.dirtyFlag.what;
      }
    } catch (err) {
      outcome = 'failed';
      extra = `cannot read the volume's header: ${(err as Error).message}`;
    }
  }
  const verdict: Verdict = outcome === 'clean' || outcome === 'corrected' ? 'clean' : outcome;
  return answer(verdict, repaired, c.decisive, extra);
}

function checkActivation(): string | null {
  if (process.env.LISTEN_PID !== String(process.pid)) return 'not started by socket activation (LISTEN_PID is not ours)';
  if (process.env.LISTEN_FDS !== '1') return `expected exactly one socket from systemd, got LISTEN_FDS=${process.env.LISTEN_FDS}`;
  return null;
}

async function serve(log: Logger): Promise<number> {
  const started = Date.now();
  const raw = await native.receiveMessage(LISTEN_FD, MAX_PREFLIGHT_MESSAGE + 1, REQUEST_TIMEOUT_MS);
  let req: CheckRequest;
  try {
    req = decodeRequest(raw.data, raw.fds.length);
    if (raw.truncated || raw.controlTruncated) throw new PreflightMessageError('oversize', 'the request did not fit');
  } catch (err) {
    for (const fd of raw.fds) fs.closeSync(fd);
    log.error(`refused the request: ${(err as Error).message}`);
    return 2;
  }
  const deviceFd = raw.fds[0]!;
  const st = fs.fstatSync(deviceFd);
  if (!st.isBlockDevice() && !st.isFile()) {
    log.error('refused the request: the fd is neither a block device nor a regular file');
    return 2;
  }
  // The programs inherit this filter (it binds the main thread, which forks
  // them): they may query the device, and write blocks only for a repair.
  native.restrictDeviceIoctls(allowedDeviceIoctls(req.mode === 'check'));
  const v = await runPreflightChecks(req, deviceFd, started);
  const fields = {
    FUSEGATE_FSTYPE: req.type,
    FUSEGATE_PREFLIGHT: req.mode,
    FUSEGATE_PREFLIGHT_FORCE: req.force,
    FUSEGATE_PREFLIGHT_VERDICT: v.verdict,
    FUSEGATE_PREFLIGHT_REPAIRED: v.repaired,
    FUSEGATE_CHECKER: v.checker,
    FUSEGATE_CHECKER_EXIT: v.exitCode,
    FUSEGATE_PREFLIGHT_MS: v.elapsedMs,
  };
  log.info(`${req.mode} of ${req.type}: ${v.verdict}${v.repaired ? ' (repaired)' : ''} by ${v.checker || 'no checker'} in ${v.elapsedMs} ms`, fields);
  await native.sendMessage(LISTEN_FD, encodeVerdict(v), undefined, REQUEST_TIMEOUT_MS);
  return 0;
}

export async function main(): Promise<number> {
  const log = createLogger({ identifier: 'fusegate-check', fallback: 'stderr' });
  const notActivated = checkActivation();
  if (notActivated) {
    log.error(`${notActivated}; this program is started by fusegate-check.socket`);
    return 2;
  }
  delete process.env.LISTEN_PID;
  delete process.env.LISTEN_FDS;
  delete process.env.LISTEN_FDNAMES;
  try {
    return await serve(log);
  } catch (err) {
    log.error(`check failed: ${(err as Error).message}`);
    return 1;
  }
}
