import { FusegateError, MountExit } from '../errors';

/**
 * Rules of the protocol a message can break. Each names one check, so a test
 * (or an administrator reading the journal) can tell exactly which rule a
 * peer broke.
 */
export type ProtocolRule =
  | 'oversize'
  | 'truncated'
  | 'trailing-bytes'
  | 'unknown-magic'
  | 'wrong-direction'
  | 'missing-nul'
  | 'embedded-nul'
  | 'bad-encoding'
  | 'nonzero-padding'
  | 'unknown-flags'
  | 'bad-format'
  | 'bad-version'
  | 'unexpected-fd'
  | 'missing-fd'
  | 'too-many-fds'
  | 'out-of-order'
  | 'duplicate'
  | 'bad-argv'
  | 'peer-closed'
  | 'timeout';

/** A message that breaks the protocol. The connection is unusable after it. */
export class ProtocolError extends FusegateError {
  constructor(
    readonly rule: ProtocolRule,
    detail: string,
  ) {
    super(`protocol violation (${rule}): ${detail}`, {
      hint: 'the FUSE service broke the service-mount protocol; check its journal (journalctl -u "<backend>@*")',
      exitCode: MountExit.FAILURE,
    });
  }
}
