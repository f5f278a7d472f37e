/**
 * Where backend sockets live: `<dir>/<backend>` (fusegate's adapters) or
 * `<dir>/<type>` (servers that speak libfuse's service-mount protocol
 * themselves, e.g. e2fsprogs' fuse4fs), so that fusegate's helper and
 * libfuse's find the same services.
 *
 * The directory is decided when fusegate is built, never on the mount path:
 * scripts/bundle.js asks `pkg-config --variable=service_socket_dir fuse3`
 * and, where the installed fuse3.pc has that variable (libfuse builds newer
 * than Debian 12's 3.14 do), writes its value over BUILT_SOCKET_DIR below in
 * the compiled output and the bundles. Otherwise it stays libfuse's default.
 * The units `fusegate install` writes listen there too (admin/units.ts).
 */

/** Replaced at build time (scripts/bundle.js); keep it a single-quoted literal on one line. */
export const BUILT_SOCKET_DIR = '/run/filesystems';

/** The socket directory; FUSEGATE_SOCKET_DIR overrides it for the helper (honoured only because its caller is root) and for tests. */
export function socketDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.FUSEGATE_SOCKET_DIR ?? BUILT_SOCKET_DIR;
}
