/**
 * Renders bench/run.ts's results as Markdown: the tables that go into
 * bench/RESULTS.md, with the ratios and the goals of the benchmark issue.
 * Goals are reported as met or not; nothing here fails.
 */
import { type FullSummary, fmt, median, percentile, ratio } from './stats';

/** docs/platform.md §2: libfuse's C helper and a socket-activated C server, measured by the design, not here. */
export const C_REFERENCE_MS = 67;

type S = FullSummary;
type Rec = Record<string, unknown>;

const n1 = (v: number | null | undefined, digits = 1) => (v == null || !Number.isFinite(v) ? '–' : v.toFixed(digits));
const x2 = (v: number | null | undefined) => (v == null || !Number.isFinite(v) ? '–' : `${v.toFixed(2)}×`);
const mib = (bytes: number | null | undefined) => (bytes == null ? '–' : (bytes / 2 ** 20).toFixed(2));
const met = (ok: boolean | null) => (ok === null ? 'n/a' : ok ? '**met**' : '**not met**');

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

export interface Goal {
  goal: string;
  measured: string;
  met: boolean | null;
}

export function goals(r: Rec): Goal[] {
  const out: Goal[] = [];
  const lat = r.latency as { summaries: Record<string, S> } | undefined;
  if (lat) {
    const sb = lat.summaries.sandbox;
    out.push({
      goal: `sandbox mount ≤ 2 × ${C_REFERENCE_MS} ms (C reference from docs/platform.md §2, not re-measured) = ${2 * C_REFERENCE_MS} ms`,
      measured: `p50 ${n1(sb?.p50)} ms, p95 ${n1(sb?.p95)} ms`,
      met: sb ? sb.p50 <= 2 * C_REFERENCE_MS : null,
    });
  }
  const data = r.dataPath as { summaries: Record<string, Record<string, S>> } | undefined;
  if (data) {
    const u = data.summaries.fuseDirect!;
    const s = data.summaries.sandbox!;
    const speed: Array<[string, number | null]> = [
      ['seq write', ratio(s.seqWriteMiBs?.p50, u.seqWriteMiBs?.p50)],
      ['seq read', ratio(s.seqReadMiBs?.p50, u.seqReadMiBs?.p50)],
      ['create', ratio(u.smallCreateMs?.p50, s.smallCreateMs?.p50)],
      ['stat', ratio(u.smallStatMs?.p50, s.smallStatMs?.p50)],
      ['read', ratio(u.smallReadMs?.p50, s.smallReadMs?.p50)],
    ];
    const worst = Math.min(...speed.map(([, v]) => v ?? Infinity));
    out.push({
      goal: 'data path: sandboxed ≥ 0.97 × unsandboxed fuse2fs (speed, every workload)',
      measured: speed.map(([k, v]) => `${k} ${x2(v)}`).join(', '),
      met: Number.isFinite(worst) ? worst >= 0.97 : null,
    });
    const o = data.summaries.fuseDirectSandboxOpts;
    if (o) {
      const same: Array<[string, number | null]> = [
        ['seq write', ratio(s.seqWriteMiBs?.p50, o.seqWriteMiBs?.p50)],
        ['seq read', ratio(s.seqReadMiBs?.p50, o.seqReadMiBs?.p50)],
        ['create', ratio(o.smallCreateMs?.p50, s.smallCreateMs?.p50)],
        ['stat', ratio(o.smallStatMs?.p50, s.smallStatMs?.p50)],
        ['read', ratio(o.smallReadMs?.p50, s.smallReadMs?.p50)],
      ];
      const w = Math.min(...same.map(([, v]) => v ?? Infinity));
      out.push({
        goal: '(diagnostic) the same, against unsandboxed fuse2fs mounted with the sandbox path\'s FUSE options (-o default_permissions,allow_other)',
        measured: same.map(([k, v]) => `${k} ${x2(v)}`).join(', '),
        met: Number.isFinite(w) ? w >= 0.97 : null,
      });
    }
  }
  const mem = memoryRatios(r);
  if (mem) {
    out.push({
      goal: 'memory per mount ≤ 1.1 × the bare server, by RSS (no resident Node per mount)',
      measured: `RSS ${x2(mem.rssIdle)} idle, ${x2(mem.rssBusy)} after the workload; processes in the unit: ${mem.unitProcesses}`,
      met: mem.rssIdle !== null && mem.rssBusy !== null ? mem.rssIdle <= 1.1 && mem.rssBusy <= 1.1 && mem.noNode : null,
    });
    out.push({
      goal: 'memory per mount ≤ 1.1 × the bare server, by private memory (USS: what each extra mount really adds)',
      measured: `USS ${x2(mem.ussIdle)} idle, ${x2(mem.ussBusy)} after the workload`,
      met: mem.ussIdle !== null && mem.ussBusy !== null ? mem.ussIdle <= 1.1 && mem.ussBusy <= 1.1 && mem.noNode : null,
    });
  }
  const conc = concurrencySummary(r);
  if (conc) {
    out.push({
      goal: `${conc.n} concurrent mounts and umounts: all succeed, no leaks`,
      measured: `${conc.okMounts}/${conc.totalMounts} mounts, ${conc.okUmounts}/${conc.totalMounts} umounts ok; leaks: ${conc.leaks.length ? conc.leaks.join('; ') : 'none'}`,
      met: conc.okMounts === conc.totalMounts && conc.okUmounts === conc.totalMounts && conc.leaks.length === 0,
    });
  }
  return out;
}

function memoryRatios(r: Rec) {
  const m = r.memory as Record<string, { idle: Rec; afterWorkload: Rec }> | undefined;
  if (!m?.sandbox || !m.fuseDirect) return null;
  const rss = (x: Rec) => (x.server as { rssBytes: number | null }).rssBytes;
  const uss = (x: Rec) => (x.server as { ussBytes: number | null }).ussBytes;
  const procs = (m.sandbox.afterWorkload.unitProcesses as Array<{ comm: string }>).map((p) => p.comm);
  return {
    rssIdle: ratio(rss(m.sandbox.idle), rss(m.fuseDirect.idle)),
    rssBusy: ratio(rss(m.sandbox.afterWorkload), rss(m.fuseDirect.afterWorkload)),
    ussIdle: ratio(uss(m.sandbox.idle), uss(m.fuseDirect.idle)),
    ussBusy: ratio(uss(m.sandbox.afterWorkload), uss(m.fuseDirect.afterWorkload)),
    unitProcesses: procs.join(', ') || '–',
    noNode: procs.length > 0 && !procs.includes('node'),
  };
}

interface Census {
  pid1Fds: number;
  processes: string[];
  fuseMounts: number;
  instances: string[];
  instanceCgroups?: string[];
  servers: number;
  failedUnits: string[];
  socketActive: string;
}

function censusLeaks(before: Census, after: Census): string[] {
  const leaks: string[] = [];
  if (after.pid1Fds > before.pid1Fds) leaks.push(`systemd fds ${before.pid1Fds} → ${after.pid1Fds}`);
  const count = (l: string[]) => l.reduce((m, k) => m.set(k, (m.get(k) ?? 0) + 1), new Map<string, number>());
  const b = count(before.processes);
  for (const [k, v] of count(after.processes)) if (v > (b.get(k) ?? 0)) leaks.push(`${v - (b.get(k) ?? 0)} more '${k}' processes`);
  if (after.fuseMounts > before.fuseMounts) leaks.push(`${after.fuseMounts - before.fuseMounts} fuse mounts left`);
  if (after.instances.length) leaks.push(`${after.instances.length} service instances left`);
  if (after.instanceCgroups?.length) leaks.push(`${after.instanceCgroups.length} instance cgroups left`);
  if (after.servers) leaks.push(`${after.servers} servers left`);
  if (after.failedUnits.length > before.failedUnits.length) leaks.push(`failed units: ${after.failedUnits.join(', ')}`);
  if (after.socketActive !== 'active') leaks.push(`socket ${after.socketActive}`);
  return leaks;
}

function concurrencySummary(r: Rec) {
  const c = r.concurrency as { n: number; rounds: Rec[] } | undefined;
  if (!c || c.rounds.length === 0) return null;
  const mounts = c.rounds.flatMap((x) => x.mounts as Array<{ code: number; statMs: number | null }>);
  const umounts = c.rounds.flatMap((x) => x.umounts as Array<{ code: number; exitMs: number }>);
  const leaks = c.rounds.flatMap((x, i) => censusLeaks(x.before as Census, x.after as Census).map((l) => `round ${i + 1}: ${l}`));
  const cleanup = r.cleanup as { loopDevicesStillAttached?: string[]; containerLeftovers?: { pids: number[]; mounts: string[] } } | undefined;
  if (cleanup?.loopDevicesStillAttached?.length) leaks.push(`loop devices still attached: ${cleanup.loopDevicesStillAttached.join(' ')}`);
  if (cleanup?.containerLeftovers?.pids.length) leaks.push(`container processes left: ${cleanup.containerLeftovers.pids.join(' ')}`);
  const perUnit = c.rounds.flatMap((x) => x.perUnit as Array<{ serverRssBytes: number | null; serverUssBytes?: number | null; processes: string[] }>);
  const rss = perUnit.map((u) => u.serverRssBytes).filter((v): v is number => v != null);
  const uss = perUnit.map((u) => u.serverUssBytes).filter((v): v is number => v != null);
  const nodeInUnits = c.rounds.some((x) => (x.perUnit as Array<{ processes: string[] }>).some((u) => u.processes.includes('node') || u.processes.length !== 1));
  return {
    n: c.n,
    rounds: c.rounds.length,
    totalMounts: mounts.length,
    okMounts: mounts.filter((m) => m.code === 0 && m.statMs !== null).length,
    okUmounts: umounts.filter((u) => u.code === 0).length,
    mountWall: c.rounds.map((x) => x.mountWallMs as number),
    perMount: mounts.map((m) => m.statMs).filter((v): v is number => v !== null),
    umountWall: c.rounds.map((x) => x.umountWallMs as number),
    perUmount: umounts.map((u) => u.exitMs),
    teardown: c.rounds.map((x) => x.teardownMs as number | null),
    instances: c.rounds.map((x) => x.instancesWhileMounted as number),
    emptyCgroups: c.rounds.flatMap((x) => (x.emptyInstanceCgroups as string[] | undefined) ?? []),
    rss,
    uss,
    nodeInUnits,
    leaks,
    failures: c.rounds.flatMap((x, i) => {
      const bad = (x.mounts as Array<{ code: number; stderr: string }>).filter((m) => m.code !== 0);
      if (!bad.length) return [];
      return [...bad.map((m) => `round ${i + 1}: exit ${m.code}: ${m.stderr}`), ...((x.warnings as string[] | undefined) ?? []).slice(-25)];
    }),
    pid1Fds: c.rounds.map((x) => `${(x.before as Census).pid1Fds} → ${(x.after as Census).pid1Fds}`),
  };
}

export function renderMarkdown(r: Rec): string {
  const out: string[] = [];
  const m = r.machine as Rec;
  const ct = r.container as Rec | undefined;
  out.push(`## fusegate benchmark, ${r.mode} mode, ${String(r.date).slice(0, 10)}`);
  out.push('');
  out.push(
    `Machine: ${m.nproc} CPUs (${m.cpuModel}), ${m.memoryMiB} MiB RAM, Linux ${m.kernel}, ${m.os} (debian_version ${m.debianVersion}), Node ${m.node}. ` +
      `Measured inside the e2e container (${m.systemdNspawn?.toString().replace(/ \(.*/, '') ?? 'systemd-nspawn'}; ${ct?.systemd ?? 'systemd'}, cgroup ${ct?.cgroup ?? '?'}, fuse2fs ${ct?.fuse2fs ?? '?'}), ` +
      `fusegate installed with \`fusegate install\`. Images: ${r.fsType}, on ${r.imageBacking}, on loop devices. Whole run: ${n1(r.wallSeconds as number, 0)} s.`,
  );
  out.push('');

  const g = goals(r);
  if (g.length) {
    out.push('### Goals');
    out.push('');
    out.push(table(['goal', 'measured', 'status'], g.map((x) => [x.goal, x.measured, met(x.met)])));
    out.push('');
  }

  const lat = r.latency as
    | { runs: number; summaries: Record<string, S>; sandboxBreakdown: S[]; helperKernelPhases: S[]; umountSummaries: Record<string, S>; mountOptions: Record<string, string | null> }
    | undefined;
  if (lat) {
    const s = lat.summaries;
    const floor = s.nodeFloor?.p50;
    out.push(`### 1. Mount latency (command start → the mount point answers stat), ${lat.runs} interleaved runs each`);
    out.push('');
    out.push(
      table(
        ['command', 'p50 ms', 'p95 ms', 'min ms', '÷ node -e 0', '÷ kernel direct', '÷ fuse2fs direct', `÷ C ref ${C_REFERENCE_MS} ms*`],
        ['nodeFloor', 'kernel', 'helperKernel', 'fuseDirect', 'sandbox'].filter((k) => s[k]).map((k) => {
          const x = s[k]!;
          return [x.name, fmt(x.p50), fmt(x.p95), fmt(x.min), x2(ratio(x.p50, floor)), x2(ratio(x.p50, s.kernel?.p50)), x2(ratio(x.p50, s.fuseDirect?.p50)), x2(x.p50 / C_REFERENCE_MS)];
        }),
      ),
    );
    out.push('');
    out.push(`\\* ${C_REFERENCE_MS} ms is docs/platform.md §2's number for libfuse's C helper with a socket-activated C server; Debian 12 has no such helper, so it is not re-measured here.`);
    out.push('');
    out.push(
      'Where the sandboxed mount spends its time (helper FUSEGATE_TIMING marks, systemd unit timestamps, the adapter\'s journal entry; systemd stamps InactiveExit after it has forked the child, so part of the sandbox set-up falls in the third row):',
    );
    out.push('');
    out.push(table(['phase', 'p50 ms', 'p95 ms'], lat.sandboxBreakdown.map((x) => [x.name, fmt(x.p50), fmt(x.p95)])));
    out.push('');
    out.push('The helper on the kernel path:');
    out.push('');
    out.push(table(['phase', 'p50 ms', 'p95 ms'], lat.helperKernelPhases.map((x) => [x.name, fmt(x.p50), fmt(x.p95)])));
    out.push('');
    const wi = (lat as { whatIf?: Record<string, S> }).whatIf ?? {};
    if (Object.keys(wi).length) {
      out.push('What-if, end to end (sandboxed mounts with a systemd drop-in on the template unit, run after the table above):');
      out.push('');
      out.push(
        table(
          ['variant', 'p50 ms', 'p95 ms', 'Δ p50 vs sandbox above'],
          Object.values(wi).map((x) => [x.name, fmt(x.p50), fmt(x.p95), s.sandbox ? (x.p50 - s.sandbox.p50).toFixed(1) : '–']),
        ),
      );
      out.push('');
    }
    const um = lat.umountSummaries;
    out.push(
      `umount(8) p50: kernel ${n1(um.kernel?.p50)} ms, helper/kernel ${n1(um.helperKernel?.p50)} ms, fuse2fs direct ${n1(um.fuseDirect?.p50)} ms, sandbox ${n1(um.sandbox?.p50)} ms.`,
    );
    out.push('');
  }

  const data = r.dataPath as { sizeMiB: number; smallFiles: number; smallFileBytes: number; rounds: number; summaries: Record<string, Record<string, S>>; mountOptions: Record<string, string | null> } | undefined;
  if (data) {
    const k = data.summaries.kernel!;
    const u = data.summaries.fuseDirect!;
    const o = data.summaries.fuseDirectSandboxOpts ?? {};
    const sb = data.summaries.sandbox!;
    out.push(
      `### 2. Data path: ${data.sizeMiB} MiB sequential, ${data.smallFiles} files of ${data.smallFileBytes} B; median of ${data.rounds} round(s), page caches dropped before each step`,
    );
    out.push('');
    const row = (name: string, key: string, unit: string, higherBetter: boolean) => {
      const v = [k[key]?.p50, u[key]?.p50, o[key]?.p50, sb[key]?.p50];
      const speed = (a: number | undefined, b: number | undefined) => (higherBetter ? ratio(a, b) : ratio(b, a));
      const cell = (x: S | undefined) => (x ? `${n1(x.p50)} ${unit} (${n1(x.min)}–${n1(x.max)})` : '–');
      return [name, cell(k[key]), cell(u[key]), cell(o[key]), cell(sb[key]), x2(speed(v[3], v[1])), x2(speed(v[3], v[2])), x2(speed(v[3], v[0]))];
    };
    out.push(
      table(
        [
          'workload (median, range)',
          'kernel ext4',
          'fuse2fs unsandboxed',
          'fuse2fs unsandboxed, sandbox\'s FUSE options†',
          'fuse2fs sandboxed',
          'sandboxed ÷ unsandboxed',
          'sandboxed ÷ unsandboxed same options',
          'sandboxed ÷ kernel',
        ],
        [
          row('sequential write (+fsync)', 'seqWriteMiBs', 'MiB/s', true),
          row('sequential read', 'seqReadMiBs', 'MiB/s', true),
          row(`create ${data.smallFiles} files`, 'smallCreateMs', 'ms', false),
          row(`stat ${data.smallFiles} files`, 'smallStatMs', 'ms', false),
          row(`read ${data.smallFiles} files`, 'smallReadMs', 'ms', false),
        ],
      ),
    );
    out.push('');
    const so = (data as { sandboxFuseOptions?: { fsType: string; options: string } }).sandboxFuseOptions;
    out.push(
      `Ratios are speeds (> 1: the sandboxed server is faster). † \`fuse2fs -o ${so?.options ?? '?'}\`: the sandbox's FUSE options` +
        (so?.fsType.startsWith('fuseblk') ? `, but as a fuse mount: the sandbox mounts ${so.fsType}, which an unsandboxed fuse2fs cannot (it opens its device O_EXCL, then the kernel's exclusive open for fuseblk fails with EBUSY)` : '') +
        '. Mount options as the kernel shows them (per-mount | superblock):',
    );
    out.push('');
    for (const [c, o] of Object.entries(data.mountOptions)) out.push(`- ${c}: \`${o}\``);
    out.push('');
  }

  const mem = r.memory as (Record<string, { idle: Rec; afterWorkload: Rec }> & { workload?: string }) | undefined;
  if (mem?.sandbox && mem.fuseDirect) {
    type M = { rssBytes: number | null; pssBytes: number | null; hwmBytes: number | null; ussBytes: number | null; anonBytes: number | null; fileBytes: number | null; threads: number | null };
    const srv = (x: Rec | undefined) => (x?.server ?? {}) as Partial<M>;
    const mr = memoryRatios(r)!;
    out.push(`### 3. Memory per mount (workload: ${mem.workload})`);
    out.push('');
    const rows = (label: string, key: 'idle' | 'afterWorkload') => {
      const b = srv(mem.fuseDirect![key]);
      const o = srv(mem.fuseDirectSandboxOpts?.[key]);
      const s = srv(mem.sandbox![key]);
      const line = (name: string, f: keyof M, fmtv: (v: number | null | undefined) => string = mib) => [
        `${name}, ${label}`,
        fmtv(b[f]),
        fmtv(o[f]),
        fmtv(s[f]),
        x2(ratio(s[f], b[f])),
      ];
      return [
        line('RSS', 'rssBytes'),
        line('private (USS)', 'ussBytes'),
        line('anonymous (RssAnon)', 'anonBytes'),
        line('file-backed (RssFile)', 'fileBytes'),
        line('PSS', 'pssBytes'),
        line('threads', 'threads', (v) => (v == null ? '–' : String(v))),
      ];
    };
    out.push(
      table(
        ['server (MiB)', 'bare fuse2fs', 'bare fuse2fs, sandbox\'s FUSE options', 'sandboxed fuse2fs', 'sandboxed ÷ bare'],
        [...rows('idle after mount', 'idle'), ...rows('after workload', 'afterWorkload')],
      ),
    );
    out.push('');
    const sbBusy = mem.sandbox.afterWorkload;
    const why = sbBusy.memoryCurrentWhy as string | null;
    out.push(
      `Processes in the sandboxed mount's unit: ${mr.unitProcesses} (no Node stays). ` +
        (sbBusy.memoryCurrentBytes != null
          ? `The unit's cgroup memory (MemoryCurrent, includes page cache charged to it): ${mib(sbBusy.memoryCurrentBytes as number)} MiB after the workload.`
          : `Cgroup memory is not reported: ${why}; RSS/PSS only.`),
    );
    out.push('');
  }

  const conc = concurrencySummary(r);
  if (conc) {
    out.push(`### 4. Concurrency: ${conc.n} sandboxed mounts started at once, then ${conc.n} umounts; ${conc.rounds} round(s)`);
    out.push('');
    const list = (v: Array<number | null>) => v.map((x) => n1(x, 0)).join(', ');
    out.push(
      table(
        ['measure', 'value'],
        [
          ['mounts succeeded (exit 0 and root answers stat)', `${conc.okMounts} / ${conc.totalMounts}`],
          ['service instances with a process while mounted (per round)', conc.instances.join(', ')],
          ['instance cgroups without a process while mounted (stale, left by earlier mounts)', conc.emptyCgroups.length ? conc.emptyCgroups.join(' ') : 'none'],
          ['wall time, all mounts (ms, per round)', list(conc.mountWall)],
          ['per mount, start → stat answers: p50 / p95 / max ms', `${n1(median(conc.perMount))} / ${n1(percentile(conc.perMount, 95))} / ${n1(Math.max(...conc.perMount))}`],
          ['umounts succeeded', `${conc.okUmounts} / ${conc.totalMounts}`],
          ['wall time, all umounts (ms, per round)', list(conc.umountWall)],
          ['per umount p50 / p95 ms', `${n1(median(conc.perUmount))} / ${n1(percentile(conc.perUmount, 95))}`],
          ['umount start → every server and instance gone (ms, per round)', list(conc.teardown)],
          ['server RSS per mount p50 / max MiB', `${mib(median(conc.rss))} / ${mib(Math.max(...conc.rss))}`],
          ['server private memory (USS) per mount p50 / max MiB', conc.uss.length ? `${mib(median(conc.uss))} / ${mib(Math.max(...conc.uss))}` : '–'],
          ['a Node process in any unit', conc.nodeInUnits ? 'yes' : 'no'],
          ['systemd (pid 1) open fds before → after', conc.pid1Fds.join('; ')],
          ['leaks (processes, fuse mounts, instances, failed units, loop devices)', conc.leaks.length ? conc.leaks.join('; ') : 'none'],
        ],
      ),
    );
    out.push('');
    if (conc.failures.length) {
      out.push('Failed mounts and what the journal said (warning or worse) in that round:');
      out.push('');
      out.push('```');
      for (const f of conc.failures) out.push(f);
      out.push('```');
      out.push('');
    }
  }

  const st = r.startup as
    | { nodeInContainer: Record<string, S>; host: { summaries: Record<string, S>; inheritedNodeExtraCaCerts: string | null }; unitVariants: Record<string, S>; unitVariantFailures: Record<string, number> }
    | undefined;
  if (st) {
    out.push('### 5. Start-up experiments: what the mount path pays for');
    out.push('');
    const floor = Object.values(st.nodeInContainer)[0]?.p50;
    out.push(
      table(
        ['process (in the container, clean environment)', 'p50 ms', 'p95 ms', '− node -e 0'],
        Object.values(st.nodeInContainer).map((x) => [x.name, fmt(x.p50), fmt(x.p95), floor === undefined ? '–' : `${(x.p50 - floor).toFixed(1)}`]),
      ),
    );
    out.push('');
    out.push(
      table(
        ['on the host', 'p50 ms', 'p95 ms'],
        Object.values(st.host.summaries).map((x) => [x.name, fmt(x.p50), fmt(x.p95)]),
      ),
    );
    out.push('');
    const uv = st.unitVariants;
    const full = uv['fuse2fs@ sandbox, /bin/sh']?.p50;
    const ms = (st as { mountScaling?: Array<{ extraMounts: number; mountTable: number; bare: S; sandbox: S }> }).mountScaling ?? [];
    if (ms.length) {
      out.push('Sandbox set-up against the size of the mount table (extra tmpfs mounts in the container; connect → first byte, /bin/sh):');
      out.push('');
      out.push(
        table(
          ['extra mounts', 'mount table lines', 'no sandbox p50 ms', 'fuse2fs@ sandbox p50 ms', 'sandbox − no sandbox ms'],
          ms.map((pt) => [String(pt.extraMounts), String(pt.mountTable), fmt(pt.bare.p50), fmt(pt.sandbox.p50), (pt.sandbox.p50 - pt.bare.p50).toFixed(1)]),
        ),
      );
      out.push('');
    }
    const mw = (st as { mountsWhenMeasured?: number | null }).mountsWhenMeasured;
    out.push(`systemd socket activation, connect → first byte from the instance (Accept=yes stream socket; the program writes one byte; ${mw ?? '?'} lines in the mount table):`);
    out.push('');
    out.push(
      table(
        ['unit variant', 'p50 ms', 'p95 ms', 'Δ p50 vs full sandbox', 'failed'],
        Object.entries(uv)
          .sort(([a], [b]) => (a.includes('without') === b.includes('without') ? 0 : a.includes('without') ? 1 : -1))
          .map(([k, x]) => [k, fmt(x.p50), fmt(x.p95), full === undefined ? '–' : (x.p50 - full).toFixed(1), String(st.unitVariantFailures[k] ?? 0)]),
      ),
    );
    out.push('');
  }
  return out.join('\n') + '\n';
}
