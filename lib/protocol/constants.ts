/**
 * Numbers of libfuse's service-mount protocol, version 1 (docs/protocol.md §2).
 * Each magic is four ASCII bytes read as a big-endian u32, so a hex dump of a
 * message starts with its name.
 */

export const PROTOCOL_VERSION = 1;

/** Largest message either side may send, in bytes. */
export const MAX_MESSAGE_SIZE = 65536;

export const MAGIC = {
  /** helper → server: hello */
  SAFT: 0x53414654,
  /** server → helper: hello reply */
  LAST: 0x4c415354,
  /** helper → server: a file (and its fd), or why it could not be opened */
  FILE: 0x46494c45,
  /** server → helper: open a regular file */
  OPEN: 0x4f50454e,
  /** server → helper: open a block device */
  BDEV: 0x42444556,
  /** server → helper: filesystem type flags */
  TYPE: 0x54595045,
  /** server → helper: mount source name */
  NAME: 0x4e414d45,
  /** server → helper: mountpoint */
  MNTP: 0x4d4e5450,
  /** server → helper: mount options */
  OPTS: 0x4f505453,
  /** server → helper: options for utab */
  MTAB: 0x4d544142,
  /** server → helper: mount now */
  DOIT: 0x444f4954,
  /** helper → server: reply to TYPE/NAME/MNTP/OPTS/MTAB/DOIT */
  REPL: 0x5245504c,
  /** server → helper: goodbye, with the exit code for the helper */
  BYEE: 0x42594545,
  /** first word of the argv memfd */
  ARGS: 0x41524753,
} as const;

export type MagicName = Exclude<keyof typeof MAGIC, 'ARGS'>;

/** SAFT flags */
export const HELLO_FLAGS = {
  ALLOW_OTHER: 1,
  FUSEBLK: 2,
} as const;
export const HELLO_FLAGS_ALL = HELLO_FLAGS.ALLOW_OTHER | HELLO_FLAGS.FUSEBLK;

/** OPEN/BDEV request_flags */
export const REQUEST_FLAGS = {
  /** do not log a failure to open: the server is only probing */
  QUIET: 1,
} as const;
export const REQUEST_FLAGS_ALL = REQUEST_FLAGS.QUIET;

/** TYPE fsopen_flags */
export const FSOPEN_FLAGS = {
  FUSEBLK: 1,
} as const;
export const FSOPEN_FLAGS_ALL = FSOPEN_FLAGS.FUSEBLK;

/** MNTP expected_fmt values: the mountpoint must be a directory, a regular file, or either. */
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const MNTP_FORMATS: readonly number[] = [0, S_IFDIR, S_IFREG];

/** The well-known FILE paths the helper sends before any OPEN/BDEV. */
export const FILE_ARGV = 'argv';
export const FILE_FUSEDEV = 'fusedev';
