/**
 * `fusegate doctor`: everything a sandboxed mount needs, checked in the order
 * a mount needs it, each with what to do when it is missing.
 *
 * With --root DIR it checks an install tree offline: files, links, units and
 * the policy in DIR; checks of the running machine (root, /dev/fuse, the
 * kernel, systemd, listening sockets) are skipped then.
 */
import * as fs from 'node:fs';
import { kernelListsFilesystem } from '../lib/availability';
import { parseCommandLineOr, stringValue } from '../lib/cli-args';
import { BACKENDS, type Backend } from '../lib/backends';
import { lstatOrNull, readOrNull, statOrNull } from '../lib/fs-or-null';
import { BUILT_SOCKET_DIR } from '../lib/socket-dir';
import { checkPolicy, loadPolicy } from '../policy/load';
import type { Policy } from '../policy/types';
import { processIo, type Io } from '../lib/output';
import { HELPER_LAZY_BUNDLES } from './install-program';
import { probeLauncher } from './launcher-check';
import { HELPER_TARGET, LAUNCHER_TARGET, LIB_DIR, Layout, POLICY_FILE, SOCKETS_WANTS_DIR, UNIT_DIR } from './paths';
import { systemdRunning } from './systemctl';
import { allUnits, socketServices } from './units';

export type CheckStatus = 'ok' | 'warn' | 'FAIL' | 'info';

export interface Check {
  status: CheckStatus;
  /** what was checked, a few words */
  name: string;
  detail: string;
  /** what to do about a warn or FAIL */
  hint?: string;
  /** further lines (policy diagnostics) */
  more?: string[];
}

export const DOCTOR_HELP = `NAME
    fusegate doctor - check everything a sandboxed mount needs

SYNOPSIS
    fusegate doctor [--root DIR] [--json]

DESCRIPTION
    Checks, in the order a mount needs them: root privileges, /dev/fuse and
    the fuse filesystem, Node, the native addon, the fdmap preload library,
    /sbin/mount.fusegate, the policy, each backend's FUSE server, the units
    and their sockets, systemd, and the mount.TYPE links for the types the
    policy intercepts. Each line starts with ok, warn, FAIL or info; every
    warn and FAIL is followed by what to do about it.

OPTIONS
    --root DIR    check the install tree at DIR (as made by
                  'fusegate install --root DIR'); checks of the running
                  machine are skipped
    --json        print a JSON object instead of lines
    -h, --help    show this text

EXIT STATUS
    0  no FAIL;  1  at least one FAIL, or a usage error`;

const FUSE_MAJOR = 10;
const FUSE_MINOR = 229;
const MIN_NODE_MAJOR = 20;
/** The units' ExecStart runs this (admin/units.ts). */
const ADAPTER_START = `${LIB_DIR}/dist/sandbox/adapter-start.js`;

function executable(st: fs.Stats | null): boolean {
  return st !== null && st.isFile() && (st.mode & 0o111) !== 0;
}

/** Linux's encoding of dev_t (new_decode_dev). */
function devNumbers(rdev: number): [number, number] {
  return [(rdev >> 8) & 0xfff, (rdev & 0xff) | ((rdev >> 12) & 0xfff00)];
}

class Doctor {
  readonly checks: Check[] = [];
  policy: Policy | null = null;

  constructor(readonly layout: Layout) {}

  get runtime(): boolean {
    return this.layout.live;
  }

  private add(status: CheckStatus, name: string, detail: string, hint?: string, more?: string[]): void {
    this.checks.push({ status, name, detail, ...(hint === undefined ? {} : { hint }), ...(more === undefined ? {} : { more }) });
  }

  private host(p: string): string {
    return this.layout.host(p);
  }

  run(): Check[] {
    if (this.runtime) {
      this.root();
      this.devFuse();
      this.fuseFilesystem();
      this.node();
    }
    this.addon();
    this.preload();
    this.helper();
    if (this.layout.live) this.launcher();
    this.adapter();
    this.loadPolicy();
    this.backends();
    if (this.runtime) this.systemd();
    this.units();
    this.interceptLinks();
    return this.checks;
  }

  private root(): void {
    const uid = process.geteuid?.() ?? -1;
    if (uid === 0) this.add('ok', 'root', 'running as root');
    else this.add('FAIL', 'root', `running as uid ${uid}: mounts and some checks need root`, 'run it as root: sudo fusegate doctor');
  }

  private devFuse(): void {
    const st = statOrNull('/dev/fuse');
    if (st === null) {
      this.add('FAIL', '/dev/fuse', 'missing', "load the module: modprobe fuse (in a container, bind-mount the host's /dev/fuse)");
      return;
    }
    const [major, minor] = devNumbers(st.rdev);
    if (!st.isCharacterDevice() || major !== FUSE_MAJOR || minor !== FUSE_MINOR) {
      this.add('FAIL', '/dev/fuse', `is not the FUSE device (expected character device ${FUSE_MAJOR}:${FUSE_MINOR}, found ${st.isCharacterDevice() ? `${major}:${minor}` : 'no character device'})`, `recreate it: rm /dev/fuse && mknod -m 0666 /dev/fuse c ${FUSE_MAJOR} ${FUSE_MINOR}`);
      return;
    }
    this.add('ok', '/dev/fuse', `character device ${major}:${minor}`);
  }

  private fuseFilesystem(): void {
    if (kernelListsFilesystem('fuse')) this.add('ok', 'kernel', 'fuse is in /proc/filesystems');
    else this.add('FAIL', 'kernel', 'fuse is not in /proc/filesystems', 'load the module: modprobe fuse');
  }

  private node(): void {
    const major = Number(process.versions.node.split('.')[0]);
    if (major >= MIN_NODE_MAJOR) this.add('ok', 'node', `${process.version} (${process.execPath})`);
    else this.add('FAIL', 'node', `${process.version} is older than ${MIN_NODE_MAJOR}`, `install Node ${MIN_NODE_MAJOR} or newer (Debian 12's nodejs is 18: use NodeSource or the official binaries)`);
  }

  private addon(): void {
    const file = `${LIB_DIR}/build/Release/fusegate_native.node`;
    if (statOrNull(this.host(file)) === null) {
      this.add('FAIL', 'native addon', `${this.layout.show(file)} is missing`, 'run fusegate install');
      return;
    }
    try {
      const addon = require(this.host(file)) as { socketpairSeqpacket(): [number, number] };
      const [a, b] = addon.socketpairSeqpacket();
      fs.closeSync(a);
      fs.closeSync(b);
      this.add('ok', 'native addon', `${this.layout.show(file)} loads and makes a SOCK_SEQPACKET pair`);
    } catch (e) {
      this.add('FAIL', 'native addon', `${this.layout.show(file)} does not work: ${(e as Error).message.split('\n')[0]}`,
        `rebuild it for this Node (${process.version}): npm_config_nodedir=/usr npm ci && npm run build, then fusegate install`);
    }
  }

  private preload(): void {
    const file = `${LIB_DIR}/build/Release/fdmap-preload.so`;
    const st = statOrNull(this.host(file));
    if (st === null || !st.isFile() || st.size === 0) {
      this.add('FAIL', 'preload library', `${this.layout.show(file)} is missing`, 'run fusegate install (libfuse 2 servers and ntfs-3g cannot start without it)');
      return;
    }
    const head = Buffer.alloc(4);
    const fd = fs.openSync(this.host(file), 'r');
    try {
      fs.readSync(fd, head, 0, 4, 0);
    } finally {
      fs.closeSync(fd);
    }
    if (!head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) this.add('FAIL', 'preload library', `${this.layout.show(file)} is not an ELF shared object`, 'rebuild (npm ci) and run fusegate install');
    else this.add('ok', 'preload library', this.layout.show(file));
  }

  private helper(): void {
    const link = this.layout.helperLink('fusegate');
    const st = lstatOrNull(this.host(link));
    const show = this.layout.show(link);
    if (st === null) {
      this.add('FAIL', 'mount.fusegate', `${show} is missing`, 'run fusegate install');
      return;
    }
    const target = st.isSymbolicLink() ? fs.readlinkSync(this.host(link)) : null;
    if (target !== LAUNCHER_TARGET) {
      this.add('FAIL', 'mount.fusegate', `${show} is ${target === null ? 'not a symlink' : `a symlink to ${target}`}, not to ${LAUNCHER_TARGET}`, 'run fusegate install --take-over=mount.fusegate (the present file is kept)');
      return;
    }
    // the loader's bundle, and the sandbox path's bundle it loads on demand (scripts/bundle.js)
    const bundles = [HELPER_TARGET.replace(/\.js$/, '.bundle.js'), ...HELPER_LAZY_BUNDLES.map((b) => `${LIB_DIR}/dist/helper/${b}`)];
    if (!executable(statOrNull(this.host(HELPER_TARGET))) || bundles.some((b) => statOrNull(this.host(b)) === null)) {
      this.add('FAIL', 'mount.fusegate', `${this.layout.show(HELPER_TARGET)} (or its bundles) is missing or not executable`, 'run fusegate install');
      return;
    }
    this.add('ok', 'mount.fusegate', `${show} -> ${LAUNCHER_TARGET} -> ${HELPER_TARGET}`);
  }

  /** Whether a mount at boot reaches the Node helper, or the launcher's fail-closed rule. */
  private launcher(): void {
    const p = probeLauncher(LAUNCHER_TARGET);
    if (p.state === 'helper') this.add('ok', 'launcher', `${LAUNCHER_TARGET} runs the helper (${p.version})`);
    else if (p.state === 'fail-closed') {
      this.add('FAIL', 'launcher', `the Node helper cannot run (${p.why}): the launcher would fall back to fail-closed mode, where only fixed disks listed in /etc/fstab mount (with the kernel driver) and everything else is refused`,
        'install Node 20 or newer as /usr/bin/node and run fusegate install again');
    } else this.add('FAIL', 'launcher', p.why, 'run fusegate install');
  }

  /** What every service unit runs (ExecStart=): the adapter's loader and its bundle. */
  private adapter(): void {
    const missing = [ADAPTER_START, ADAPTER_START.replace(/\.js$/, '.bundle.js')].filter((p) => statOrNull(this.host(p)) === null);
    if (missing.length > 0) this.add('FAIL', 'service adapter', `${missing.map((p) => this.layout.show(p)).join(', ')} missing`, 'run fusegate install');
    else this.add('ok', 'service adapter', this.layout.show(ADAPTER_START));
  }

  private loadPolicy(): void {
    const file = this.host(POLICY_FILE);
    if (!fs.existsSync(file)) {
      this.add('FAIL', 'policy', `${this.layout.show(POLICY_FILE)} is missing: mounts fail closed (only fixed disks listed in /etc/fstab are mounted)`,
        `run fusegate install (it installs the default policy), or cp ${LIB_DIR}/policy/default-policy.yaml ${POLICY_FILE}`);
      return;
    }
    const diags = checkPolicy(file);
    const errors = diags.filter((d) => d.severity === 'error');
    const warnings = diags.filter((d) => d.severity !== 'error');
    const show = (d: (typeof diags)[number]) => `${d.file}${d.line > 0 ? `:${d.line}:${d.column}` : ''}: ${d.severity}: ${d.message} (${d.hint})`;
    if (errors.length > 0) {
      this.add('FAIL', 'policy', `${this.layout.show(POLICY_FILE)} does not load (${errors.length} error${errors.length > 1 ? 's' : ''}); mounts fail closed: only fixed fstab disks are mounted`,
        `fix it, or start again from ${LIB_DIR}/policy/default-policy.yaml; 'fusegate policy check ${POLICY_FILE}' lists every problem`, errors.slice(0, 3).map(show));
      return;
    }
    this.policy = loadPolicy(file, { cacheDir: null });
    const summary = `${this.layout.show(POLICY_FILE)} loads: ${this.policy.rules.length} rules, intercepts ${this.policy.intercept.join(', ') || 'nothing'}`;
    if (warnings.length > 0) this.add('warn', 'policy', `${summary}; ${warnings.length} warning(s)`, `see 'fusegate policy check ${POLICY_FILE}'`, warnings.slice(0, 3).map(show));
    else this.add('ok', 'policy', summary);
  }

  /** The backends the policy may send a mount to: missing ones make those mounts fail. */
  private wantedBackends(): Set<string> {
    if (this.policy === null) return new Set(BACKENDS.map((b) => b.name));
    const names = new Set<string>(Object.values(this.policy.defaults.backends).flat());
    for (const r of this.policy.rules) {
      const prefs = r.backends;
      if (prefs === undefined) continue;
      for (const n of Array.isArray(prefs) ? prefs : Object.values(prefs).flat()) names.add(n);
    }
    return names;
  }

  private backends(): void {
    const wanted = this.wantedBackends();
    for (const b of BACKENDS) {
      const types = b.types.map((t) => t.type).join(', ');
      if (b.delivery === 'in-process') {
        // fusegate's own server: the adapter itself, installed with fusegate
        const file = `${LIB_DIR}/${b.binary}`;
        if (statOrNull(this.host(file))?.isFile()) this.add('ok', `backend ${b.name}`, `built in: ${file} serves ${types} in-process`);
        else this.add('FAIL', `backend ${b.name}`, `${file} is missing`, 'run fusegate install');
      } else if (executable(statOrNull(this.host(b.binary)))) {
        this.add('ok', `backend ${b.name}`, `${b.binary} (${types})`);
      } else if (b.delivery === 'native-service') {
        this.add('info', `backend ${b.name}`, `not installed (optional; it brings its own units): ${b.debianPackage}`);
      } else {
        const used = wanted.has(b.name);
        this.add(used ? 'FAIL' : 'warn', `backend ${b.name}`,
          `${b.binary} is not installed${used ? `: the policy sends ${types} mounts to it, they are refused (or fall back to another backend)` : ' (the policy does not use it)'}`,
          `apt-get install ${b.debianPackage}`);
      }
    }
  }

  private systemd(): void {
    if (systemdRunning()) this.add('ok', 'systemd', 'running as init');
    else this.add('warn', 'systemd', 'not running as init (PID 1): sandboxed mounts need systemd; kernel mounts still work', 'boot with systemd (in a container: systemd-nspawn --boot)');
  }

  /** The node binary a unit runs, from its ExecStart= line. */
  private unitNode(text: string): string | null {
    const m = /^ExecStart=(\S+)/m.exec(text);
    return m ? m[1]! : null;
  }

  private units(): void {
    const listening = this.runtime && systemdRunning();
    // Every socket-activated service: the backends' and the preflight checker's.
    for (const name of socketServices()) this.unitsOf({ name }, listening);
  }

  private unitsOf(b: Pick<Backend, 'name'>, checkListening: boolean): void {
    const name = `units ${b.name}`;
    const socketName = `${b.name}.socket`;
    const texts = [socketName, `${b.name}@.service`].map((u) => readOrNull(this.host(`${UNIT_DIR}/${u}`)));
    const [socketText, serviceText] = texts;
    if (socketText === null || serviceText === null) {
      const missing = [socketName, `${b.name}@.service`].filter((_, i) => texts[i] === null);
      this.add('FAIL', name, `${missing.join(', ')} missing from ${this.layout.show(UNIT_DIR)}`, 'run fusegate install');
      return;
    }
    const problems: string[] = [];
    let status: CheckStatus = 'ok';
    let hint: string | undefined;
    const node = this.unitNode(serviceText);
    // The units are generated; one that differs is stale (an older fusegate) or edited by hand.
    const expected = allUnits({ libDir: LIB_DIR, node: node ?? process.execPath, socketDir: BUILT_SOCKET_DIR });
    if (expected.find((u) => u.name === socketName)?.text !== socketText || expected.find((u) => u.name === `${b.name}@.service`)?.text !== serviceText) {
      status = 'warn';
      problems.push('differ from what this fusegate generates');
      hint = 'run fusegate install to update them (put local changes in a drop-in: systemctl edit)';
    }
    if (node !== null && !executable(statOrNull(this.host(node)))) {
      // In a tree checked offline the node binary may arrive later (e.g. bind-mounted): only a warning there.
      status = this.runtime ? 'FAIL' : status === 'ok' ? 'warn' : status;
      problems.push(`their node ${node} is missing`);
      hint = 'install Node 20 there, or run fusegate install again with the node that should run them';
    }
    const wants = lstatOrNull(this.host(`${SOCKETS_WANTS_DIR}/${socketName}`));
    if (wants === null) {
      status = 'FAIL';
      problems.push(`${socketName} is not enabled`);
      hint = `systemctl enable --now ${socketName}`;
    }
    const listen = /^ListenSequentialPacket=(\S+)/m.exec(socketText)?.[1] ?? null;
    if (checkListening && listen !== null) {
      const st = statOrNull(listen);
      if (st === null || !st.isSocket()) {
        status = 'FAIL';
        problems.push(`nothing listens on ${listen}`);
        hint = `systemctl start ${socketName}; see journalctl -u ${socketName}`;
      }
    }
    const state = problems.length > 0 ? problems.join('; ') : `installed, enabled${checkListening ? `, listening on ${listen}` : ''}`;
    this.add(status, name, `${socketName}, ${b.name}@.service: ${state}`, status === 'ok' ? undefined : hint);
  }

  private interceptLinks(): void {
    if (this.policy === null) {
      this.add('warn', 'mount.TYPE links', 'not checked: the policy did not load', 'fix the policy first');
      return;
    }
    const ours: string[] = [];
    const missing: string[] = [];
    for (const t of this.policy.intercept) {
      const link = this.layout.helperLink(t);
      const st = lstatOrNull(this.host(link));
      const target = st?.isSymbolicLink() ? fs.readlinkSync(this.host(link)) : null;
      if (target === LAUNCHER_TARGET) ours.push(t);
      else if (st === null) missing.push(t);
      else {
        this.add('warn', `mount.${t}`, `${this.layout.show(link)} is not fusegate's (${target === null ? 'a file' : `a symlink to ${target}`}): 'mount -t ${t}' bypasses the policy`,
          `fusegate install --take-over=${t} (keeps the original for uninstall)`);
      }
    }
    if (missing.length > 0) {
      this.add('warn', 'mount.TYPE links', `${missing.map((t) => `mount.${t}`).join(' ')} missing from ${this.layout.show(this.layout.sbinDir)}: mounts of ${missing.length > 1 ? 'these types' : 'this type'} do not go through fusegate`, 'run fusegate install');
    }
    if (ours.length > 0) this.add('ok', 'mount.TYPE links', `${ours.map((t) => `mount.${t}`).join(' ')} -> mount.fusegate's helper`);
  }
}

export function runDoctor(root = '/'): Check[] {
  return new Doctor(new Layout(root)).run();
}

export function formatChecks(checks: Check[]): string {
  const lines: string[] = [];
  for (const c of checks) {
    lines.push(`${c.status.padEnd(4)}  ${c.name}: ${c.detail}`);
    for (const m of c.more ?? []) lines.push(`      ${m}`);
    if (c.hint !== undefined) lines.push(`      fix: ${c.hint}`);
  }
  return lines.join('\n') + '\n';
}

export function main(args: string[], io: Io = processIo): number {
  const p = parseCommandLineOr(io, 'doctor', args, { root: { type: 'string', valueName: 'a directory' }, json: { type: 'boolean' } });
  if (typeof p === 'number') return p;
  if (p === 'help') {
    io.out(DOCTOR_HELP + '\n');
    return 0;
  }
  const root = stringValue(p.values, 'root') ?? '/';
  const json = p.values.json === true;
  if (root === '' || !fs.existsSync(root)) {
    io.err(`fusegate: doctor: --root ${root} does not exist\n`);
    return 1;
  }
  const layout = new Layout(root);
  const checks = new Doctor(layout).run();
  const count = (s: CheckStatus) => checks.filter((c) => c.status === s).length;
  const failures = count('FAIL');
  if (json) {
    io.out(JSON.stringify({ root: layout.root, runtimeChecks: layout.live, ok: failures === 0, failures, warnings: count('warn'), checks }, null, 2) + '\n');
  } else {
    if (!layout.live) io.out(`checking the install tree ${layout.root} (checks of the running machine skipped)\n`);
    io.out(formatChecks(checks));
    io.out(`${failures === 0 ? 'ready' : 'not ready'}: ${count('ok')} ok, ${count('warn')} warning(s), ${failures} failure(s)\n`);
  }
  return failures === 0 ? 0 : 1;
}
