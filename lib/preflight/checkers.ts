/**
 * The preflight's checkers: for each filesystem type, the programs the
 * sandboxed checker (sandbox/check.ts) runs before a read-write mount, and
 * what each of their exit statuses and words mean. One table, like the
 * backends table, so the checker, the helper's hints and the docs cannot
 * disagree (docs/preflight.md; the exit codes were verified on real images,
 * docs/platform.md §8).
 *
 * A check never writes (`-n`); a repair runs the checker's own automatic
 * ("preen") mode, then the check again, so "repaired" always means a check
 * that found the volume clean afterwards. Like boot-time fsck, a volume
 * marked clean is not walked in full unless `force` (only e2fsck has the
 * distinction; the others always walk everything).
 */

/** What one run of a checker program says about the volume, worst last. */
export type StepOutcome =
  /** nothing to report */
  | 'clean'
  /** a repair changed the volume and says it is now consistent */
  | 'corrected'
  /** the volume is marked dirty / needs recovery, but no damage was found (or could be looked for without writing) */
  | 'marked'
  /** the checker found inconsistencies it did not (or could not) fix */
  | 'damaged'
  /** the checker could not do its job: operational error, crash, deadline, not this filesystem */
  | 'failed';

export const OUTCOME_ORDER: readonly StepOutcome[] = ['clean', 'corrected', 'marked', 'damaged', 'failed'];

export function worse(a: StepOutcome, b: StepOutcome): StepOutcome {
  return OUTCOME_ORDER.indexOf(a) >= OUTCOME_ORDER.indexOf(b) ? a : b;
}

export type PreflightMode = 'check' | 'repair';

export interface StepArgs {
  /** the name the program opens the device by (the fdmap preload answers it from the passed fd) */
  device: string;
  force: boolean;
}

export interface CheckerStep {
  /** absolute path of the program (Debian's own) */
  program: string;
  argv: (a: StepArgs) => string[];
  /** exit status → outcome; a status not listed, or a signal, is 'failed' */
  exits: Readonly<Record<number, StepOutcome>>;
  /**
   * words in the program's output that mean the volume is marked dirty
   * although the exit status says clean (e2fsck -n exits 0 on a volume that
   * needs journal recovery; ntfsinfo refuses a volume scheduled for check)
   */
  marked?: readonly RegExp[];
}

/**
 * A flag in the volume's own header that marks it dirty and that no
 * checker reports (fsck.exfat 1.2.0 ignores exFAT's VolumeDirty): read by
 * the sandboxed checker from the device fd, after the signature matched.
 */
export interface DirtyFlag {
  signature: { offset: number; bytes: string };
  /** little-endian u16 at offset */
  offset: number;
  mask: number;
  what: string;
}

export interface Checker {
  type: string;
  /** the checker's command as an administrator would run it to repair, for hints */
  repairCommand: string;
  check: readonly CheckerStep[];
  repair: readonly CheckerStep[];
  dirtyFlag?: DirtyFlag;
}

/** e2fsck(8) EXIT CODE: 0 none, 1 corrected, 2 corrected + reboot, 4 left uncorrected, 8 operational, 16 usage, 32 cancelled, 128 library. */
const E2FSCK_EXITS: Record<number, StepOutcome> = { 0: 'clean', 1: 'corrected', 2: 'corrected', 4: 'damaged', 8: 'failed', 12: 'failed', 16: 'failed', 32: 'failed', 128: 'failed' };
/** fsck.exfat uses e2fsck's codes (exfatprogs fsck.h FSCK_EXIT_*). */
const EXFAT_EXITS = E2FSCK_EXITS;

const EXT_CHECK: CheckerStep = {
  program: '/usr/sbin/e2fsck',
  argv: (a) => [a.force ? '-fn' : '-n', a.device],
  exits: E2FSCK_EXITS,
  // e2fsck -n exits 0 for all three: it checks (or skips) without being able to clear the state.
  marked: [/was not cleanly unmounted/, /contains a file system with errors/, /skipping journal recovery/],
};

const EXT: Omit<Checker, 'type'> = {
  repairCommand: 'e2fsck -p',
  check: [EXT_CHECK],
  repair: [{ program: '/usr/sbin/e2fsck', argv: (a) => [a.force ? '-fp' : '-p', a.device], exits: E2FSCK_EXITS }],
};

export const CHECKERS: readonly Checker[] = [
  { type: 'ext2', ...EXT },
  { type: 'ext3', ...EXT },
  { type: 'ext4', ...EXT },
  {
    type: 'vfat',
    repairCommand: 'fsck.fat -a',
    // dosfstools 4.2: 0 clean, 1 something found (also the dirty bit alone), 2 usage or I/O error.
    // The dirty bit alone exits 1 too; its words are what mount(8)'s line quotes.
    check: [{ program: '/usr/sbin/fsck.fat', argv: (a) => ['-n', a.device], exits: { 0: 'clean', 1: 'damaged', 2: 'failed' }, marked: [/Dirty bit is set/] }],
    repair: [{ program: '/usr/sbin/fsck.fat', argv: (a) => ['-a', a.device], exits: { 0: 'clean', 1: 'corrected', 2: 'failed' } }],
  },
  {
    type: 'exfat',
    repairCommand: 'fsck.exfat -p',
    check: [{ program: '/usr/sbin/fsck.exfat', argv: (a) => ['-n', a.device], exits: EXFAT_EXITS }],
    repair: [{ program: '/usr/sbin/fsck.exfat', argv: (a) => ['-p', a.device], exits: EXFAT_EXITS }],
    // Main boot sector: FileSystemName "EXFAT   " at 3, VolumeFlags at 106, bit 1 VolumeDirty.
    dirtyFlag: { signature: { offset: 3, bytes: 'EXFAT   ' }, offset: 106, mask: 0x0002, what: 'the exFAT VolumeDirty flag is set' },
  },
  {
    type: 'ntfs',
    repairCommand: 'ntfsfix -d',
    check: [
      // $MFT against $MFTMirr, the backup boot sector; exits 0 or 1, whatever -n found.
      { program: '/usr/bin/ntfsfix', argv: (a) => ['-n', a.device], exits: { 0: 'clean', 1: 'damaged' } },
      // ntfsfix -n does not look at the volume's dirty flag; ntfsinfo refuses a volume that has it.
      { program: '/usr/bin/ntfsinfo', argv: (a) => ['-m', a.device], exits: { 0: 'clean', 1: 'failed' }, marked: [/Volume is scheduled for check/] },
    ],
    // -d clears the dirty flag (plain ntfsfix sets it, to have Windows run chkdsk).
    repair: [{ program: '/usr/bin/ntfsfix', argv: (a) => ['-d', a.device], exits: { 0: 'corrected', 1: 'failed' } }],
  },
];

export function findChecker(type: string | null): Checker | undefined {
  return type === null ? undefined : CHECKERS.find((c) => c.type === type);
}

/**
 * What one step's run means: its exit status, then its words. Words mark
 * a volume only when the status said clean: a worse status stands.
 */
export function stepOutcome(step: CheckerStep, exit: { code: number | null; signal: string | null }, output: string): StepOutcome {
  if (exit.code === null) return 'failed';
  const byExit = step.exits[exit.code] ?? 'failed';
  if (step.marked?.some((re) => re.test(output))) {
    // ntfsinfo exits 1 on a dirty volume: its words say why, so it is marked, not failed.
    return byExit === 'clean' || byExit === 'failed' ? 'marked' : byExit;
  }
  return byExit;
}

/** Whether `flag` is set in a header read from the device (false when the signature does not match). */
export function dirtyFlagSet(flag: DirtyFlag, header: Buffer): boolean {
  const sig = Buffer.from(flag.signature.bytes, 'latin1');
  if (header.length < Math.max(flag.signature.offset + sig.length, flag.offset + 2)) return false;
  if (!header.subarray(flag.signature.offset, flag.signature.offset + sig.length).equals(sig)) return false;
  return (header.readUInt16LE(flag.offset) & flag.mask) !== 0;
}

/** Bytes of the volume's header the checker reads for a dirty flag. */
export const HEADER_BYTES = 512;
