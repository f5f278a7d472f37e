/**
 * The backends table: every FUSE server fusegate knows how to run in its
 * sandbox, the filesystem types each serves, and whether it can write them
 * without risking data.
 *
 * The policy validates backend names against this table and forces read-only
 * where a backend's writes are not safe; the sandbox adapter builds each
 * server's command line from it; the unit generator makes one socket and one
 * template service per entry; `fusegate doctor` checks the binaries exist.
 * One table, so the four can never disagree: everything particular to one
 * server (its arguments, how it gets its fds, what its unit must allow) is a
 * field of its entry, and no other module tests a backend's name. Adding a
 * backend is one entry here plus its tests.
 */
import { socketDir } from './socket-dir';

/** How well a backend writes one filesystem type. */
export type WriteSupport =
  /** writes are safe */
  | 'safe'
  /** the backend writes, but can lose data (e.g. fuse2fs and the ext3/4 journal) */
  | 'unsafe'
  /** the backend or filesystem cannot write at all */
  | 'none';

/** How a server receives /dev/fuse and its device (docs/platform.md §5). */
export type FdDelivery =
  /**
   * libfuse 2 and ntfs-3g: they open /dev/fuse and call mount(2) themselves
   * (libfuse 2 before it ever tries fusermount); the fdmap preload answers
   * the open with the passed fd and the mount with success.
   */
  | 'preload-devfuse'
  /** libfuse 3: mountpoint given as /dev/fd/N of an already mounted /dev/fuse */
  | 'devfd-mountpoint'
  /** speaks libfuse's service-mount protocol itself (fuse_service_*); no adapter */
  | 'native-service'
  /**
   * fusegate's own server: after the handshake the adapter process serves
   * the mount itself (sandbox/in-process.ts): no execve, no libfuse.
   */
  | 'in-process';

export interface BackendFsType {
  /** filesystem type as blkid and mount(8) name it */
  type: string;
  write: WriteSupport;
  /** why writes are not safe, shown by `policy explain` and in refusals */
  writeNote?: string;
  /**
   * What the server can do with a volume the preflight found dirty
   * (docs/preflight.md §4): 'read-only' serve it read-only whatever the
   * checker found; 'marked-only' serve it read-only only when it is just
   * marked dirty and the check found no damage (exfat-fuse refuses a
   * directory entry with a bad checksum even read-only). Absent: refuse it.
   */
  servesDirty?: 'read-only' | 'marked-only';
}

/** What a server's command line is built from. */
export interface ServerArgvContext {
  /** the name the server opens its device by (the preload answers it from the passed fd) */
  source: string;
  /** an empty directory the server may call its mountpoint */
  mountpoint: string;
  readOnly: boolean;
  /** owner the files should show as, where the filesystem has none (FAT, exFAT, NTFS) */
  uid: number;
  gid: number;
}

/**
 * What one server's unit must allow beyond the common hardening, each for a
 * reason the entry states. Absent fields mean the common unit suffices.
 */
export interface UnitQuirks {
  /**
   * The server reads system-wide /proc files at start-up, so its unit has
   * ProcSubset=all instead of pid (other processes stay invisible:
   * ProtectProc=invisible). The text says which files, for the comment the
   * unit carries (`# <name> <why>.`).
   */
  fullProc?: { why: string };
  /** Exit statuses systemd must count as success (SuccessExitStatus=). */
  successExitStatus?: readonly number[];
}

export interface Backend {
  /** the name used in policies, unit names and /run/filesystems/<name> */
  name: string;
  /** Debian package that ships it, for `fusegate doctor` hints */
  debianPackage: string;
  /** the server binary (in-process: the adapter, relative to fusegate's lib dir) */
  binary: string;
  types: BackendFsType[];
  delivery: FdDelivery;
  /**
   * The server's arguments (after argv[0]). Every server runs in the
   * foreground (-f / no_detach), so it stays the service's main process.
   */
  argv?: (c: ServerArgvContext) => string[];
  /** what its unit must allow beyond the common hardening (admin/units.ts) */
  unit?: UnitQuirks;
  /**
   * The server can serve a read-only mount while another mount writes the
   * same storage: it rereads what it shows instead of caching metadata. When
   * false (all today), a read-only mount next to a read-write one of the same
   * storage is refused (helper/one-writer.ts), since the server would show
   * stale or torn data and may crash on it.
   */
  followsChangingDevice?: boolean;
}

const ro = (c: ServerArgvContext) => (c.readOnly ? 'ro,' : '');

const JOURNAL_NOTE = 'fuse2fs in Debian 12 does not write the ext3/ext4 journal ("Writing to the journal is not supported")';

export const BACKENDS: readonly Backend[] = [
  {
    name: 'fuse4fs',
    debianPackage: 'fuse4fs (e2fsprogs >= 1.47.3, not in Debian 12)',
    binary: '/usr/sbin/fuse4fs',
    types: [
      { type: 'ext2', write: 'safe', servesDirty: 'read-only' },
      { type: 'ext3', write: 'safe', servesDirty: 'read-only' },
      { type: 'ext4', write: 'safe', servesDirty: 'read-only' },
    ],
    delivery: 'native-service',
  },
  {
    name: 'fuse2fs',
    debianPackage: 'fuse2fs',
    binary: '/usr/bin/fuse2fs',
    types: [
      { type: 'ext2', write: 'safe', servesDirty: 'read-only' },
      { type: 'ext3', write: 'unsafe', writeNote: JOURNAL_NOTE, servesDirty: 'read-only' },
      { type: 'ext4', write: 'unsafe', writeNote: JOURNAL_NOTE, servesDirty: 'read-only' },
    ],
    delivery: 'preload-devfuse',
    // fuse2fs shows the owners and modes stored in the filesystem.
    argv: (c) => [c.source, c.mountpoint, '-f', ...(c.readOnly ? ['-o', 'ro'] : [])],
  },
  {
    // fusegate's FAT12/16/32 engine in TypeScript (sandbox/vfat/): memory-safe,
    // and the first choice for vfat in the default policy.
    name: 'fusegate-vfat',
    debianPackage: 'fusegate (built in)',
    binary: 'dist/sandbox/adapter-start.js',
    // It checks the volume's structure itself at open and refuses what it cannot serve.
    types: [{ type: 'vfat', write: 'safe', servesDirty: 'read-only' }],
    delivery: 'in-process',
  },
  {
    name: 'fusefat',
    debianPackage: 'fusefat',
    binary: '/usr/bin/fusefat',
    types: [
      { type: 'vfat', write: 'unsafe', writeNote: 'fusefat calls its write support experimental', servesDirty: 'read-only' },
    ],
    delivery: 'preload-devfuse',
    // fusefat writes only with rw+; its umask applies to files and directories alike.
    argv: (c) => ['-f', '-o', `${c.readOnly ? 'ro' : 'rw+'},uid=${c.uid},gid=${c.gid},umask=022`, c.source, c.mountpoint],
    // fusefat exits 255 after every read-only mount ("write() error: Bad file
    // descriptor" at unmount); without this every such instance ends "failed".
    unit: { successExitStatus: [255] },
  },
  {
    name: 'exfat-fuse',
    debianPackage: 'exfat-fuse',
    binary: '/usr/sbin/mount.exfat-fuse',
    // exfat-fuse refuses a volume with a bad entry checksum even read-only: only a merely dirty one is served.
    types: [{ type: 'exfat', write: 'safe', servesDirty: 'marked-only' }],
    delivery: 'preload-devfuse',
    // No -f: the preload keeps it in the foreground (FUSEGATE_FOREGROUND).
    argv: (c) => ['-o', `${ro(c)}uid=${c.uid},gid=${c.gid},dmask=022,fmask=133`, c.source, c.mountpoint],
  },
  {
    name: 'ntfs-3g',
    debianPackage: 'ntfs-3g',
    binary: '/usr/bin/ntfs-3g',
    types: [{ type: 'ntfs', write: 'safe', servesDirty: 'read-only' }],
    // Its integrated FUSE opens /dev/fuse and calls mount(2) itself; the preload answers both.
    delivery: 'preload-devfuse',
    argv: (c) => ['-o', `${ro(c)}no_detach,uid=${c.uid},gid=${c.gid},dmask=022,fmask=133`, c.source, c.mountpoint],
    // Without /proc/filesystems ntfs-3g sleeps at start-up; it also reads /proc/mounts.
    unit: { fullProc: { why: 'reads /proc/filesystems and /proc/mounts' } },
  },
  {
    name: 'squashfuse',
    debianPackage: 'squashfuse',
    binary: '/usr/bin/squashfuse',
    types: [{ type: 'squashfs', write: 'none', writeNote: 'squashfs is a read-only filesystem' }],
    delivery: 'devfd-mountpoint',
    // libfuse 3 takes /dev/fd/N of the already mounted /dev/fuse as its mountpoint.
    argv: (c) => ['-f', c.source, '/dev/fd/3'],
  },
  {
    name: 'fuseiso',
    debianPackage: 'fuseiso',
    binary: '/usr/bin/fuseiso',
    types: [{ type: 'iso9660', write: 'none', writeNote: 'ISO 9660 is a read-only filesystem' }],
    // libfuse 2: it opens /dev/fuse and calls mount(2) itself; the preload
    // answers both, and its realpath() and open() of the image.
    delivery: 'preload-devfuse',
    // -n: no ~/.mtab.fuseiso (there is no home). -c UTF-8: Joliet names are
    // UCS-2 converted to the locale's charset, and the unit has no locale
    // (ASCII would drop every non-ASCII letter). libfuse's -f goes after the
    // image and mountpoint: fuseiso's own getopt stops at the first of them.
    argv: (c) => ['-n', '-c', 'UTF-8', c.source, c.mountpoint, '-f'],
  },
];

export function findBackend(name: string): Backend | undefined {
  return BACKENDS.find((b) => b.name === name);
}

/** The backend a mount's type names (the helper mounts as fuse.<backend> or fuseblk.<backend>), if it is one of ours. */
export function backendOfType(fsType: string, backends: readonly string[] = BACKENDS.map((b) => b.name)): string | null {
  const m = /^(?:fuse|fuseblk)\.(.+)$/.exec(fsType);
  return m !== null && backends.includes(m[1]!) ? m[1]! : null;
}

/** The backends that serve `fsType`, in table order. */
export function backendsForType(fsType: string): Backend[] {
  return BACKENDS.filter((b) => b.types.some((t) => t.type === fsType));
}

/**
 * The socket a backend listens on for one filesystem type. fusegate's own
 * adapters listen under the backend's name; servers that speak libfuse's
 * protocol themselves listen under the type they serve (e2fsprogs' fuse4fs
 * installs ext2, ext3 and ext4 sockets).
 */
export function socketPath(backend: Backend, fsType: string): string {
  return `${socketDir()}/${backend.delivery === 'native-service' ? fsType : backend.name}`;
}
