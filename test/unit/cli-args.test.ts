/**
 * lib/cli-args.ts (every fusegate command) and helper/args.ts helperWords
 * (the mount helpers): the conventions both keep.
 */
import { describe, expect, it } from 'vitest';
import { isHelpWord, parseCommandLine, parseCommandLineOr, stringValues, UsageError, type CommandSpec } from '../../lib/cli-args';
import { MountExit } from '../../lib/errors';
import { helperWords } from '../../helper/args';

const SPEC: CommandSpec = {
  options: {
    root: { type: 'string', valueName: 'a directory' },
    json: { type: 'boolean' },
    'dry-run': { type: 'boolean', short: 'n' },
    'take-over': { type: 'boolean', optionalValue: true },
    opt: { type: 'string', short: 'o', multiple: true },
  },
  maxPositionals: 1,
};

function usage(args: string[], spec: CommandSpec = SPEC): string {
  try {
    parseCommandLine(args, spec);
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    expect((e as UsageError).exitCode).toBe(MountExit.USAGE);
    return (e as Error).message;
  }
  throw new Error(`no usage error for ${args.join(' ')}`);
}

describe('parseCommandLine', () => {
  it('reads long and short options, --opt=value, -oVALUE, groups and positionals', () => {
    const p = parseCommandLine(['--root=/t', '-n', '--json', '-ox', '-o', 'y', 'FILE'], SPEC);
    expect(p).toEqual({ help: false, values: { root: '/t', 'dry-run': true, json: true, opt: ['x', 'y'] }, positionals: ['FILE'] });
    expect(stringValues((p as { values: never }).values, 'opt')).toEqual(['x', 'y']);
    expect(parseCommandLine(['--root', '/r'], SPEC)).toMatchObject({ values: { root: '/r' } });
  });

  it('gives an optional value where the option allows one', () => {
    expect(parseCommandLine(['--take-over'], SPEC)).toMatchObject({ values: { 'take-over': true } });
    expect(parseCommandLine(['--take-over=vfat,exfat'], SPEC)).toMatchObject({ values: { 'take-over': 'vfat,exfat' } });
    expect(usage(['--json=yes'])).toBe('--json takes no value');
  });

  it('lets --help win where it stands: before a later mistake, not after an earlier one', () => {
    expect(parseCommandLine(['--help', '--bogus'], SPEC)).toEqual({ help: true });
    expect(parseCommandLine(['-h'], SPEC)).toEqual({ help: true });
    expect(usage(['--bogus', '--help'])).toBe("unknown option '--bogus'");
  });

  it('names the word as typed in its errors', () => {
    expect(usage(['--bogus=1'])).toBe("unknown option '--bogus=1'");
    expect(usage(['-nx'])).toBe("unknown option '-nx'");
    expect(usage(['--root'])).toBe('--root needs a directory');
    expect(usage(['-o'])).toBe('-o needs a value');
    expect(usage(['a', 'b'])).toBe("unexpected argument 'b'");
    expect(usage(['--bogus'], { ...SPEC, unknownWord: 'argument', prefix: 'check: ' })).toBe("check: unknown argument '--bogus'");
    expect(usage(['a', 'b'], { ...SPEC, unknownWord: 'argument' })).toBe("unknown argument 'b'");
  });

  it('isHelpWord: -h, --help and help', () => {
    expect(['-h', '--help', 'help'].map(isHelpWord)).toEqual([true, true, true]);
    expect([undefined, 'check', '-H'].map(isHelpWord)).toEqual([false, false, false]);
  });

  it('parseCommandLineOr says what is wrong as `fusegate: COMMAND: …` and returns 1', () => {
    let err = '';
    const io = { err: (s: string) => void (err += s) };
    expect(parseCommandLineOr(io, 'status', ['--tree'], { json: { type: 'boolean' } })).toBe(1);
    expect(err).toBe("fusegate: status: unknown argument '--tree'\nfusegate: see 'fusegate status --help'\n");
    expect(parseCommandLineOr(io, 'status', ['--help'], {})).toBe('help');
    expect(parseCommandLineOr(io, 'status', ['--json'], { json: { type: 'boolean' } })).toEqual({ help: false, values: { json: true }, positionals: [] });
  });
});

describe('helperWords (mount(8) helper convention)', () => {
  it('splits flag groups, -o X and -oX, keeps order and positionals anywhere', () => {
    expect(helperWords(['-nv', 'SRC', '-o', 'ro,noexec', 'DIR', '-tvfat', '-'], 'sfnvr', 'otN')).toEqual([
      { kind: 'flag', letter: 'n' },
      { kind: 'flag', letter: 'v' },
      { kind: 'positional', value: 'SRC' },
      { kind: 'value', letter: 'o', value: 'ro,noexec' },
      { kind: 'positional', value: 'DIR' },
      { kind: 'value', letter: 't', value: 'vfat' },
      { kind: 'positional', value: '-' },
    ]);
  });

  it('stops at --help or --version; refuses unknown options and missing values', () => {
    expect(helperWords(['a', '--help', '--bogus'], 'sfnvr', 'otN').at(-1)).toEqual({ kind: 'help' });
    expect(helperWords(['-V'], 'sfnvr', 'otN')).toEqual([{ kind: 'version' }]);
    // umount.fusegate has no --version
    expect(() => helperWords(['-V'], 'flnrv', 'tN', false)).toThrow('unknown option -V');
    expect(() => helperWords(['-nx'], 'sfnvr', 'otN')).toThrow('unknown option -nx');
    expect(() => helperWords(['a', '-o'], 'sfnvr', 'otN')).toThrow('option -o needs a value');
    expect(() => helperWords(['--o'], 'sfnvr', 'otN')).toThrow('unknown option --o');
  });
});
