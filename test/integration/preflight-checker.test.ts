/**
 * The preflight checker (sandbox/check.ts) on the host, socket-activated by
 * systemd-socket-activate inside the fake sandbox (no device nodes, nobody,
 * no capabilities), asked by the helper's own code (helper/preflight.ts
 * askChecker) over the real socket with the device fd:
 *
 * - the real checkers' verdicts on clean and dirty images of each type, and
 *   a repair that leaves the image clean for the host's checker;
 * - hostile images (the hostile-image generator, 20 seeds per type): every
 *   request is answered within its deadline, a crashing checker is reported
 *   as failed, and no checker process is left behind;
 * - the checker's own deadline kills its program;
 * - a malformed request gets no answer, and no process stays.
 * The real unit (systemd's sandbox) is tested in test/e2e/preflight.test.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { askChecker, MOUNT_RESERVE_MS } from '../../helper/preflight';
import type { MountContext } from '../../helper/context';
import * as native from '../../lib/native';
import { encodeRequest, MAX_PREFLIGHT_MESSAGE, type Verdict } from '../../lib/preflight/messages';
import { childrenOf, startActivator, type Activator } from '../support/activator';
import { realDevicesOrFailInCI, releaseAll, tempDir } from '../support/devices';
import { stageForUnprivileged } from '../support/unprivileged';
import { hostVerdict, markDirty } from '../e2e/dirty';
import { corrupt, layoutOf, makeImage, type Layout } from '../e2e/images';

const canRun = realDevicesOrFailInCI('preflight checker tests');
const SANDBOX = path.resolve(__dirname, '../support/fake_sandbox.sh');
const TYPES = ['ext4', 'vfat', 'exfat', 'ntfs'] as const;
type Type = (typeof TYPES)[number];
const DIRTY: Record<Type, Verdict> = { ext4: 'marked', vfat: 'damaged', exfat: 'marked', ntfs: 'marked' };
const HOSTILE_SEEDS = 20;

describe.skipIf(!canRun)('the preflight checker in a fake sandbox', () => {
  let dir = '';
  let activator: Activator | undefined;
  const socket = () => activator!.socket;
  const bases = new Map<Type, { image: Buffer; layout: Layout }>();

  beforeAll(async () => {
    dir = tempDir('fusegate-preflight-');
    fs.chmodSync(dir, 0o755);
    const staged = stageForUnprivileged();
    activator = await startActivator(path.join(dir, 'check.sock'), [SANDBOX, process.execPath, '--jitless', '--no-expose-wasm', path.join(staged.root, 'dist/sandbox/check-start.js')], {
      FUSEGATE_LIB_DIR: staged.root,
    });
    for (const type of TYPES) {
      const p = path.join(dir, `base-${type}.img`);
      await makeImage(type, p, { scratch: dir, label: 'PREFLIGHT', sizeMiB: 16 });
      bases.set(type, { image: fs.readFileSync(p), layout: await layoutOf(type, p) });
    }
  }, 120_000);
  afterAll(async () => {
    await activator?.stop();
    releaseAll();
  });

  /** What the helper has for a mount: the pinned source, the decision's preflight, the caller. */
  function contextFor(file: string, type: Type, mode: 'check' | 'repair'): MountContext {
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_CLOEXEC);
    return {
      source: { fd, path: file, stat: fs.fstatSync(fd) },
      caller: { uid: 0, gid: 0, groups: [] },
      decision: { fsType: type, preflight: { mode, force: false, by: 'test' } },
    } as unknown as MountContext;
  }

  async function ask(file: string, type: Type, mode: 'check' | 'repair' = 'check', ms = 20_000) {
    const ctx = contextFor(file, type, mode);
    process.env.FUSEGATE_CHECK_SOCKET = socket();
    try {
      return await askChecker(ctx, Date.now() + ms + MOUNT_RESERVE_MS);
    } finally {
      delete process.env.FUSEGATE_CHECK_SOCKET;
      fs.closeSync(ctx.source.fd);
    }
  }

  /** The activator's children (the checkers it started) are gone within `ms`. */
  async function noCheckerLeft(ms = 5000): Promise<number[]> {
    const deadline = Date.now() + ms;
    for (;;) {
      const left = childrenOf(activator!.pid);
      if (left.length === 0 || Date.now() > deadline) return left;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it.each(TYPES)('%s: clean → clean, dirty → its dirty verdict; repair leaves it clean for the host checker', async (type) => {
    const file = path.join(dir, `case-${type}.img`);
    fs.writeFileSync(file, bases.get(type)!.image);
    expect(await ask(file, type)).toMatchObject({ verdict: 'clean', exitCode: 0 });
    await markDirty(type, file);
    const dirty = await ask(file, type);
    expect(dirty.verdict).toBe(DIRTY[type]);
    expect(dirty.checker).not.toBe('');
    // the check wrote nothing
    expect(await hostVerdict(type, file)).not.toBe('clean');
    const repaired = await ask(file, type, 'repair');
    expect(repaired.verdict, repaired.words).toBe('clean');
    expect(await hostVerdict(type, file)).toBe('clean');
    expect(await noCheckerLeft()).toEqual([]);
  });

  it('the checker kills its program at the request\'s deadline', async () => {
    const file = path.join(dir, 'deadline.img');
    fs.writeFileSync(file, bases.get('ntfs')!.image);
    const dev = fs.openSync(file, 'r');
    const sock = native.socketSeqpacket();
    try {
      await native.connect(sock, socket(), 2000);
      const t0 = Date.now();
      // 1 ms, the least a request can ask: no machine starts ntfsfix and ntfsinfo and
      // hears back in that (30 ms did, on a quiet machine: the check then ended clean)
      await native.sendMessage(sock, encodeRequest({ type: 'ntfs', mode: 'check', force: false, timeoutMs: 1 }), dev, 2000);
      const raw = await native.receiveMessage(sock, MAX_PREFLIGHT_MESSAGE + 1, 5000);
      const { decodeVerdict } = await import('../../lib/preflight/messages');
      const v = decodeVerdict(raw.data, raw.fds.length);
      expect(v.verdict).toBe('failed');
      expect(v.words).toMatch(/killed at the deadline|not started: the deadline had passed/);
      expect(Date.now() - t0).toBeLessThan(2000);
    } finally {
      fs.closeSync(dev);
      fs.closeSync(sock);
    }
    expect(await noCheckerLeft()).toEqual([]);
  });

  it('a malformed request gets no answer and leaves no process', async () => {
    const file = path.join(dir, 'malformed.img');
    fs.writeFileSync(file, bases.get('vfat')!.image);
    const dev = fs.openSync(file, 'r');
    const sock = native.socketSeqpacket();
    try {
      await native.connect(sock, socket(), 2000);
      const bad = encodeRequest({ type: 'vfat', mode: 'check', force: false, timeoutMs: 1000 });
      bad.writeUInt8(9, 5); // mode 9
      await native.sendMessage(sock, bad, dev, 2000);
      const raw = await native.receiveMessage(sock, MAX_PREFLIGHT_MESSAGE + 1, 5000);
      expect(raw.data.length).toBe(0); // the checker hung up
    } finally {
      fs.closeSync(dev);
      fs.closeSync(sock);
    }
    expect(await noCheckerLeft()).toEqual([]);
  });

  it.each(TYPES)(`%s: ${HOSTILE_SEEDS} hostile images are each answered within the deadline; crashes are contained`, async (type) => {
    const file = path.join(dir, `hostile-${type}.img`);
    const { image: base, layout } = bases.get(type)!;
    const seen: Record<string, number> = {};
    const problems: string[] = [];
    for (let seed = 0; seed < HOSTILE_SEEDS; seed++) {
      fs.writeFileSync(file, corrupt(base, layout, seed).image);
      const t0 = Date.now();
      const v = await ask(file, type, 'check', 10_000);
      const ms = Date.now() - t0;
      seen[v.verdict] = (seen[v.verdict] ?? 0) + 1;
      if (ms > 10_000 + 1000) problems.push(`seed ${seed}: answered after ${ms} ms`);
      if (/cannot reach the checker|did not answer|preflight message refused/.test(v.words)) problems.push(`seed ${seed}: ${v.words}`);
      const left = await noCheckerLeft();
      if (left.length > 0) problems.push(`seed ${seed}: checker processes left: ${left.join(', ')}`);
    }
    expect(problems).toEqual([]);
    // A hostile image is not taken for a clean one every time.
    expect(seen.clean ?? 0).toBeLessThan(HOSTILE_SEEDS);
    process.stderr.write(`[preflight] ${type}: hostile verdicts ${JSON.stringify(seen)}\n`);
  }, 300_000);
});
