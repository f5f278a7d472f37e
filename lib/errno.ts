/**
 * errno values by name, for the protocol's FILE replies (both sides) and the
 * native addon's errors. Node's os.constants.errno lacks ENOTBLK, the
 * helper's answer to a BDEV request for a source that is not a block device.
 */
import * as os from 'node:os';

export const ERRNO = { ...os.constants.errno, ENOTBLK: 15 } as const;
