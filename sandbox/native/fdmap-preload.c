/*
 * fdmap-preload: LD_PRELOAD library that lets an unmodified FUSE server use
 * descriptors it inherited instead of opening device nodes by name.
 *
 * Why: in a fusegate sandbox the server runs as an unprivileged user, in a
 * mount namespace without device nodes, with no capabilities.  The helper
 * (root, outside) opens the source (block device or image) and /dev/fuse and
 * the server inherits them.  The servers, however, insist on opening a path
 * ("fuse2fs /dev/sdb1 DIR"), and reopening /proc/self/fd/N is a fresh open
 * that the sandbox forbids.  So this library answers calls naming exactly one
 * path, FUSEGATE_SOURCE_PATH, from the inherited fd FUSEGATE_SOURCE_FD:
 *
 *   open/open64/openat/openat64 (+ the _FORTIFY_SOURCE __open*_2 variants),
 *   fopen/fopen64              -> a dup() of the fd (flags checked, below)
 *   stat/lstat/fstatat/statx (+ 64-bit and pre-2.33 __xstat variants)
 *                              -> fstat() of the fd
 *   access/faccessat/euidaccess -> checked against the fd's access mode
 *   realpath/canonicalize_file_name -> the path itself (it need not exist)
 *
 * Optionally (FUSEGATE_FUSE_FD set, and FUSEGATE_MAP_DEV_FUSE=1), the same is
 * done for "/dev/fuse", and mount(2) of a fuse/fuseblk filesystem whose
 * "fd=N" option names a descriptor we handed out succeeds without doing
 * anything: the helper already mounted that very connection.  ntfs-3g needs
 * this (its integrated FUSE opens /dev/fuse and calls mount(2) itself; it
 * has no fusermount fallback).  libfuse 2 servers need it too unless they
 * take "-o auto_unmount": libfuse 2.9.9's fuse_mount_sys() opens /dev/fuse
 * before it ever considers fusermount, and ENOENT/EPERM there is fatal.
 * With the mapping, libfuse 2 never runs fusermount at mount time at all.

 * Optionally (FUSEGATE_FOREGROUND=1), fuse_daemonize() (libfuse 2 and 3,
 * called through the PLT from fuse_main()) is forced to stay in the
 * foreground: exfat-fuse has no -f switch, and a daemonizing server would
 * both fork away from the service's main process and point its stderr at
 * /dev/null, losing its messages.
 *
 * Every other call passes through untouched (dlsym(RTLD_NEXT)).  Nothing here
 * grants anything the process does not already hold: it only hands out
 * copies of descriptors the process already has.
 *
 * Flag policy for the source: a write open (O_WRONLY/O_RDWR) of a read-only
 * fd fails with EROFS (exfat-fuse and ntfs-3g then fall back to read-only;
 * fuse2fs and fusefat refuse to start); a read open of a write-only fd fails
 * with EACCES; O_CREAT|O_EXCL -> EEXIST, O_TRUNC -> EPERM, O_DIRECTORY ->
 * ENOTDIR.  O_CLOEXEC is honoured.  A read-only open of a read-write fd
 * returns a read-write dup: a descriptor cannot be downgraded, so the
 * helper's open mode is what really decides (open O_RDONLY for ro mounts).
 * O_EXCL (block-device claim; fuse2fs asks for it), O_DIRECT, O_SYNC,
 * O_NONBLOCK are ignored: they belong to the open file description, which
 * the helper created (it should use O_EXCL itself for a plain "fuse" mount;
 * for "fuseblk" the kernel holds the claim and an O_EXCL open by the helper
 * would make the mount fail with EBUSY).  A dup shares the file offset with
 * the original; the servers use pread/pwrite, or lseek+read under their own
 * lock (fusefat), and the helper does not touch its copy afterwards.
 *
 * This is a compatibility shim, not a security boundary: it runs inside the
 * untrusted server, which holds the very same fds anyway.  The boundary is
 * the sandbox (uid, no capabilities, no device nodes, NoNewPrivileges).

 * Environment (read once, at load time):
 *   FUSEGATE_SOURCE_PATH  absolute path the server is given as its device
 *   FUSEGATE_SOURCE_FD    inherited fd (> 2) of a block device or regular file
 *   FUSEGATE_FUSE_FD      inherited fd (> 2) of /dev/fuse, already mounted
 *   FUSEGATE_MAP_DEV_FUSE "1" to map open("/dev/fuse") and no-op mount(2)
 *   FUSEGATE_FOREGROUND   "1" to keep libfuse's fuse_daemonize() in front
 *   FUSEGATE_FDMAP_DEBUG  "1" to log every mapped call on stderr
 * A malformed variable disables that mapping (and says so on stderr); it
 * never makes the library map anything else.
 */
#define _GNU_SOURCE
/* We define open() and open64(), stat() and stat64(), realpath() etc.
 * ourselves, so the headers must neither redirect open to open64
 * (_FILE_OFFSET_BITS=64, which node-gyp's common.gypi sets) nor wrap them
 * in fortify inlines.  On x86-64 both names have the same ABI anyway. */
#undef _FILE_OFFSET_BITS
#undef _TIME_BITS
#undef _FORTIFY_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
#define DEV_FUSE "/dev/fuse"

static char *src_path;           /* NULL: no source mapping */
static int src_fd = -1;
static int fuse_fd = -1;         /* -1: no /dev/fuse mapping */
static int foreground;           /* force fuse_daemonize(1) */
static int debug;                /* log mapped calls */

/* fds we returned for "/dev/fuse" (a server opens it once, at start-up, on
 * its main thread; keep a few, no locking needed) */
#define MAX_FUSE_DUPS 8
static int fuse_dups[MAX_FUSE_DUPS];
static int n_fuse_dups;

static void warn(const char *what)
{
    /* stderr may be a journal stream; one line, no stdio buffering games */
    dprintf(2, "fdmap-preload: %s\n", what);
}

#define LOG(...) do { if (debug) { int e_ = errno; \
        dprintf(2, "fdmap-preload: " __VA_ARGS__); errno = e_; } } while (0)

static int parse_fd(const char *s)
{
    char *end;
    long v;

    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v <= 2 || v > INT_MAX)
        return -1;
    return (int)v;
}

__attribute__((constructor)) static void fdmap_init(void)
{
    int saved = errno;
    const char *p = getenv("FUSEGATE_SOURCE_PATH");
    const char *f = getenv("FUSEGATE_SOURCE_FD");
    struct stat st;

    if (p != NULL || f != NULL) {
        int fd = parse_fd(f);
        if (p == NULL || p[0] != '/' || fd < 0)
            warn("FUSEGATE_SOURCE_PATH/FUSEGATE_SOURCE_FD invalid; source not mapped");
        else if (fstat(fd, &st) != 0 || !(S_ISBLK(st.st_mode) || S_ISREG(st.st_mode)))
            warn("FUSEGATE_SOURCE_FD is not an open block device or file; source not mapped");
        else if ((src_path = strdup(p)) != NULL)
            src_fd = fd;
    }

    p = getenv("FUSEGATE_MAP_DEV_FUSE");
    if (p != NULL && strcmp(p, "1") == 0) {
        int fd = parse_fd(getenv("FUSEGATE_FUSE_FD"));
        if (fd < 0 || fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode) ||
            major(st.st_rdev) != 10 || minor(st.st_rdev) != 229)
            warn("FUSEGATE_FUSE_FD is not an open /dev/fuse; /dev/fuse not mapped");
        else
            fuse_fd = fd;
    }

    p = getenv("FUSEGATE_FOREGROUND");
    foreground = p != NULL && strcmp(p, "1") == 0;
    p = getenv("FUSEGATE_FDMAP_DEBUG");
    debug = p != NULL && strcmp(p, "1") == 0;
    errno = saved;
}

static void *next(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (f == NULL) {
        warn("dlsym(RTLD_NEXT) failed");
        abort();
    }
    return f;
}
/* Resolve the next definition lazily; a race between threads only stores
 * the same pointer twice. */
#define REAL(name) \
    static __typeof__(name) *real_##name; \
    if (real_##name == NULL) real_##name = next(#name)

/* Exact string compare with the one configured absolute path: no
 * normalisation, so "/dev//sdb1" or a relative name is simply not mapped
 * (and then fails like any other device path in the sandbox). */
static int is_src_(const char *path, const char *fn)
{
    if (src_path == NULL || path == NULL || strcmp(path, src_path) != 0)
        return 0;
    if (fn != NULL)
        LOG("%s(%s) answered from fd %d\n", fn, path, src_fd);
    return 1;
}
#define is_src(path) is_src_(path, __func__)

static int is_fuse(const char *path)
{
    return fuse_fd >= 0 && path != NULL && strcmp(path, DEV_FUSE) == 0;
}

/* Which inherited fd, if any, does this path name?  Only absolute paths
 * match, so the dirfd of openat() never matters. */
static int mapped_fd(int dirfd, const char *path)
{
    (void)dirfd;
    if (is_src_(path, NULL))     /* open_mapped() logs */
        return src_fd;
    if (is_fuse(path))
        return fuse_fd;
    return -1;
}

static int fd_accmode(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : (fl & O_ACCMODE);
}

/* Check an access request (O_RDONLY/O_WRONLY/O_RDWR) against the fd. */
static int acc_ok(int fd, int want)
{
    int have = fd_accmode(fd);

    if (have < 0)
        return -1;               /* errno from fcntl (EBADF) */
    if ((want == O_WRONLY || want == O_RDWR) && have == O_RDONLY) {
        errno = EROFS;
        return -1;
    }
    if ((want == O_RDONLY || want == O_RDWR) && have == O_WRONLY) {
        errno = EACCES;
        return -1;
    }
    return 0;
}

static int open_mapped(int fd, int flags)
{
    int nfd;

    if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) {
        errno = EEXIST;
        return -1;
    }
    if (flags & O_TRUNC) {
        errno = EPERM;
        return -1;
    }
    if (flags & O_DIRECTORY) {
        errno = ENOTDIR;
        return -1;
    }
    if (!(flags & O_PATH) && acc_ok(fd, flags & O_ACCMODE) != 0) {
        LOG("open(%s, 0%o) refused: %s\n", fd == src_fd ? src_path : DEV_FUSE,
            (unsigned)flags, strerror(errno));
        return -1;
    }
    nfd = fcntl(fd, (flags & O_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD, 3);
    if (nfd >= 0 && fd == fuse_fd) {
        if (n_fuse_dups < MAX_FUSE_DUPS)
            fuse_dups[n_fuse_dups++] = nfd;
    }
    LOG("open(%s, 0%o) -> dup of fd %d = %d\n",
        fd == src_fd ? src_path : DEV_FUSE, (unsigned)flags, fd, nfd);
    return nfd;
}

/* ---- open family ---- */

#define MODE_ARG(flags, mode) \
    mode_t mode = 0; \
    if ((flags) & (O_CREAT | O_TMPFILE)) { \
        va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); \
    }

EXPORT int open(const char *path, int flags, ...)
{
    MODE_ARG(flags, mode);
    int fd = mapped_fd(AT_FDCWD, path);
    if (fd >= 0)
        return open_mapped(fd, flags);
    REAL(open);
    return real_open(path, flags, mode);
}

EXPORT int open64(const char *path, int flags, ...)
{
    MODE_ARG(flags, mode);
    int fd = mapped_fd(AT_FDCWD, path);
    if (fd >= 0)
        return open_mapped(fd, flags);
    REAL(open64);
    return real_open64(path, flags, mode);
}

EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
    MODE_ARG(flags, mode);
    int fd = mapped_fd(dirfd, path);
    if (fd >= 0)
        return open_mapped(fd, flags);
    REAL(openat);
    return real_openat(dirfd, path, flags, mode);
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
    MODE_ARG(flags, mode);
    int fd = mapped_fd(dirfd, path);
    if (fd >= 0)
        return open_mapped(fd, flags);
    REAL(openat64);
    return real_openat64(dirfd, path, flags, mode);
}

/* _FORTIFY_SOURCE builds call these when flags are not a constant */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

EXPORT int __open_2(const char *path, int flags)
{
    int fd = mapped_fd(AT_FDCWD, path);
    if (fd >= 0)
        return open_mapped(fd, flags);
    REAL(__open_2);
    return real___open_2(path, flags);
}

EXPORT int __open64_2(const char *path, int flags)
{
    int fd = mapped_fd(AT_FDCWD, path);
    if (fd >= 0)
        return open_mapped(fd, flags);
    REAL(__open64_2);
    return real___open64_2(path, flags);
}

EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
    int fd = mapped_fd(dirfd, path);
    if (fd >= 0)
        return open_mapped(fd, flags);
    REAL(__openat_2);
    return real___openat_2(dirfd, path, flags);
}

EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
    int fd = mapped_fd(dirfd, path);
    if (fd >= 0)
        return open_mapped(fd, flags);
    REAL(__openat64_2);
    return real___openat64_2(dirfd, path, flags);
}

/* fopen() uses glibc-internal open, so it must be wrapped separately. */
static FILE *fopen_mapped(int fd, const char *mode)
{
    int flags = O_RDONLY;
    int nfd;
    FILE *fp;

    if (mode[0] == 'w' || mode[0] == 'a') {
        errno = EPERM;           /* would truncate/append a device: never */
        return NULL;
    }
    if (strchr(mode, '+'))
        flags = O_RDWR;
    if (strchr(mode, 'e'))
        flags |= O_CLOEXEC;
    nfd = open_mapped(fd, flags);
    if (nfd < 0)
        return NULL;
    fp = fdopen(nfd, mode);
    if (fp == NULL) {
        int e = errno;
        close(nfd);
        errno = e;
    }
    return fp;
}

EXPORT FILE *fopen(const char *path, const char *mode)
{
    if (is_src(path))
        return fopen_mapped(src_fd, mode);
    REAL(fopen);
    return real_fopen(path, mode);
}

EXPORT FILE *fopen64(const char *path, const char *mode)
{
    if (is_src(path))
        return fopen_mapped(src_fd, mode);
    REAL(fopen64);
    return real_fopen64(path, mode);
}

/* ---- stat family (x86-64: struct stat == struct stat64) ---- */

EXPORT int stat(const char *path, struct stat *st)
{
    if (is_src(path))
        return fstat(src_fd, st);
    REAL(stat);
    return real_stat(path, st);
}

EXPORT int stat64(const char *path, struct stat64 *st)
{
    if (is_src(path))
        return fstat64(src_fd, st);
    REAL(stat64);
    return real_stat64(path, st);
}

EXPORT int lstat(const char *path, struct stat *st)
{
    if (is_src(path))
        return fstat(src_fd, st);
    REAL(lstat);
    return real_lstat(path, st);
}

EXPORT int lstat64(const char *path, struct stat64 *st)
{
    if (is_src(path))
        return fstat64(src_fd, st);
    REAL(lstat64);
    return real_lstat64(path, st);
}

EXPORT int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
    if (is_src(path))
        return fstat(src_fd, st);
    REAL(fstatat);
    return real_fstatat(dirfd, path, st, flags);
}

EXPORT int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
{
    if (is_src(path))
        return fstat64(src_fd, st);
    REAL(fstatat64);
    return real_fstatat64(dirfd, path, st, flags);
}

EXPORT int statx(int dirfd, const char *path, int flags, unsigned int mask,
                 struct statx *stx)
{
    REAL(statx);
    if (is_src(path))
        return real_statx(src_fd, "", AT_EMPTY_PATH, mask, stx);
    return real_statx(dirfd, path, flags, mask, stx);
}

/* Binaries built against glibc < 2.33 call these instead of stat(). */
int __xstat(int ver, const char *path, struct stat *st);
int __lxstat(int ver, const char *path, struct stat *st);
int __xstat64(int ver, const char *path, struct stat64 *st);
int __lxstat64(int ver, const char *path, struct stat64 *st);

EXPORT int __xstat(int ver, const char *path, struct stat *st)
{
    if (is_src(path))
        return fstat(src_fd, st);
    REAL(__xstat);
    return real___xstat(ver, path, st);
}

EXPORT int __lxstat(int ver, const char *path, struct stat *st)
{
    if (is_src(path))
        return fstat(src_fd, st);
    REAL(__lxstat);
    return real___lxstat(ver, path, st);
}

EXPORT int __xstat64(int ver, const char *path, struct stat64 *st)
{
    if (is_src(path))
        return fstat64(src_fd, st);
    REAL(__xstat64);
    return real___xstat64(ver, path, st);
}

EXPORT int __lxstat64(int ver, const char *path, struct stat64 *st)
{
    if (is_src(path))
        return fstat64(src_fd, st);
    REAL(__lxstat64);
    return real___lxstat64(ver, path, st);
}

/* ---- access family ---- */

static int access_mapped(int fd, int mode)
{
    if (mode & X_OK) {
        errno = EACCES;
        return -1;
    }
    if ((mode & W_OK) && (mode & R_OK))
        return acc_ok(fd, O_RDWR);
    if (mode & W_OK)
        return acc_ok(fd, O_WRONLY);
    if (mode & R_OK)
        return acc_ok(fd, O_RDONLY);
    return 0;                    /* F_OK */
}

EXPORT int access(const char *path, int mode)
{
    if (is_src(path))
        return access_mapped(src_fd, mode);
    REAL(access);
    return real_access(path, mode);
}

EXPORT int faccessat(int dirfd, const char *path, int mode, int flags)
{
    if (is_src(path))
        return access_mapped(src_fd, mode);
    REAL(faccessat);
    return real_faccessat(dirfd, path, mode, flags);
}

EXPORT int euidaccess(const char *path, int mode)
{
    if (is_src(path))
        return access_mapped(src_fd, mode);
    REAL(euidaccess);
    return real_euidaccess(path, mode);
}

/* ---- realpath: the source path need not exist in the sandbox ---- */

EXPORT char *realpath(const char *path, char *resolved)
{
    if (is_src(path)) {
        if (resolved == NULL)
            return strdup(src_path);
        if (strlen(src_path) >= PATH_MAX) {
            errno = ENAMETOOLONG;
            return NULL;
        }
        return strcpy(resolved, src_path);
    }
    REAL(realpath);
    return real_realpath(path, resolved);
}

char *__realpath_chk(const char *path, char *resolved, size_t resolvedlen);
EXPORT char *__realpath_chk(const char *path, char *resolved, size_t resolvedlen)
{
    if (is_src(path)) {
        if (resolved == NULL)
            return strdup(src_path);
        if (strlen(src_path) >= resolvedlen || strlen(src_path) >= PATH_MAX) {
            errno = ENAMETOOLONG;
            return NULL;
        }
        return strcpy(resolved, src_path);
    }
    REAL(__realpath_chk);
    return real___realpath_chk(path, resolved, resolvedlen);
}

EXPORT char *canonicalize_file_name(const char *path)
{
    if (is_src(path))
        return strdup(src_path);
    REAL(canonicalize_file_name);
    return real_canonicalize_file_name(path);
}

/* ---- mount(2): the helper already mounted our /dev/fuse connection ---- */

/* Does a fuse option string contain fd=N with N one of our /dev/fuse dups? */
static int names_our_fuse_fd(const char *data)
{
    const char *p = data;

    while (p != NULL && *p) {
        if (strncmp(p, "fd=", 3) == 0) {
            char buf[16];
            size_t len = strcspn(p + 3, ",");
            int fd, i;

            if (len == 0 || len >= sizeof(buf))
                return 0;
            memcpy(buf, p + 3, len);
            buf[len] = '\0';
            fd = parse_fd(buf);
            if (fd < 0)
                return 0;
            for (i = 0; i < n_fuse_dups; i++)
                if (fuse_dups[i] == fd)
                    return 1;
            return fd == fuse_fd;
        }
        p = strchr(p, ',');
        if (p)
            p++;
    }
    return 0;
}

static int is_fuse_type(const char *type)
{
    return type != NULL &&
           (strcmp(type, "fuse") == 0 || strncmp(type, "fuse.", 5) == 0 ||
            strcmp(type, "fuseblk") == 0 || strncmp(type, "fuseblk.", 8) == 0);
}

EXPORT int mount(const char *source, const char *target, const char *type,
                 unsigned long flags, const void *data)
{
    if (fuse_fd >= 0 && !(flags & (MS_REMOUNT | MS_BIND | MS_MOVE)) &&
        is_fuse_type(type) && data != NULL && names_our_fuse_fd(data)) {
        LOG("mount(%s, %s, %s, 0x%lx, %s): already mounted by the helper\n",
            source ? source : "", target ? target : "", type, flags, (const char *)data);
        return 0;
    }
    REAL(mount);
    return real_mount(source, target, type, flags, data);
}

/* ---- libfuse: never daemonize (see header) ---- */

int fuse_daemonize(int fg);
EXPORT int fuse_daemonize(int fg)
{
    /* Only reached from processes linking libfuse, so RTLD_NEXT finds it. */
    REAL(fuse_daemonize);
    return real_fuse_daemonize(foreground ? 1 : fg);
}

/* ---- the service's own user: a name for the dynamic uid ---- */

/*
 * A DynamicUser's name is resolved by nss-systemd over a local socket that
 * the unit does not allow (RestrictAddressFamilies=none), so getpwuid() of
 * the server's own uid finds nothing, and exfat-fuse ("failed to determine
 * username") and ntfs-3g refuse to start. When, and only when, the real
 * lookup fails for the process's own uid, answer with a fixed entry.
 */
static struct passwd *own_entry(uid_t uid, struct passwd *pw)
{
    static char name[] = "fusegate-server", dir[] = "/", shell[] = "/usr/sbin/nologin", empty[] = "";
    pw->pw_name = name;
    pw->pw_passwd = empty;
    pw->pw_uid = uid;
    pw->pw_gid = getgid();
    pw->pw_gecos = empty;
    pw->pw_dir = dir;
    pw->pw_shell = shell;
    return pw;
}

EXPORT struct passwd *getpwuid(uid_t uid)
{
    static struct passwd own;
    REAL(getpwuid);
    int saved = errno;
    struct passwd *pw = real_getpwuid(uid);
    if (pw != NULL || uid != getuid())
        return pw;
    errno = saved;
    LOG("getpwuid(%u) answered with the service's own user\n", (unsigned)uid);
    return own_entry(uid, &own);
}

EXPORT int getpwuid_r(uid_t uid, struct passwd *pwd, char *buf, size_t buflen, struct passwd **result)
{
    REAL(getpwuid_r);
    int r = real_getpwuid_r(uid, pwd, buf, buflen, result);
    if (r != 0 || *result != NULL || uid != getuid())
        return r;
    LOG("getpwuid_r(%u) answered with the service's own user\n", (unsigned)uid);
    /* The strings are static, so the caller's buffer is not needed. */
    *result = own_entry(uid, pwd);
    return 0;
}

/* ---- uid juggling that changes nothing ---- */

/*
 * ntfs-3g drops and restores privileges with setresuid()/setresgid(), a
 * habit of its setuid-root past. In the sandbox (no capabilities,
 * NoNewPrivileges) every id is already the service's own, and the seccomp
 * filter refuses the set*id family outright (EPERM), so ntfs-3g gives up.
 * A call that asks for the ids the process already has is answered with
 * success without the syscall; any real change still goes to the kernel
 * (and is refused there).
 */
static int unchanged(unsigned want, unsigned have)
{
    return want == (unsigned)-1 || want == have;
}

EXPORT int setresuid(uid_t r, uid_t e, uid_t s)
{
    uid_t cr, ce, cs;
    if (getresuid(&cr, &ce, &cs) == 0 && unchanged(r, cr) && unchanged(e, ce) && unchanged(s, cs)) {
        LOG("setresuid(%d, %d, %d): no change, answered without the syscall\n", (int)r, (int)e, (int)s);
        return 0;
    }
    REAL(setresuid);
    return real_setresuid(r, e, s);
}

EXPORT int setresgid(gid_t r, gid_t e, gid_t s)
{
    gid_t cr, ce, cs;
    if (getresgid(&cr, &ce, &cs) == 0 && unchanged(r, cr) && unchanged(e, ce) && unchanged(s, cs)) {
        LOG("setresgid(%d, %d, %d): no change, answered without the syscall\n", (int)r, (int)e, (int)s);
        return 0;
    }
    REAL(setresgid);
    return real_setresgid(r, e, s);
}
