/**
 * The cached Debian bookworm root the e2e containers boot from.
 *
 * Built once per machine with debootstrap and kept outside the repository,
 * keyed by a hash of everything that decides its content, so a change to the
 * package list or to prepareRoot() builds a new one instead of reusing a
 * stale one. A build happens in a temporary directory that is renamed into
 * place only when complete: an interrupted build is never booted.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { type RunResult, describeFailure, pidAlive, removeTree, run, runOk } from './host';
import { type Watchdog, startWatchdog } from './watchdog';

/**
 * Bump when prepareRoot() changes in a way that changes the root's content:
 * it is part of the cache key.
 */
const ROOT_FORMAT_VERSION = 1;

const SUITE = 'bookworm';

/** Installed by debootstrap itself. */
export const DEBOOTSTRAP_PACKAGES: readonly string[] = [
  'systemd',
  'systemd-sysv',
  'dbus',
  'udev',
  'udisks2',
  'fuse3',
  'fuse2fs',
  'ntfs-3g',
  'squashfuse',
  'e2fsprogs',
  'dosfstools',
  'exfatprogs',
  'squashfs-tools',
  'util-linux',
  'mount',
  'kmod',
  'procps',
];

/**
 * Installed afterwards with apt inside the new root. fusefat, exfat-fuse and fuseiso
 * depend on the virtual package `fuse`; debootstrap's resolver does not know
 * virtual packages, pulls the real (libfuse 2) `fuse`, which fuse3 Breaks,
 * and then leaves it unconfigured while still exiting 0. apt resolves `fuse`
 * to fuse3, which provides it.
 */
export const APT_PACKAGES: readonly string[] = [
  'fusefat',
  'exfat-fuse',
  'fuseiso',
  // The broker's tests (test/e2e/broker.test.ts): polkit's daemon decides
  // its CheckAuthorization calls; pam_systemd gives the test users a logind
  // session, whose active/local state polkit and the policy facts read.
  'polkitd',
  'pkexec',
  'libpam-systemd',
];

/**
 * Units masked in the root: ones that fail or wait in a container, and timers
 * that would start maintenance jobs in the middle of a test.
 */
const MASKED_UNITS: readonly string[] = [
  'console-getty.service',
  'container-getty@.service',
  'getty@.service',
  'getty-static.service',
  'serial-getty@.service',
  'systemd-networkd-wait-online.service',
  'systemd-pstore.service',
  'systemd-tmpfiles-clean.timer',
  'apt-daily.timer',
  'apt-daily-upgrade.timer',
  'dpkg-db-backup.timer',
  'e2scrub_all.timer',
  'e2scrub_reap.service',
  'fstrim.timer',
];

export const DEFAULT_CACHE_DIR = '/var/cache/fusegate-e2e';
const STAMP = 'etc/fusegate-e2e-root.json';

export interface RootInfo {
  /** Directory to pass to systemd-nspawn -D. */
  path: string;
  key: string;
  /** True when this call built the root, false when it came from the cache. */
  built: boolean;
  debootstrapMs: number | null;
  aptMs: number | null;
}

export interface EnsureRootOptions {
  cacheDir?: string;
  mirror?: string;
  log?: (line: string) => void;
}

/** The cache key: a hash of everything that decides the root's content. */
export function rootKey(): string {
  const spec = {
    v: ROOT_FORMAT_VERSION,
    suite: SUITE,
    arch: process.arch,
    debootstrap: DEBOOTSTRAP_PACKAGES,
    apt: APT_PACKAGES,
    masked: MASKED_UNITS,
  };
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 16);
}

export function cacheDir(): string {
  return process.env.FUSEGATE_E2E_CACHE ?? DEFAULT_CACHE_DIR;
}

/** Path of the cached root for the current key, whether or not it exists yet. */
export function rootPath(dir = cacheDir()): string {
  return join(dir, `rootfs-${rootKey()}`);
}

export function rootIsCached(dir = cacheDir()): boolean {
  return existsSync(join(rootPath(dir), STAMP));
}

/** Returns the cached root, building it first if needed. */
export async function ensureRoot(opts: EnsureRootOptions = {}): Promise<RootInfo> {
  const dir = opts.cacheDir ?? cacheDir();
  const log = opts.log ?? (() => undefined);
  const key = rootKey();
  const final = rootPath(dir);
  if (existsSync(final)) {
    if (!existsSync(join(final, STAMP))) {
      throw new Error(`${final} exists but has no ${STAMP}: not made by this harness; remove it`);
    }
    return { path: final, key, built: false, debootstrapMs: null, aptMs: null };
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  await removeAbandonedBuilds(dir, log);
  const mirror = opts.mirror ?? aptMirror();
  const tmp = join(dir, `.build-${key}-${process.pid}-${randomBytes(4).toString('hex')}`);
  const logFile = join(dir, `build-${key}.log`);
  try {
    log(`building e2e root ${final} from ${mirror} (log: ${logFile})`);
    const debootstrapMs = await debootstrap(tmp, mirror, logFile);
    const aptMs = await installAptPackages(tmp, key, logFile);
    await verifyPackages(tmp);
    prepareRoot(tmp, key);
    writeFileSync(
      join(tmp, STAMP),
      JSON.stringify({ key, suite: SUITE, mirror, builtAt: new Date().toISOString(), debootstrapMs, aptMs }, null, 2),
    );
    commit(tmp, final);
    log(`built e2e root in ${debootstrapMs + aptMs} ms (debootstrap ${debootstrapMs} ms, apt ${aptMs} ms)`);
    return { path: final, key, built: true, debootstrapMs, aptMs };
  } finally {
    await removeTree(tmp);
  }
}

/** Moves a finished build into place; if another process won the race, uses theirs. */
function commit(tmp: string, final: string): void {
  try {
    renameSync(tmp, final);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if ((code !== 'EEXIST' && code !== 'ENOTEMPTY') || !existsSync(join(final, STAMP))) throw e;
  }
}

/** Build directories of builders that died (their pid is in the name). */
async function removeAbandonedBuilds(dir: string, log: (line: string) => void): Promise<void> {
  for (const name of readdirSync(dir)) {
    const m = /^\.build-[0-9a-f]+-(\d+)-[0-9a-f]+$/.exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    log(`removing abandoned build ${name}`);
    await removeTree(join(dir, name));
  }
}

async function debootstrap(target: string, mirror: string, logFile: string): Promise<number> {
  const argv = [
    'debootstrap',
    '--variant=minbase',
    `--include=${DEBOOTSTRAP_PACKAGES.join(',')}`,
    SUITE,
    target,
    mirror,
  ];
  const t0 = Date.now();
  const r = await guardedRun(argv, target, 10 * 60_000);
  appendLog(logFile, argv, r.stdout + r.stderr, t0);
  if (r.code !== 0) throw new Error(describeFailure(argv, r));
  return Date.now() - t0;
}

/**
 * Runs apt inside the new root with systemd-nspawn (not booted): it gives
 * apt /proc, /dev and the host's resolv.conf in a private mount namespace,
 * so nothing stays mounted on the host if the build is interrupted.
 */
async function installAptPackages(root: string, key: string, logFile: string): Promise<number> {
  const script = [
    'set -e',
    'apt-get -q update',
    `apt-get -q -y install --no-install-recommends ${APT_PACKAGES.join(' ')}`,
    'apt-get clean',
    'rm -rf /var/lib/apt/lists/*',
  ].join('\n');
  const argv = [
    'systemd-nspawn',
    '--quiet',
    `--directory=${root}`,
    `--machine=fge2e-build-${key.slice(0, 8)}-${process.pid}`,
    '--register=no',
    '--keep-unit',
    '--pipe',
    '--resolv-conf=copy-host',
    '--setenv=DEBIAN_FRONTEND=noninteractive',
    '--',
    '/bin/sh',
    '-c',
    script,
  ];
  const t0 = Date.now();
  const r = await guardedRun(argv, root, 5 * 60_000);
  appendLog(logFile, argv, r.stdout + r.stderr, t0);
  if (r.code !== 0) throw new Error(describeFailure(argv, r));
  return Date.now() - t0;
}

/**
 * Runs a build step in its own process group with a watchdog, so that if the
 * test process is killed mid-build the step does not go on writing into a
 * directory the next run will remove as abandoned. buildDir is on the
 * command line of every build step and identifies it.
 */
async function guardedRun(argv: readonly string[], buildDir: string, timeoutMs: number): Promise<RunResult> {
  let dog: Watchdog | undefined;
  try {
    return await run(argv, {
      timeoutMs,
      onSpawn: (pid) => (dog = startWatchdog({ kind: 'group', pid, marker: argv.find((a) => a.includes(buildDir))! })),
    });
  } finally {
    dog?.disarm();
  }
}

/**
 * debootstrap exits 0 even when packages failed to configure (it retries,
 * warns and carries on), so check dpkg's database instead of trusting it.
 */
async function verifyPackages(root: string): Promise<void> {
  const r = await runOk(
    ['dpkg-query', `--admindir=${root}/var/lib/dpkg`, '-W', '-f=${Package} ${db:Status-Abbrev}\n'],
    { timeoutMs: 60_000 },
  );
  const status = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const [pkg, abbrev] = line.trim().split(/\s+/);
    if (pkg && abbrev) status.set(pkg.replace(/:.*$/, ''), abbrev);
  }
  const broken = [...status].filter(([, s]) => s !== 'ii').map(([p, s]) => `${p} (${s})`);
  const missing = [...DEBOOTSTRAP_PACKAGES, ...APT_PACKAGES].filter((p) => status.get(p) !== 'ii');
  if (broken.length > 0 || missing.length > 0) {
    throw new Error(`e2e root incomplete: not installed: ${missing.join(', ') || '-'}; broken: ${broken.join(', ') || '-'}`);
  }
}

/** One-time changes that make the root boot quickly and quietly in a container. */
function prepareRoot(root: string, key: string): void {
  const etcSystemd = join(root, 'etc/systemd/system');
  for (const unit of MASKED_UNITS) {
    const link = join(etcSystemd, unit);
    rmSync(link, { force: true });
    symlinkSync('/dev/null', link);
  }
  removeWantsLinks(etcSystemd);
  // A fixed id per root: journald names its directory after it, which lets
  // the harness find the container's journal on the host.
  writeFileSync(join(root, 'etc/machine-id'), `${machineIdFor(key)}\n`);
  writeFileSync(join(root, 'etc/hostname'), 'fusegate-e2e\n');
  // The harness binds a host directory at /var/log/journal so the journal
  // outlives the container (its root is a throwaway overlay); no rate limit,
  // a test's burst of messages must not be dropped.
  mkdirSync(join(root, 'etc/systemd/journald.conf.d'), { recursive: true });
  writeFileSync(
    join(root, 'etc/systemd/journald.conf.d/fusegate-e2e.conf'),
    '[Journal]\nStorage=persistent\nRateLimitIntervalSec=0\n',
  );
  // debootstrap leaves its downloaded .debs (about 45 MB) behind.
  const archives = join(root, 'var/cache/apt/archives');
  for (const f of readdirSync(archives)) if (f.endsWith('.deb')) unlinkSync(join(archives, f));
}

/** Drops links in *.wants/ that point at units now masked, so boot does not log them. */
function removeWantsLinks(etcSystemd: string): void {
  const masked = new Set(MASKED_UNITS.map((u) => u.replace(/@.*\./, '@.')));
  for (const dir of readdirSync(etcSystemd)) {
    if (!dir.endsWith('.wants')) continue;
    for (const link of readdirSync(join(etcSystemd, dir))) {
      if (masked.has(link.replace(/@.*\./, '@.'))) unlinkSync(join(etcSystemd, dir, link));
    }
  }
}

export function machineIdFor(key: string): string {
  return createHash('sha256').update(`fusegate-e2e:${key}`).digest('hex').slice(0, 32);
}

function appendLog(file: string, argv: readonly string[], output: string, t0: number): void {
  const head = `\n=== ${new Date(t0).toISOString()} ${argv.join(' ')} (${Date.now() - t0} ms)\n`;
  writeFileSync(file, head + output, { flag: 'a' });
}

/**
 * The Debian mirror this host's apt uses for bookworm main, so the root is
 * built from the same place (a machine may reach no other). Reads one-line
 * sources.list files and deb822 .sources files in apt's order. There is no
 * built-in fallback host: guessing a mirror the machine may not reach only
 * turns a clear error into a slow network failure inside debootstrap.
 */
export function aptMirror(etcApt = '/etc/apt'): string {
  const fromEnv = process.env.FUSEGATE_E2E_MIRROR;
  if (fromEnv) return fromEnv;
  for (const file of aptSourceFiles(etcApt)) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    const found = file.endsWith('.sources') ? mirrorFromDeb822(text) : mirrorFromOneLine(text);
    if (found) return found;
  }
  throw new Error(
    `the e2e root needs an apt source for Debian ${SUITE} main and ${etcApt}/sources.list(.d) has none; set FUSEGATE_E2E_MIRROR to a Debian mirror URL this machine reaches`,
  );
}

function aptSourceFiles(etcApt: string): string[] {
  const files = [join(etcApt, 'sources.list')];
  const d = join(etcApt, 'sources.list.d');
  try {
    for (const f of readdirSync(d).sort()) {
      if (f.endsWith('.list') || f.endsWith('.sources')) files.push(join(d, f));
    }
  } catch {
    /* no directory */
  }
  return files;
}

function mirrorFromOneLine(text: string): string | null {
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.+)$/.exec(line);
    if (m && m[2] === SUITE && m[3]!.split(/\s+/).includes('main')) return m[1]!;
  }
  return null;
}

function mirrorFromDeb822(text: string): string | null {
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const raw of stanza.split('\n')) {
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(raw.replace(/#.*/, '').trimEnd());
      if (m) fields.set(m[1]!.toLowerCase(), m[2]!);
    }
    const list = (k: string): string[] => (fields.get(k) ?? '').split(/\s+/).filter((s) => s !== '');
    if (fields.get('enabled')?.toLowerCase() === 'no') continue;
    if (!list('types').includes('deb') || !list('suites').includes(SUITE) || !list('components').includes('main')) continue;
    const uri = list('uris')[0];
    if (uri) return uri;
  }
  return null;
}
