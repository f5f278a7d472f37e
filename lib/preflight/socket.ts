/**
 * Where the preflight checker listens (fusegate-check.socket). Not under
 * /run/filesystems: libfuse's helper and tools read that directory as
 * "one socket per filesystem type or server", and a checker is neither.
 * FUSEGATE_CHECK_SOCKET overrides it for the helper (honoured only because
 * its caller is root) and for tests.
 */
export const BUILT_CHECK_SOCKET = '/run/fusegate/check';

export function checkSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.FUSEGATE_CHECK_SOCKET ?? BUILT_CHECK_SOCKET;
}
