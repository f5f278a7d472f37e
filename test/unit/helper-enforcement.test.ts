/**
 * The helper's protocol enforcement, unprivileged: HelperSession runs over a
 * real SOCK_SEQPACKET socketpair against a scripted fake adapter, with the
 * mount mechanism and open-as-caller injected (SessionMechanism), so every
 * allowlist rule is exercised without root, /dev/fuse or a kernel mount.
 * Each rule has a test here that fails when the rule is deleted; the root
 * tests (test/integration/helper-sandbox.test.ts) run the same session
 * against the real kernel.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as native from '../../lib/native';
import { MS } from '../../lib/native';
import { Channel, FSOPEN_FLAGS, HELLO_FLAGS, PROTOCOL_VERSION, ProtocolError, S_IFDIR, type Message } from '../../lib/protocol';
import type { FuseMountSpec } from '../../helper/fuse-mount';
import {
  HelperSession, ServiceFailed, type SessionEvent, type SessionMechanism, type SessionPlan, type SessionResult,
} from '../../helper/helper-session';
import { sandboxUtabOptions } from '../../helper/utab';
import { mountOptionsOf } from '../../policy/options';
import * as testNative from '../support/native-extras';

const O_PATH = 0o10000000;
const E = os.constants.errno;

let dir: string;
let source: string;
let mountpoint: string;
const pinned: number[] = [];

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fusegate-enforce-'));
  source = path.join(dir, 'disk.img');
  fs.writeFileSync(source, 'not really a filesystem');
  mountpoint = path.join(dir, 'mnt');
  fs.mkdirSync(mountpoint);
});

afterAll(() => {
  for (const fd of pinned) fs.closeSync(fd);
  fs.rmSync(dir, { recursive: true, force: true });
});

function pin(p: string): number {
  const fd = fs.openSync(p, O_PATH);
  pinned.push(fd);
  return fd;
}

function plan(over: Partial<SessionPlan> = {}): SessionPlan {
  return {
    backend: 'fuse2fs',
    source,
    mountpoint,
    options: mountOptionsOf([]),
    sourceFd: pin(source),
    sourceIsBlock: false,
    blockSourcePath: source,
    mountpointFd: pin(mountpoint),
    caller: { uid: 0, gid: 0 },
    refusePatterns: [],
    readOnly: false,
    deadline: Date.now() + 5000,
    ...over,
  };
}

/** The kernel, faked: opens go to the file itself, mounts are recorded. */
class FakeMechanism implements SessionMechanism {
  readonly mounts: FuseMountSpec[] = [];
  readonly opens: Array<{ path: string; flags: number; uid: number }> = [];
  openAsCaller(p: string, flags: number, caller: { uid: number }): number {
    this.opens.push({ path: p, flags, uid: caller.uid });
    return fs.openSync(p, flags & ~fs.constants.O_EXCL);
  }
  openDevFuse(): number {
    return fs.openSync('/dev/null', 'r+');
  }
  mount(spec: FuseMountSpec) {
    this.mounts.push({ ...spec, fuseOptions: [...spec.fuseOptions] });
    return { api: 'fsmount' as const, device: '0:4242' };
  }
}

/** The server side, scripted: each call sends one message and returns what came back. */
class FakeAdapter {
  constructor(private readonly ch: Channel) {}
  helloFlags = -1;

  async hello(): Promise<void> {
    const { msg } = await this.ch.receive(2000);
    if (msg.kind !== 'SAFT') throw new Error(`expected SAFT, got ${msg.kind}`);
    this.helloFlags = msg.flags;
    await this.ch.send({ kind: 'LAST', version: PROTOCOL_VERSION });
    for (const want of ['argv', 'fusedev']) {
      const { msg: file, fd } = await this.ch.receive(2000);
      if (file.kind !== 'FILE' || file.path !== want) throw new Error(`expected FILE ${want}`);
      if (fd !== undefined) fs.closeSync(fd);
    }
  }

  /** OPEN/BDEV: the errno in the FILE answer (0: an fd came, and is closed here). */
  async open(kind: 'OPEN' | 'BDEV', p: string, openFlags: number): Promise<number> {
    await this.ch.send({ kind, openFlags, createMode: 0, requestFlags: 0, blockSize: 0, path: p });
    const { msg, fd } = await this.ch.receive(2000);
    if (fd !== undefined) fs.closeSync(fd);
    if (msg.kind !== 'FILE') throw new Error(`expected FILE, got ${msg.kind}`);
    return msg.error;
  }

  /** A step: the errno in the REPL. */
  async step(msg: Message): Promise<number> {
    await this.ch.send(msg);
    const { msg: reply } = await this.ch.receive(2000);
    if (reply.kind !== 'REPL') throw new Error(`expected REPL, got ${reply.kind}`);
    return reply.error;
  }

  /** TYPE NAME MNTP, with the given TYPE flags. */
  async upToMountpoint(fsopenFlags = 0): Promise<void> {
    expect(await this.step({ kind: 'TYPE', fsopenFlags })).toBe(0);
    expect(await this.step({ kind: 'NAME', source })).toBe(0);
    expect(await this.step({ kind: 'MNTP', expectedFormat: S_IFDIR, path: mountpoint })).toBe(0);
  }

  /** A message with no answer awaited. */
  async send(msg: Message): Promise<void> {
    await this.ch.send(msg);
  }

  async bye(exitCode: number): Promise<void> {
    await this.ch.send({ kind: 'BYEE', exitCode });
  }
}

interface Outcome {
  result?: SessionResult;
  error?: unknown;
  events: SessionEvent[];
  mech: FakeMechanism;
  adapter: FakeAdapter;
}

/** One conversation: the session on one end, `script` on the other. */
async function converse(p: SessionPlan, script: (a: FakeAdapter) => Promise<void>): Promise<Outcome> {
  const [h, s] = testNative.socketpairSeqpacket();
  const mech = new FakeMechanism();
  const events: SessionEvent[] = [];
  const session = new HelperSession(new Channel(h, 'helper'), p, (e) => events.push(e), mech);
  const server = new Channel(s, 'server');
  const adapter = new FakeAdapter(server);
  const out: Outcome = { events, mech, adapter };
  const run = session.run().then((r) => { out.result = r; }, (e) => { out.error = e; });
  try {
    await script(adapter);
    await run;
  } finally {
    server.close();
    fs.closeSync(h);
  }
  return out;
}

/** A well-behaved conversation with the given OPTS, MTAB and DOIT flags. */
async function mountWith(p: SessionPlan, steps: { opts?: string; mtab?: string; msFlags?: number } = {}): Promise<Outcome> {
  return converse(p, async (a) => {
    await a.hello();
    expect(await a.open('OPEN', source, fs.constants.O_RDONLY)).toBe(0);
    await a.upToMountpoint();
    if (steps.opts !== undefined) expect(await a.step({ kind: 'OPTS', options: steps.opts })).toBe(0);
    if (steps.mtab !== undefined) expect(await a.step({ kind: 'MTAB', options: steps.mtab })).toBe(0);
    expect(await a.step({ kind: 'DOIT', msFlags: steps.msFlags ?? 0 })).toBe(0);
    await a.bye(0);
  });
}

describe('a well-behaved conversation', () => {
  it('mounts once, through the injected mechanism, on the pinned mountpoint', async () => {
    const p = plan();
    const o = await mountWith(p, { opts: 'default_permissions,allow_other' });
    expect(o.error).toBeUndefined();
    expect(o.result?.mount.device).toBe('0:4242');
    expect(o.mech.mounts).toHaveLength(1);
    expect(o.mech.mounts[0]).toMatchObject({ fsType: 'fuse', subtype: 'fuse2fs', source, mountpointFd: p.mountpointFd });
    expect(o.mech.opens[0]).toMatchObject({ path: `/proc/self/fd/${p.sourceFd}`, uid: 0 });
    expect(o.adapter.helloFlags).toBe(HELLO_FLAGS.ALLOW_OTHER | HELLO_FLAGS.FUSEBLK);
  });
});

describe('DOIT: ALLOWED_MS_FLAGS', () => {
  it.each([
    ['MS_BIND', MS.BIND],
    ['MS_REMOUNT', MS.REMOUNT],
    ['MS_MOVE', MS.MOVE],
    ['MS_MANDLOCK', MS.MANDLOCK],
  ])('refuses %s with EINVAL and mounts nothing', async (_n, flag) => {
    const o = await converse(plan(), async (a) => {
      await a.hello();
      await a.upToMountpoint();
      expect(await a.step({ kind: 'DOIT', msFlags: flag | MS.NOSUID })).toBe(E.EINVAL);
      await a.bye(1);
    });
    expect(o.mech.mounts).toEqual([]);
    expect(o.error).toBeInstanceOf(ServiceFailed);
    expect(o.events).toContainEqual(expect.objectContaining({ kind: 'refused', command: 'DOIT', error: E.EINVAL }));
  });

  it('accepts the plain mount flags', async () => {
    const o = await mountWith(plan(), { msFlags: MS.NOEXEC | MS.NOATIME });
    expect(o.mech.mounts[0]!.msFlags & (MS.NOEXEC | MS.NOATIME)).toBe(MS.NOEXEC | MS.NOATIME);
  });
});

describe('DOIT: flags fusegate forces', () => {
  it('nosuid,nodev on every sandboxed mount, even when neither the plan nor the server asks', async () => {
    const o = await mountWith(plan({ options: mountOptionsOf([]) }), { msFlags: 0 });
    expect(o.mech.mounts[0]!.msFlags & (MS.NOSUID | MS.NODEV)).toBe(MS.NOSUID | MS.NODEV);
  });

  it("the decision's VFS flags (noexec) whatever the server asks", async () => {
    const o = await mountWith(plan({ options: mountOptionsOf(['noexec', 'x-a=b']) }), { msFlags: 0 });
    expect(o.mech.mounts[0]!.msFlags & MS.NOEXEC).toBe(MS.NOEXEC);
  });

  it('ro when the policy says read-only', async () => {
    const o = await mountWith(plan({ readOnly: true }), { msFlags: 0 });
    expect(o.mech.mounts[0]!.msFlags & MS.RDONLY).toBe(MS.RDONLY);
  });
});

describe('OPTS: ALLOWED_FUSE_OPTIONS and refused options', () => {
  async function opts(p: SessionPlan, options: string): Promise<{ errno: number; o: Outcome }> {
    let errno = -1;
    const o = await converse(p, async (a) => {
      await a.hello();
      await a.upToMountpoint();
      errno = await a.step({ kind: 'OPTS', options });
      await a.bye(1);
    });
    return { errno, o };
  }

  it.each([['user_id=0'], ['fd=3'], ['rootmode=40000'], ['suid'], ['dev'], ['allow_root']])(
    "refuses '%s' with EINVAL: not a FUSE option a server may set",
    async (opt) => {
      expect((await opts(plan(), `default_permissions,${opt}`)).errno).toBe(E.EINVAL);
    },
  );

  it('refuses an option the policy refuses by name, with EPERM', async () => {
    expect((await opts(plan({ refusePatterns: ['max_read'] }), 'max_read=4096')).errno).toBe(E.EPERM);
  });

  it('refuses an option the policy refuses by a glob, with EPERM (the decision and the helper share one matcher)', async () => {
    expect((await opts(plan({ refusePatterns: ['allow_*'] }), 'allow_other')).errno).toBe(E.EPERM);
    expect((await opts(plan({ refusePatterns: ['max_*=?096'] }), 'max_read=4096')).errno).toBe(E.EPERM);
    expect((await opts(plan({ refusePatterns: ['allow_*'] }), 'default_permissions')).errno).toBe(0);
  });

  it('allow_other is only for root', async () => {
    expect((await opts(plan({ caller: { uid: 1000, gid: 1000 } }), 'allow_other')).errno).toBe(E.EPERM);
  });

  it('blksize= is only for fuseblk', async () => {
    expect((await opts(plan(), 'blksize=4096')).errno).toBe(E.EINVAL);
  });

  it('allow_other always brings default_permissions: the server cannot drop it', async () => {
    const o = await mountWith(plan(), { opts: 'allow_other' });
    expect(o.mech.mounts[0]!.fuseOptions).toEqual(['allow_other', 'default_permissions']);
  });
});

describe('MTAB: only x- options, never fusegate\'s own', () => {
  async function mtab(options: string): Promise<number> {
    let errno = -1;
    await converse(plan(), async (a) => {
      await a.hello();
      await a.upToMountpoint();
      errno = await a.step({ kind: 'MTAB', options });
      await a.bye(1);
    });
    return errno;
  }

  it.each([['uhelper=udisks2'], ['helper=fusegate'], ['ro'], ['x-ok,nosuid']])("refuses '%s' with EINVAL", async (opt) => {
    expect(await mtab(opt)).toBe(E.EINVAL);
  });

  it.each([['x-fusegate.unit=sshd.service'], ['x-fake=1,x-fusegate.rule=trusted']])(
    "refuses '%s' with EPERM: x-fusegate.* is reserved for the helper",
    async (opt) => {
      expect(await mtab(opt)).toBe(E.EPERM);
    },
  );

  it('keeps a server\'s x- options and its -n, which drops only its own options from utab', async () => {
    const o = await mountWith(plan(), { mtab: 'x-fake.mode=ok,-n' });
    expect(o.result).toMatchObject({ utabDisabled: true, utabOptions: ['x-fake.mode=ok'] });
    const record = sandboxUtabOptions({ backend: 'fuse2fs', unit: 'fuse2fs@1-2-0.service', rule: 'r', mount: mountOptionsOf(['uhelper=udisks2']), server: o.result! });
    expect(record).toEqual(['helper=fusegate', 'x-fusegate.backend=fuse2fs', 'x-fusegate.unit=fuse2fs@1-2-0.service', 'x-fusegate.rule=r', 'uhelper=udisks2']);
    const kept = sandboxUtabOptions({ backend: 'fuse2fs', unit: null, rule: 'r', mount: mountOptionsOf([]), server: { utabOptions: ['x-fake.mode=ok'], utabDisabled: false } });
    expect(kept).toEqual(['helper=fusegate', 'x-fusegate.backend=fuse2fs', 'x-fusegate.rule=r', 'x-fake.mode=ok']);
  });
});

describe('TYPE: fuseblk', () => {
  async function type(p: SessionPlan): Promise<number> {
    let errno = -1;
    await converse(p, async (a) => {
      await a.hello();
      errno = await a.step({ kind: 'TYPE', fsopenFlags: FSOPEN_FLAGS.FUSEBLK });
      await a.bye(1);
    });
    return errno;
  }

  it('is only for root: EPERM for any other caller, who is not offered it in SAFT either', async () => {
    const p = plan({ caller: { uid: 1000, gid: 1000 }, sourceIsBlock: true });
    expect(await type(p)).toBe(E.EPERM);
    const o = await converse(plan({ caller: { uid: 1000, gid: 1000 } }), async (a) => { await a.hello(); await a.bye(1); });
    expect(o.adapter.helloFlags).toBe(0);
  });

  it('needs a block device source: ENOTBLK for an image', async () => {
    expect(await type(plan({ sourceIsBlock: false }))).toBe(15 /* ENOTBLK */);
  });

  it('mounts the block device by the pinned path, not the path on the command line', async () => {
    const o = await converse(plan({ sourceIsBlock: true, blockSourcePath: '/dev/pinned-node' }), async (a) => {
      await a.hello();
      await a.upToMountpoint(FSOPEN_FLAGS.FUSEBLK);
      expect(await a.step({ kind: 'DOIT', msFlags: 0 })).toBe(0);
      await a.bye(0);
    });
    expect(o.mech.mounts[0]).toMatchObject({ fsType: 'fuseblk', source: '/dev/pinned-node' });
  });
});

describe('OPEN/BDEV', () => {
  it('a write open of a source the policy mounts read-only gets EROFS', async () => {
    let errno = -1;
    const o = await converse(plan({ readOnly: true }), async (a) => {
      await a.hello();
      errno = await a.open('OPEN', source, fs.constants.O_RDWR);
      expect(await a.open('OPEN', source, fs.constants.O_RDONLY)).toBe(0);
      await a.bye(1);
    });
    expect(errno).toBe(E.EROFS);
    expect(o.mech.opens.map((x) => x.flags & 3)).toEqual([fs.constants.O_RDONLY]);
  });

  it('a write open is allowed when the mount is writable', async () => {
    let errno = -1;
    await converse(plan({ readOnly: false }), async (a) => {
      await a.hello();
      errno = await a.open('OPEN', source, fs.constants.O_RDWR);
      await a.bye(1);
    });
    expect(errno).toBe(0);
  });

  it('a path that is not the source gets EPERM, and nothing is opened', async () => {
    let errno = -1;
    const o = await converse(plan(), async (a) => {
      await a.hello();
      errno = await a.open('OPEN', '/etc/shadow', fs.constants.O_RDONLY);
      await a.bye(1);
    });
    expect(errno).toBe(E.EPERM);
    expect(o.mech.opens).toEqual([]);
  });

  it('open flags beyond reading and writing (O_CREAT, O_TRUNC) get EINVAL', async () => {
    let errno = -1;
    await converse(plan(), async (a) => {
      await a.hello();
      errno = await a.open('OPEN', source, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_TRUNC);
      await a.bye(1);
    });
    expect(errno).toBe(E.EINVAL);
    expect(fs.readFileSync(source, 'utf8')).toBe('not really a filesystem');
  });

  it('BDEV of an image gets ENOTBLK, before anything is opened', async () => {
    let errno = -1;
    const o = await converse(plan(), async (a) => {
      await a.hello();
      errno = await a.open('BDEV', source, fs.constants.O_RDONLY);
      await a.bye(1);
    });
    expect(errno).toBe(15);
    expect(o.mech.opens).toEqual([]);
  });

  it('no file requests once the mount steps have begun', async () => {
    let errno = -1;
    await converse(plan(), async (a) => {
      await a.hello();
      expect(await a.step({ kind: 'TYPE', fsopenFlags: 0 })).toBe(0);
      errno = await a.open('OPEN', source, fs.constants.O_RDONLY);
      await a.bye(1);
    });
    expect(errno).toBe(E.EPERM);
  });
});

describe('MNTP and the order of steps', () => {
  it('a mountpoint other than the command line\'s gets EINVAL and no mount follows', async () => {
    const o = await converse(plan(), async (a) => {
      await a.hello();
      expect(await a.step({ kind: 'TYPE', fsopenFlags: 0 })).toBe(0);
      expect(await a.step({ kind: 'NAME', source })).toBe(0);
      expect(await a.step({ kind: 'MNTP', expectedFormat: S_IFDIR, path: '/tmp/elsewhere' })).toBe(E.EINVAL);
      await a.bye(1);
    });
    expect(o.mech.mounts).toEqual([]);
  });

  it('a step out of order ends the conversation with a ProtocolError', async () => {
    const o = await converse(plan(), async (a) => {
      await a.hello();
      await a.send({ kind: 'NAME', source });
    });
    expect(o.error).toBeInstanceOf(ProtocolError);
    expect((o.error as ProtocolError).rule).toBe('out-of-order');
  });
});
