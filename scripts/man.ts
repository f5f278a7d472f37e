#!/usr/bin/env node
/**
 * Writes fusegate's man pages into dist/man (run by `npm run build`), each
 * from the one text that already documents it, so a page never drifts from
 * what the program says:
 *
 *   mount.fusegate(8)    the helper's --help           (helper/args.ts)
 *   umount.fusegate(8)   umount.fusegate --help        (helper/umount.ts)
 *   fusegate(8)          the subcommands' --help texts (install, uninstall,
 *                        doctor, status, policy)
 *   fusegate-policy(5)   policy/README.md
 *
 * A small converter rather than a dependency: the --help texts are laid out
 * for a terminal and go into no-fill blocks as they are, under .SH headings
 * taken from their own headings; the policy reference uses a handful of
 * Markdown constructs (headings, paragraphs, lists, code blocks, tables,
 * `code`, **bold**, *emphasis*), each with an obvious man(7) form.
 *
 *   node dist/scripts/man.js [OUTDIR]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { INSTALL_HELP } from '../admin/install';
import { DOCTOR_HELP } from '../admin/doctor';
import { packageRoot } from '../admin/paths';
import { STATUS_HELP } from '../admin/status';
import { MOUNT_HELP as USER_MOUNT_HELP } from '../broker/client';
import { HELP as MOUNT_HELP } from '../helper/args';
import { UMOUNT_HELP } from '../helper/umount';
import { VERSION } from '../lib/version';
import { HELP as POLICY_HELP } from '../policy/cli';

/** The package root, from dist/scripts or (in tests) from the sources. */
const ROOT = packageRoot();

/** Text for a roff line: backslashes escaped, and no line starting a request. */
function esc(s: string): string {
  const t = s.replace(/\\/g, '\\e').replace(/-/g, '\\-');
  return /^[.']/.test(t) ? `\\&${t}` : t;
}

function header(name: string, section: number): string[] {
  const date = new Date(Number(process.env.SOURCE_DATE_EPOCH ?? 0) * 1000 || Date.now()).toISOString().slice(0, 10);
  return [`.TH ${name.toUpperCase()} ${section} ${date} "fusegate ${VERSION}" "fusegate"`];
}

/** Lines as they are: no filling, no adjusting; common indentation removed. */
function verbatim(lines: string[]): string[] {
  while (lines.length && lines[0]!.trim() === '') lines.shift();
  while (lines.length && lines[lines.length - 1]!.trim() === '') lines.pop();
  const indent = Math.min(...lines.filter((l) => l.trim() !== '').map((l) => l.length - l.trimStart().length));
  return ['.nf', ...lines.map((l) => (l.trim() === '' ? '' : esc(l.slice(indent)))).map((l) => l || '.sp'), '.fi'];
}

/** A --help text split at its headings: 'NAME', 'OPTIONS', 'Options:', 'Exit status (as mount(8)):' … */
function sections(help: string): Array<{ title: string; lines: string[] }> {
  const out: Array<{ title: string; lines: string[] }> = [{ title: '', lines: [] }];
  for (const line of help.split('\n')) {
    const upper = /^([A-Z][A-Z ]+)$/.exec(line);
    const colon = /^([A-Z][a-z]+(?: [a-z]+){0,2})(?: \(.*\))?:\s*(.*)$/.exec(line);
    if (upper) out.push({ title: upper[1]!.trim(), lines: [] });
    else if (colon && !line.startsWith('Usage:')) out.push({ title: colon[1]!.toUpperCase(), lines: colon[2] ? [colon[2]] : [] });
    else out[out.length - 1]!.lines.push(line);
  }
  return out.filter((s) => s.title !== '' || s.lines.some((l) => l.trim() !== ''));
}

function seeAlso(refs: string[]): string[] {
  return ['.SH "SEE ALSO"', refs.map((r) => { const m = /^(.*)\((\d)\)$/.exec(r)!; return `.BR ${m[1]} (${m[2]})`; }).join(',\n')];
}

/** mount.fusegate(8) and umount.fusegate(8): "Usage:" lines, a description, then "Heading:" blocks. */
export function helperPage(name: string, summary: string, help: string, refs: string[]): string {
  const [first, ...rest] = sections(help);
  const lines = first!.lines;
  const blank = lines.findIndex((l) => l.trim() === '');
  const usage = lines.slice(0, blank < 0 ? lines.length : blank).map((l) => l.replace(/^Usage: /, '       '));
  const description = blank < 0 ? [] : lines.slice(blank + 1);
  const out = [...header(name, 8), '.SH NAME', `${name} \\- ${esc(summary)}`, '.SH SYNOPSIS', ...verbatim(usage)];
  if (description.some((l) => l.trim() !== '')) out.push('.SH DESCRIPTION', ...verbatim(description));
  for (const s of rest) out.push(`.SH "${s.title}"`, ...verbatim(s.lines));
  out.push(...seeAlso(refs));
  return out.join('\n') + '\n';
}

/** fusegate(8): each subcommand's --help, under one heading per subcommand. */
export function commandPage(subcommands: Array<{ title: string; help: string }>, refs: string[]): string {
  const parsed = subcommands.map((c) => ({ title: c.title, secs: sections(c.help).filter((s) => s.title !== '' && !/^FUSEGATE-/.test(s.title)) }));
  const synopsis = parsed.flatMap((p) => p.secs.find((s) => s.title === 'SYNOPSIS')?.lines ?? []);
  const out = [
    ...header('fusegate', 8),
    '.SH NAME',
    'fusegate \\- install, check and inspect fusegate, and check its trust policy',
    '.SH SYNOPSIS',
    ...verbatim(synopsis),
    '.SH DESCRIPTION',
    'fusegate mounts untrusted filesystems through sandboxed FUSE servers, as its trust policy decides; see',
    '.BR mount.fusegate (8)',
    'and',
    '.BR fusegate\\-policy (5).',
    'This command installs it, checks it and shows what it is doing.',
    'Each subcommand takes',
    '.BR \\-\\-help ;',
    'what follows is those texts.',
  ];
  for (const p of parsed) {
    out.push(`.SH "${p.title}"`);
    for (const s of p.secs) {
      if (s.title === 'SYNOPSIS' || s.title === 'SEE ALSO') continue;
      out.push(`.SS "${s.title === 'NAME' ? 'Summary' : s.title.charAt(0) + s.title.slice(1).toLowerCase()}"`, ...verbatim(s.lines));
    }
  }
  out.push(...seeAlso(refs));
  return out.join('\n') + '\n';
}

/** Inline Markdown: `code`, **bold**, *emphasis*. */
function inline(s: string): string {
  let t = esc(s);
  t = t.replace(/`([^`]+)`/g, '\\fB$1\\fR');
  t = t.replace(/\*\*([^*]+)\*\*/g, '\\fB$1\\fR');
  t = t.replace(/\*([^*\s][^*]*)\*/g, '\\fI$1\\fR');
  return t;
}

function cells(row: string): string[] {
  return row.trim().replace(/^\||\|$/g, '').split('|').map((c) => c.trim());
}

/** fusegate-policy(5) from policy/README.md. */
export function markdownPage(name: string, section: number, md: string, refs: string[]): string {
  const out = [...header(name, section)];
  const lines = md.split('\n');
  let para: string[] = [];
  const flush = (): void => {
    if (para.length) out.push('.PP', ...para.map(inline));
    para = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (/^# /.test(line)) continue; // the page title: .TH says it
    const h = /^(##+) (.*)$/.exec(line);
    if (h) {
      flush();
      const title = h[2]!.replace(/`/g, '');
      if (h[1] === '##' && title === 'SEE ALSO') break; // written from refs below
      out.push(h[1] === '##' ? `.SH "${esc(title.toUpperCase())}"` : `.SS "${esc(title)}"`);
      if (h[1] === '##' && title === 'NAME') {
        // NAME must be "name \- summary" for apropos and mandb.
        const summary = lines.slice(i + 1).find((l) => l.trim() !== '')!.replace(/^.*? — /, '');
        let j = i + 1;
        while (j < lines.length && !/^##/.test(lines[j]!)) j++;
        const rest = lines.slice(i + 1, j).join(' ').trim().replace(/^.*? — /, '');
        out.push(`${name} \\- ${inline(rest || summary)}`);
        i = j - 1;
      }
      continue;
    }
    if (/^```/.test(line)) {
      flush();
      const block: string[] = [];
      for (i++; i < lines.length && !/^```/.test(lines[i]!); i++) block.push(lines[i]!);
      out.push('.PP', '.RS 4', ...verbatim(block), '.RE');
      continue;
    }
    if (/^\|/.test(line)) {
      flush();
      const head = cells(line);
      i++; // the |---| line
      for (i++; i < lines.length && /^\|/.test(lines[i]!); i++) {
        const c = cells(lines[i]!);
        out.push('.TP', inline(c[0]!), inline(c[1] ?? ''));
        for (let k = 2; k < c.length; k++) out.push('.br', `${inline(head[k]!)}: ${inline(c[k]!)}`);
      }
      i--;
      continue;
    }
    const item = /^(\s*)(?:[-*]|\d+\.) (.*)$/.exec(line);
    if (item) {
      flush();
      const text = [item[2]!];
      while (i + 1 < lines.length && /^\s{2,}\S/.test(lines[i + 1]!) && !/^\s*(?:[-*]|\d+\.) /.test(lines[i + 1]!)) text.push(lines[++i]!.trim());
      out.push(item[1] ? '.IP \\(bu 6' : '.IP \\(bu 2', ...text.map(inline));
      continue;
    }
    if (line.trim() === '') flush();
    else para.push(line.trim());
  }
  flush();
  out.push(...seeAlso(refs));
  return out.join('\n') + '\n';
}

export function writeManPages(outDir: string): string[] {
  fs.mkdirSync(outDir, { recursive: true });
  const pages: Array<[string, string]> = [
    ['mount.fusegate.8', helperPage('mount.fusegate', 'mount a filesystem as the fusegate trust policy decides', MOUNT_HELP,
      ['mount(8)', 'umount.fusegate(8)', 'fusegate(8)', 'fusegate-policy(5)'])],
    ['umount.fusegate.8', helperPage('umount.fusegate', 'unmount a sandboxed fusegate mount and wait for its FUSE server', UMOUNT_HELP,
      ['umount(8)', 'mount.fusegate(8)', 'fusegate(8)'])],
    ['fusegate.8', commandPage([
      { title: 'INSTALL, UNINSTALL', help: INSTALL_HELP },
      { title: 'DOCTOR', help: DOCTOR_HELP },
      { title: 'STATUS', help: STATUS_HELP },
      { title: 'POLICY', help: POLICY_HELP },
      { title: 'MOUNT, UNMOUNT', help: USER_MOUNT_HELP },
    ], ['mount.fusegate(8)', 'polkit(8)', 'umount.fusegate(8)', 'fusegate-policy(5)', 'systemctl(1)'])],
    ['fusegate-policy.5', markdownPage('fusegate-policy', 5, fs.readFileSync(path.join(ROOT, 'policy/README.md'), 'utf8'),
      ['fusegate(8)', 'mount.fusegate(8)', 'blkid(8)', 'fstab(5)', 'mount(8)'])],
  ];
  for (const [file, text] of pages) fs.writeFileSync(path.join(outDir, file), text);
  return pages.map(([file]) => path.join(outDir, file));
}

if (require.main === module) {
  for (const f of writeManPages(process.argv[2] ?? path.join(ROOT, 'dist/man'))) process.stdout.write(`man: ${f}\n`);
}
