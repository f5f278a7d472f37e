/**
 * `fusegate install` and `fusegate uninstall`.
 *
 * install puts the built program into /usr/lib/fusegate, the helper where
 * mount(8) looks for it, the generated units (sockets enabled), and the
 * default policy when there is none. It is idempotent: a second run reports
 * every item "unchanged" and writes nothing. It never replaces a helper it
 * did not install unless told to (--take-over), and then keeps the original
 * where uninstall can put it back. Everything it creates is listed in the
 * install manifest, which is all uninstall trusts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FusegateError } from '../lib/errors';
import { parseCommandLine, stringValue, UsageError, type OptionSpec, type OptionValue } from '../lib/cli-args';
import { requireRoot } from '../lib/root';
import { BUILT_SOCKET_DIR } from '../lib/socket-dir';
import { VERSION } from '../lib/version';
import { loadPolicy, PolicyError } from '../policy/load';
import { programFiles, type FileGroup } from './install-program';
import { readlinkOrNull } from '../lib/fs-or-null';
import { TreeWriter, type WriteResult } from './install-fs';
import { processIo, type Io } from '../lib/output';
import { manPages } from './man-pages';
import { sandboxedMounts } from './mounts';
import { emptyManifest, readManifest, serializeManifest, type Diversion, type Manifest, type SymlinkEntry } from './manifest';
import {
  BIN_DIR, CLI_TARGET, DIVERTED_DIR, LAUNCHER_TARGET, LIB_DIR, Layout, MANIFEST_FILE, packageRoot, POLICY_FILE, SOCKETS_WANTS_DIR, UMOUNT_HELPER_TARGET, UNIT_DIR,
} from './paths';
import { inactiveUnits, systemctl, systemdRunning } from './systemctl';
import { allUnits, SLICE, socketServices } from './units';
import { brokerSharedFiles, brokerUnit } from '../broker/files';
import { UNIT_NAME as BROKER_UNIT } from '../broker/names';

export type { Io } from '../lib/output';

/** Exit statuses of install and uninstall. */
export const InstallExit = { OK: 0, USAGE: 1, FAILED: 2 } as const;

export const INSTALL_HELP = `NAME
    fusegate install, fusegate uninstall - put fusegate in place, or take it away

SYNOPSIS
    fusegate install [--root DIR] [--take-over[=NAME,...]] [--dry-run]
    fusegate uninstall [--root DIR] [--purge] [--dry-run]

DESCRIPTION
    install copies the built program (dist/, the native addon, the fdmap
    preload library, the runtime node modules) into /usr/lib/fusegate and
    installs:
      /usr/sbin/mount.fusegate   the mount helper (mount -t fusegate)
      /usr/sbin/mount.TYPE       for each type in the policy's intercept list
      /usr/bin/fusegate          this command
      /etc/systemd/system/       one socket (enabled) and one template service
                                 per sandboxed backend
      /etc/fusegate/policy.yaml  the default policy, only if there is none
    It never overwrites a mount.TYPE helper it did not install (e.g. Debian's
    /sbin/mount.ntfs): such types are skipped with a note. Running install
    again updates what changed and reports the rest "unchanged".

    On a running systemd (and without --root) install runs
    'systemctl daemon-reload' and 'systemctl enable --now' for the sockets.
    With --root it creates the sockets.target.wants links itself, as
    'systemctl enable' would.

    uninstall removes exactly what install recorded in
    /usr/lib/fusegate/install-manifest.json, puts diverted helpers back, and
    keeps /etc/fusegate/policy.yaml unless --purge is given. On a running
    systemd it first disables and stops the sockets. Mounts that are still
    active keep working until they are unmounted.

OPTIONS
    --root DIR        install into (remove from) the tree at DIR instead of /;
                      no systemctl calls, no root privileges needed
    --take-over[=NAME,...]
                      replace helpers fusegate did not install: all, or the
                      listed ones (a TYPE for mount.TYPE, or mount.fusegate,
                      or fusegate); each original is moved to
                      /usr/lib/fusegate/diverted/ and restored by uninstall
    --purge           uninstall also removes /etc/fusegate/policy.yaml
    --dry-run         print what would be done, change nothing
    -h, --help        show this text

EXIT STATUS
    0  done;  1  usage error, or not root;  2  something failed (see the
    "failed:" lines)

SEE ALSO
    fusegate doctor, fusegate status, mount(8), systemctl(1)`;

type Status = 'installed' | 'unchanged' | 'skipped' | 'kept' | 'diverted' | 'removed' | 'restored' | 'failed';

/** One output line per action, and the counts for the summary. */
class Report {
  readonly counts = new Map<Status, number>();

  constructor(
    private readonly io: Io,
    private readonly dryRun: boolean,
  ) {}

  line(status: Status, text: string): void {
    this.counts.set(status, (this.counts.get(status) ?? 0) + 1);
    this.io.out(`${this.dryRun ? '(dry run) ' : ''}${status}: ${text}\n`);
  }

  note(text: string): void {
    this.io.out(`${this.dryRun ? '(dry run) ' : ''}note: ${text}\n`);
  }

  get failed(): boolean {
    return (this.counts.get('failed') ?? 0) > 0;
  }

  summary(what: string): string {
    const parts = [...this.counts].map(([s, n]) => `${n} ${s}`);
    return `${what}: ${parts.join(', ') || 'nothing to do'}${this.dryRun ? ' (dry run: nothing was changed)' : ''}`;
  }
}

interface CommonOptions {
  root: string;
  dryRun: boolean;
}

export interface InstallOptions extends CommonOptions {
  /** true: every type; a list: those types; false: none */
  takeOver: boolean | string[];
  /** the built package tree to install from (default: the one this code runs from) */
  source?: string;
  /** the node binary the units run (default: this process's) */
  node?: string;
}

export interface UninstallOptions extends CommonOptions {
  purge: boolean;
}

const COMMON_OPTIONS: Record<string, OptionSpec> = {
  root: { type: 'string', valueName: 'a directory' },
  'dry-run': { type: 'boolean', short: 'n' },
};

/** install's and uninstall's command lines: the common options plus `extra`. */
function parseCommon(args: string[], extra: Record<string, OptionSpec>): { common: CommonOptions; values: Record<string, OptionValue> } | 'help' {
  const p = parseCommandLine(args, { options: { ...COMMON_OPTIONS, ...extra }, maxPositionals: 0, unknownWord: 'argument', hint: "see 'fusegate install --help'" });
  if (p.help) return 'help';
  const root = stringValue(p.values, 'root') ?? '/';
  if (root === '') throw new UsageError('--root needs a directory', "see 'fusegate install --help'");
  return { common: { root, dryRun: p.values['dry-run'] === true }, values: p.values };
}

export function parseInstallArgs(args: string[]): InstallOptions | 'help' {
  const p = parseCommon(args, { 'take-over': { type: 'boolean', optionalValue: true } });
  if (p === 'help') return p;
  const t = p.values['take-over'];
  // --take-over: every type; --take-over=TYPE,...: those types
  const takeOver = typeof t === 'string' ? t.split(',').filter((x) => x !== '') : t === true;
  return { ...p.common, takeOver };
}

export function parseUninstallArgs(args: string[]): UninstallOptions | 'help' {
  const p = parseCommon(args, { purge: { type: 'boolean' } });
  return p === 'help' ? p : { ...p.common, purge: p.values.purge === true };
}

/** A live install or uninstall (not --root, not --dry-run) writes the system's files: root only. */
function requireRootFor(layout: Layout, dryRun: boolean, what: string): void {
  if (layout.live && !dryRun) {
    requireRoot(`${what} needs root: it writes /usr, /etc and the systemd configuration`, 'run it as root, or with --root DIR to build an install tree elsewhere');
  }
}

/** Whether a path is a symlink install made (one pointing into the library directory). */
function isOurLink(w: TreeWriter, p: string): boolean {
  const st = w.lstat(p);
  if (!st?.isSymbolicLink()) return false;
  const t = readlinkOrNull(w.layout.host(p));
  return t !== null && t.startsWith(`${LIB_DIR}/`);
}

function describeExisting(w: TreeWriter, p: string): string {
  const st = w.lstat(p)!;
  if (st.isSymbolicLink()) return `a symlink to ${readlinkOrNull(w.layout.host(p))}`;
  return st.isFile() ? 'a file' : 'not a regular file';
}

/** Builds one install; `run` does the work in the order the output lists it. */
class Installer {
  readonly w: TreeWriter;
  readonly layout: Layout;
  readonly m: Manifest;
  readonly old: Manifest | null;
  readonly source: string;
  /** unit files this run wrote: systemd must re-read them */
  unitsChanged = false;
  /** the broker's bus policy or activation file changed: a running dbus-daemon re-reads them on reload */
  busPolicyChanged = false;
  /** socket units this run rewrote: a running one keeps its old settings until restarted */
  readonly changedSockets: string[] = [];

  constructor(
    readonly opts: InstallOptions,
    readonly r: Report,
  ) {
    this.layout = new Layout(opts.root);
    this.w = new TreeWriter(this.layout, opts.dryRun);
    this.source = opts.source ?? packageRoot();
    this.old = readManifest(this.layout);
    this.m = emptyManifest(VERSION);
    // What earlier runs created stays on record although it now exists.
    if (this.old) {
      this.m.dirs.push(...this.old.dirs);
      this.m.diversions.push(...this.old.diversions);
      this.m.config.push(...this.old.config);
    }
  }

  private show(p: string): string {
    return this.layout.show(p);
  }

  run(): void {
    this.program();
    this.policy();
    const types = this.interceptTypes();
    this.link('mount.fusegate', this.layout.helperLink('fusegate'), LAUNCHER_TARGET, 'mount.fusegate');
    this.link('umount.fusegate', this.layout.umountHelperLink(), UMOUNT_HELPER_TARGET, 'umount.fusegate');
    this.link('fusegate command', `${BIN_DIR}/fusegate`, CLI_TARGET, 'fusegate');
    if (types !== null) for (const t of types) this.link(`mount.${t}`, this.layout.helperLink(t), LAUNCHER_TARGET, t);
    else if (this.old) {
      // The policy did not load: keep the links the last install made rather than guess.
      for (const s of this.old.symlinks) if (!this.m.symlinks.some((x) => x.path === s.path) && isOurLink(this.w, s.path)) this.m.symlinks.push(s);
    }
    this.units();
    this.broker();
    this.manPages();
    this.removeStale();
  }

  /**
   * The manifest is written whatever happened: after a failure part-way,
   * what this run created must still be on record for uninstall, and so must
   * everything the previous run recorded (this run may not have reached it).
   */
  writeManifest(failed: boolean): void {
    if (failed && this.old) {
      // Earlier entries first: for a path recorded twice, this run's entry wins.
      this.m.files = [...this.old.files, ...this.m.files];
      this.m.symlinks = [...this.old.symlinks, ...this.m.symlinks];
    }
    this.m.dirs.push(...this.w.createdDirs);
    if (this.w.lstat(LIB_DIR) === null && !this.opts.dryRun) return; // nothing was installed at all
    this.w.writeFile(MANIFEST_FILE, serializeManifest(this.m), 0o644);
  }

  private program(): void {
    const files = programFiles(this.source);
    const groups = new Map<FileGroup, { total: number; written: number }>();
    for (const f of files) {
      const target = `${LIB_DIR}/${f.rel}`;
      const result = this.w.writeFile(target, fs.readFileSync(path.join(this.source, f.rel)), f.mode);
      this.m.files.push(target);
      const g = groups.get(f.group) ?? { total: 0, written: 0 };
      g.total++;
      if (result === 'installed') g.written++;
      groups.set(f.group, g);
    }
    const where: Record<FileGroup, string> = {
      program: LIB_DIR,
      'native addon': `${LIB_DIR}/build/Release/fusegate_native.node`,
      'preload library': `${LIB_DIR}/build/Release/fdmap-preload.so`,
      'node modules': `${LIB_DIR}/node_modules`,
    };
    for (const [group, g] of groups) {
      const count = g.total === 1 ? '' : ` (${g.total} files${g.written > 0 && g.written < g.total ? `, ${g.written} updated` : ''})`;
      this.r.line(g.written > 0 ? 'installed' : 'unchanged', `${group} ${this.show(where[group])}${count}`);
    }
  }

  /** The default policy, only where there is none; an edited policy is the administrator's. */
  private policy(): void {
    const shipped = fs.readFileSync(path.join(this.source, 'policy/default-policy.yaml'));
    const st = this.w.lstat(POLICY_FILE);
    if (st === null) {
      this.w.writeFile(POLICY_FILE, shipped, 0o644);
      this.m.config.push(POLICY_FILE);
      this.r.line('installed', `default policy ${this.show(POLICY_FILE)}`);
    } else if (st.isFile() && fs.readFileSync(this.layout.host(POLICY_FILE)).equals(shipped)) {
      this.r.line('unchanged', `policy ${this.show(POLICY_FILE)}`);
    } else {
      this.r.line('kept', `policy ${this.show(POLICY_FILE)}: differs from the shipped default and is left as it is (the default is ${LIB_DIR}/policy/default-policy.yaml)`);
    }
  }

  /** The policy's intercept list; the installed policy decides, the shipped default stands in when there is none yet. */
  private interceptTypes(): string[] | null {
    const installed = this.layout.host(POLICY_FILE);
    const file = fs.existsSync(installed) ? installed : path.join(this.source, 'policy/default-policy.yaml');
    try {
      return loadPolicy(file, { cacheDir: null }).intercept;
    } catch (e) {
      if (!(e instanceof PolicyError)) throw e;
      this.r.line('failed', `mount.TYPE links: ${e.message}; fix the policy ('fusegate policy check ${POLICY_FILE}') and run install again`);
      return null;
    }
  }

  private takesOver(name: string): boolean {
    const t = this.opts.takeOver;
    return t === true || (Array.isArray(t) && t.includes(name));
  }

  /**
   * Points `p` at `target` when `p` is free or already ours. Anything else is
   * a helper someone else installed: left alone, or with --take-over moved to
   * the diverted directory (and recorded) first. `name` is what
   * --take-over=NAME calls it: the type, or mount.fusegate / fusegate.
   */
  private link(label: string, p: string, target: string, name: string): void {
    const entry: SymlinkEntry = { path: p, target };
    if (this.w.lstat(p) !== null && !isOurLink(this.w, p)) {
      const what = describeExisting(this.w, p);
      if (!this.takesOver(name)) {
        this.r.line('skipped', `${label}: ${this.show(p)} exists and is not fusegate's (${what}); to replace it, run 'fusegate install --take-over=${name}' (the original is kept in ${DIVERTED_DIR} and restored by uninstall)`);
        return;
      }
      const divertedTo = `${DIVERTED_DIR}/${path.posix.basename(p)}`;
      this.w.move(p, divertedTo);
      this.m.diversions = this.m.diversions.filter((d) => d.path !== p);
      this.m.diversions.push({ path: p, divertedTo });
      this.r.line('diverted', `${label}: ${this.show(p)} (${what}) moved to ${this.show(divertedTo)}; uninstall puts it back`);
    }
    const result = this.w.symlink(p, target);
    this.m.symlinks.push(entry);
    this.r.line(result, `${label} ${this.show(p)} -> ${target}`);
  }

  /** mount.fusegate(8), umount.fusegate(8), fusegate(8), fusegate-policy(5). */
  private manPages(): void {
    const pages = manPages(this.source);
    if (pages.length === 0) return;
    const results = pages.map((p) => {
      this.m.files.push(p.target);
      return this.w.writeFile(p.target, fs.readFileSync(path.join(this.source, p.rel)), 0o644);
    });
    this.r.line(results.includes('installed') ? 'installed' : 'unchanged', `man pages ${pages.map((p) => path.posix.basename(p.target)).join(', ')}`);
  }

  private units(): void {
    const units = allUnits({ libDir: LIB_DIR, node: this.opts.node ?? process.execPath, socketDir: BUILT_SOCKET_DIR });
    // The slice every instance runs in (Slice=): its caps bound all sandboxed servers together.
    const slice = units.find((u) => u.name === SLICE)!;
    const slicePath = `${UNIT_DIR}/${slice.name}`;
    this.m.files.push(slicePath);
    const sliceResult = this.w.writeFile(slicePath, Buffer.from(slice.text), 0o644);
    if (sliceResult === 'installed') this.unitsChanged = true;
    this.r.line(sliceResult, `slice ${this.show(slicePath)} (caps for all sandboxed servers)`);
    for (const name of socketServices()) {
      const b = { name };
      const mine = units.filter((u) => u.name === `${b.name}.socket` || u.name === `${b.name}@.service`);
      const results: WriteResult[] = mine.map((u) => {
        const p = `${UNIT_DIR}/${u.name}`;
        this.m.files.push(p);
        return this.w.writeFile(p, Buffer.from(u.text), 0o644);
      });
      // What `systemctl enable` does for WantedBy=sockets.target, and the same absolute target it writes.
      const wants = `${SOCKETS_WANTS_DIR}/${b.name}.socket`;
      results.push(this.w.symlink(wants, `${UNIT_DIR}/${b.name}.socket`));
      this.m.symlinks.push({ path: wants, target: `${UNIT_DIR}/${b.name}.socket` });
      if (results[0] === 'installed' || results[1] === 'installed') this.unitsChanged = true;
      if (results[mine.findIndex((u) => u.name.endsWith('.socket'))] === 'installed') this.changedSockets.push(`${b.name}.socket`);
      const status = results.includes('installed') ? 'installed' : 'unchanged';
      this.r.line(status, `units ${this.show(UNIT_DIR)}/${mine.map((u) => u.name).join(', ')} (socket enabled)`);
    }
  }

  /**
   * The broker for ordinary users (broker/files.ts): its bus policy and
   * activation file, its unit and the polkit actions. Nothing is enabled:
   * the bus starts it on the first call.
   */
  private broker(): void {
    const unitPath = `${UNIT_DIR}/${BROKER_UNIT}`;
    const files = [...brokerSharedFiles(), { path: unitPath, text: brokerUnit({ libDir: LIB_DIR, node: this.opts.node ?? process.execPath }) }];
    const results = files.map((f) => {
      this.m.files.push(f.path);
      return this.w.writeFile(f.path, Buffer.from(f.text), 0o644);
    });
    if (results[results.length - 1] === 'installed') this.unitsChanged = true;
    if (results.slice(0, -1).includes('installed')) this.busPolicyChanged = true;
    this.r.line(results.includes('installed') ? 'installed' : 'unchanged', `broker ${this.show(unitPath)} (bus-activated org.fusegate.Mount1, its D-Bus policy and polkit actions)`);
  }

  /** What the previous install made and this one no longer does (files of an older version, links the policy dropped). */
  private removeStale(): void {
    if (!this.old) return;
    const files = new Set(this.m.files);
    const links = new Set(this.m.symlinks.map((s) => s.path));
    let staleFiles = 0;
    for (const f of this.old.files) {
      if (!files.has(f) && this.w.remove(f)) staleFiles++;
    }
    if (staleFiles > 0) this.r.line('removed', `${staleFiles} file(s) of the previous install no longer shipped`);
    for (const s of this.old.symlinks) {
      if (links.has(s.path)) continue;
      removeOurLink(this.w, this.r, s, this.m);
    }
  }

  /** On the running system: make systemd read the units and listen on the sockets. */
  activate(): void {
    if (!this.layout.live) return;
    const sockets = socketServices().map((name) => `${name}.socket`);
    if (!systemdRunning()) {
      this.r.note('systemd is not running here: the sockets start at the next boot with systemd (kernel mounts work without it)');
      return;
    }
    if (this.opts.dryRun) {
      this.r.note(`would run: systemctl daemon-reload; systemctl enable --now ${sockets.join(' ')}`);
      return;
    }
    // A running bus learns the broker's name and who may call it (dbus-daemon does not always notice new files itself).
    if (this.busPolicyChanged && inactiveUnits(['dbus.service']).length === 0) this.runSystemctl([['reload', 'dbus.service']]);
    // Only what is needed, so a second install changes nothing here either.
    const steps: string[][] = [];
    if (this.unitsChanged) steps.push(['daemon-reload']);
    const inactive = inactiveUnits(sockets);
    if (inactive.length > 0) steps.push(['enable', '--now', ...sockets]);
    // Listening sockets whose unit changed: restarting one only replaces the listener; mounts keep their services.
    const restart = this.changedSockets.filter((s) => !inactive.includes(s));
    if (restart.length > 0) steps.push(['restart', ...restart]);
    if (inactive.length === 0 && restart.length === 0) {
      if (this.unitsChanged) this.runSystemctl(steps);
      this.r.line('unchanged', `sockets listening: ${sockets.join(', ')}`);
      return;
    }
    if (this.runSystemctl(steps)) this.r.line('installed', `sockets listening: ${sockets.join(', ')}`);
  }

  private runSystemctl(steps: string[][]): boolean {
    for (const args of steps) {
      const res = systemctl(args);
      if (!res.ok) {
        this.r.line('failed', `${res.command}: ${res.output || 'failed'}`);
        return false;
      }
    }
    return true;
  }
}

/** Removes a symlink install made, if it still is ours, and restores what it replaced. */
function removeOurLink(w: TreeWriter, r: Report, s: SymlinkEntry, m: Manifest): void {
  const st = w.lstat(s.path);
  if (st !== null) {
    if (st.isSymbolicLink() && readlinkOrNull(w.layout.host(s.path)) === s.target) {
      w.remove(s.path);
      r.line('removed', w.layout.show(s.path));
    } else {
      r.line('kept', `${w.layout.show(s.path)}: changed since fusegate installed it (${describeExisting(w, s.path)})`);
      return;
    }
  }
  const d = m.diversions.find((x) => x.path === s.path);
  if (d !== undefined) restoreDiversion(w, r, d, m);
}

function restoreDiversion(w: TreeWriter, r: Report, d: Diversion, m: Manifest): void {
  if (w.lstat(d.divertedTo) === null) {
    r.line('failed', `cannot restore ${w.layout.show(d.path)}: the original is gone from ${w.layout.show(d.divertedTo)}`);
  } else if (w.lstat(d.path) !== null) {
    // Something (a package upgrade) put a helper there since; that one is newer.
    r.line('kept', `${w.layout.show(d.divertedTo)}: not restored, ${w.layout.show(d.path)} exists again; remove whichever is stale`);
    return;
  } else {
    w.move(d.divertedTo, d.path);
    r.line('restored', `${w.layout.show(d.path)} (from ${w.layout.show(d.divertedTo)})`);
  }
  m.diversions = m.diversions.filter((x) => x !== d);
}

export function install(opts: InstallOptions, io: Io = processIo): number {
  const r = new Report(io, opts.dryRun);
  const layout = new Layout(opts.root);
  requireRootFor(layout, opts.dryRun, 'install');
  if (!layout.live && !fs.existsSync(layout.root)) {
    throw new FusegateError(`--root ${layout.root} does not exist`, { hint: 'create it first', exitCode: InstallExit.USAGE });
  }
  const inst = new Installer(opts, r);
  let error: unknown = null;
  try {
    inst.run();
  } catch (e) {
    error = e;
  }
  try {
    inst.writeManifest(error !== null);
    if (error === null) inst.activate();
  } catch (e) {
    r.line('failed', `install manifest: ${(e as Error).message}`);
  }
  if (error instanceof FusegateError) throw error;
  if (error !== null) r.line('failed', (error as Error).message);
  io.out(`${r.summary(`fusegate ${VERSION} install into ${layout.root}`)}\n`);
  if (!r.failed && !opts.dryRun) io.out(`check the result with: fusegate doctor${layout.live ? '' : ` --root ${layout.root}`}\n`);
  return r.failed ? InstallExit.FAILED : InstallExit.OK;
}

export function uninstall(opts: UninstallOptions, io: Io = processIo): number {
  const r = new Report(io, opts.dryRun);
  const layout = new Layout(opts.root);
  requireRootFor(layout, opts.dryRun, 'uninstall');
  const w = new TreeWriter(layout, opts.dryRun);
  const m = readManifest(layout);
  if (m === null) {
    if (fs.existsSync(layout.host(LIB_DIR))) {
      throw new FusegateError(`${layout.show(LIB_DIR)} exists but has no install manifest, so what to remove is unknown`, {
        hint: `remove ${LIB_DIR}, /usr/sbin/mount.fusegate, the mount.TYPE links into ${LIB_DIR} and fusegate's units in ${UNIT_DIR} by hand`,
        exitCode: InstallExit.FAILED,
      });
    }
    // A policy kept by an earlier uninstall can still be purged, as dpkg --purge does.
    if (opts.purge && w.lstat(POLICY_FILE) !== null) {
      w.remove(POLICY_FILE);
      r.line('removed', `policy ${layout.show(POLICY_FILE)}`);
      if (w.removeDirIfEmpty(path.posix.dirname(POLICY_FILE))) r.line('removed', layout.show(path.posix.dirname(POLICY_FILE)));
      io.out(`${r.summary(`fusegate uninstall from ${layout.root}`)}\n`);
      return InstallExit.OK;
    }
    io.out(`nothing to uninstall: fusegate is not installed in ${layout.root}\n`);
    return InstallExit.OK;
  }
  try {
    uninstallWith(m, w, r, opts);
  } catch (e) {
    if (e instanceof FusegateError) throw e;
    r.line('failed', (e as Error).message);
  }
  io.out(`${r.summary(`fusegate uninstall from ${layout.root}`)}\n`);
  return r.failed ? InstallExit.FAILED : InstallExit.OK;
}

function uninstallWith(m: Manifest, w: TreeWriter, r: Report, opts: UninstallOptions): void {
  const layout = w.layout;
  const live = layout.live && systemdRunning();
  const sockets = m.files.filter((f) => f.startsWith(`${UNIT_DIR}/`) && f.endsWith('.socket')).map((f) => path.posix.basename(f));
  if (layout.live) {
    const active = sandboxedMounts();
    if (active.length > 0) {
      r.note(`${active.length} sandboxed mount(s) still active (${active.map((a) => a.mountpoint).join(', ')}); their servers keep running until unmounted`);
    }
  }
  if (live && sockets.length > 0) {
    if (opts.dryRun) r.note(`would run: systemctl disable --now ${sockets.join(' ')}`);
    else {
      const res = systemctl(['disable', '--now', ...sockets]);
      if (!res.ok) r.line('failed', `${res.command}: ${res.output || 'failed'}`);
    }
  }
  for (const s of m.symlinks) removeOurLink(w, r, s, m);
  for (const d of [...m.diversions]) restoreDiversion(w, r, d, m);

  let programFilesRemoved = 0;
  for (const f of m.files) {
    if (!w.remove(f)) continue;
    if (f.startsWith(`${LIB_DIR}/`)) programFilesRemoved++;
    else r.line('removed', layout.show(f));
  }
  if (programFilesRemoved > 0) r.line('removed', `program ${layout.show(LIB_DIR)} (${programFilesRemoved} files)`);

  const policy = w.lstat(POLICY_FILE);
  if (policy !== null) {
    if (opts.purge) {
      w.remove(POLICY_FILE);
      r.line('removed', `policy ${layout.show(POLICY_FILE)}`);
    } else r.line('kept', `policy ${layout.show(POLICY_FILE)} (uninstall --purge removes it)`);
  }
  w.remove(MANIFEST_FILE);

  // Deepest first, and only the empty ones: a directory holding someone else's files stays.
  const dirs = [...new Set(m.dirs)].sort((a, b) => b.split('/').length - a.split('/').length || b.localeCompare(a));
  const kept: string[] = [];
  for (const d of dirs) {
    if (opts.dryRun || w.lstat(d) === null) continue; // in a dry run nothing was emptied
    // Report only the deepest directory kept: its parents are kept because of it.
    if (!w.removeDirIfEmpty(d) && !kept.some((k) => k.startsWith(`${d}/`))) {
      kept.push(d);
      r.line('kept', `${layout.show(d)}: not empty`);
    }
  }
  if (live && !opts.dryRun) {
    const res = systemctl(['daemon-reload']);
    if (!res.ok) r.line('failed', `${res.command}: ${res.output || 'failed'}`);
  }
}

function cliMain<T>(args: string[], parse: (a: string[]) => T | 'help', run: (o: T, io: Io) => number, io: Io): number {
  try {
    const o = parse(args);
    if (o === 'help') {
      io.out(INSTALL_HELP + '\n');
      return InstallExit.OK;
    }
    return run(o, io);
  } catch (e) {
    if (!(e instanceof FusegateError)) throw e;
    io.err(`fusegate: ${e.message}\n`);
    if (e.hint) io.err(`fusegate: ${e.hint}\n`);
    // Usage errors keep their 1; everything else is a failure to install.
    return e.exitCode === InstallExit.USAGE ? InstallExit.USAGE : InstallExit.FAILED;
  }
}

export function installMain(args: string[], io: Io = processIo): number {
  return cliMain(args, parseInstallArgs, install, io);
}

export function uninstallMain(args: string[], io: Io = processIo): number {
  return cliMain(args, parseUninstallArgs, uninstall, io);
}
