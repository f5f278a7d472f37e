/**
 * The argument parsing of fusegate's commands (`fusegate`, its subcommands,
 * admin/write-units.js, the sandbox adapter), on Node's util.parseArgs.
 *
 * util.parseArgs splits the words (long and short options, `--opt=value`,
 * `-ovalue`, short groups such as `-nv`, `--`); this layer reads its tokens
 * in order so that fusegate's commands keep their conventions: `-h`/`--help`
 * wins where it stands (before a later mistake, not after an earlier one),
 * every mistake is a UsageError (exit status 1) naming the word as typed, and
 * an option may take an optional `=value` (`--take-over[=TYPES]`).
 *
 * The mount helpers (helper/args.ts, helper/umount.ts) do not use it: see
 * helper/args.ts for why.
 */
import { parseArgs as nodeParseArgs } from 'node:util';
import { FusegateError, MountExit } from './errors';

export class UsageError extends FusegateError {
  constructor(message: string, hint?: string) {
    super(message, { hint, exitCode: MountExit.USAGE });
  }
}

export interface OptionSpec {
  /** 'string' takes a value (`--opt V`, `--opt=V`, `-oV`); 'boolean' takes none */
  type: 'boolean' | 'string';
  short?: string;
  /** collect every occurrence (string options); else the last one wins */
  multiple?: boolean;
  /** a boolean that may also carry `=VALUE` (then its value is that string) */
  optionalValue?: boolean;
  /** what a missing value is called in the error: "--root needs a directory" (default "a value") */
  valueName?: string;
}

export interface CommandSpec {
  options: Record<string, OptionSpec>;
  /** the longest list of positionals allowed (default: any) */
  maxPositionals?: number;
  /** what an unknown option is called in its error: "unknown option '--x'" (default) or "unknown argument '--x'" */
  unknownWord?: 'option' | 'argument';
  /** said before each message, e.g. "check: " */
  prefix?: string;
  /** the hint every usage error carries, e.g. "see 'fusegate doctor --help'" */
  hint?: string;
}

export type OptionValue = string | boolean | string[] | undefined;

export type Parsed =
  | { help: true }
  | { help: false; values: Record<string, OptionValue>; positionals: string[] };

const HELP_WORDS = new Set(['-h', '--help']);

/** `-h`, `--help` and the `help` command word. */
export function isHelpWord(word: string | undefined): boolean {
  return word !== undefined && (HELP_WORDS.has(word) || word === 'help');
}

/** Parses one command's words (after the command name) against its spec. */
export function parseCommandLine(args: readonly string[], spec: CommandSpec): Parsed {
  const fail = (message: string): never => {
    throw new UsageError(`${spec.prefix ?? ''}${message}`, spec.hint);
  };
  const options: Record<string, { type: 'boolean' | 'string'; short?: string }> = {};
  for (const [name, o] of Object.entries(spec.options)) options[name] = o.short === undefined ? { type: o.type } : { type: o.type, short: o.short };
  const { tokens } = nodeParseArgs({ args: [...args], options, strict: false, allowPositionals: true, tokens: true });

  const values: Record<string, OptionValue> = {};
  const positionals: string[] = [];
  for (const t of tokens) {
    if (t.kind === 'positional') {
      positionals.push(t.value);
      continue;
    }
    if (t.kind === 'option-terminator') continue;
    // The word as typed: a short group (-nx) or --opt=value, not only its part.
    const word = args[t.index]!;
    if (HELP_WORDS.has(t.rawName)) return { help: true };
    const o = spec.options[t.name];
    if (o === undefined) return fail(`unknown ${spec.unknownWord ?? 'option'} '${word}'`);
    let value: string | boolean;
    if (o.type === 'string') {
      if (t.value === undefined) return fail(`${t.rawName} needs ${o.valueName ?? 'a value'}`);
      value = t.value;
    } else if (t.value !== undefined) {
      if (!o.optionalValue) return fail(`${t.rawName} takes no value`);
      value = t.value;
    } else value = true;
    if (o.multiple) values[t.name] = [...((values[t.name] as string[] | undefined) ?? []), value as string];
    else values[t.name] = value;
  }
  if (spec.maxPositionals !== undefined && positionals.length > spec.maxPositionals) {
    return fail(`${spec.unknownWord === 'argument' ? 'unknown' : 'unexpected'} argument '${positionals[spec.maxPositionals]}'`);
  }
  return { help: false, values, positionals };
}

/**
 * For a `fusegate COMMAND` without positionals: the parsed options, 'help',
 * or, after saying what is wrong on io.err as `fusegate: COMMAND: …` with
 * where to look, the exit status 1.
 */
export function parseCommandLineOr(
  io: { err(s: string): void },
  command: string,
  args: readonly string[],
  options: Record<string, OptionSpec>,
): { values: Record<string, OptionValue> } | 'help' | number {
  try {
    const p = parseCommandLine(args, { options, maxPositionals: 0, unknownWord: 'argument' });
    return p.help ? 'help' : p;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`fusegate: ${command}: ${e.message}\nfusegate: see 'fusegate ${command} --help'\n`);
    return e.exitCode;
  }
}

/** A string option's value, if given. */
export function stringValue(values: Record<string, OptionValue>, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/** A multiple string option's values, in order. */
export function stringValues(values: Record<string, OptionValue>, name: string): string[] {
  const v = values[name];
  return Array.isArray(v) ? v : [];
}
