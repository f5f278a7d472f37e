/*
 * fusegate's native addon: the Linux syscalls Node.js does not expose.
 *
 * Kept deliberately boring. Each export is one syscall (or the shortest fixed
 * sequence of them that must run on one thread), takes plain numbers, strings
 * and Buffers, and returns a result or throws an Error carrying `code` (the
 * errno name, e.g. "ENOENT"), `errno` and `syscall`. Every decision about what
 * a message means, which fd is acceptable or when to give up lives in
 * TypeScript (lib/native/index.ts and its callers).
 *
 * Calls that can block (connect, accept, send, receive) run on libuv's thread
 * pool as async work and resolve a Promise, so the helper's event loop and its
 * overall timeout keep running while a peer stalls. They poll() with the
 * caller's timeout before the syscall, so a hung peer costs a thread for at
 * most that long.
 */
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/mount.h>
#include <sys/fsuid.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/ioctl.h>
#include <sys/file.h>
#include <linux/loop.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <time.h>
#include <unistd.h>

#include <blkid/blkid.h>
#include <libmount/libmount.h>

/* Largest number of fds one receive accepts before the kernel must set
 * MSG_CTRUNC. The protocol allows one; we make room for more so that a peer
 * sending two is seen and refused by TypeScript rather than silently cut. */
#define MAX_RECV_FDS 8

/* ------------------------------------------------------------------ errors */

#define NAPI_CALL(env, call)                                                   \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      napi_throw_error((env), NULL, "fusegate_native: N-API call failed: " #call); \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

static napi_value make_errno_error(napi_env env, int err, const char *syscall_name) {
  const char *name = strerrorname_np(err);
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", syscall_name, strerror(err));
  napi_value code, message, error, errno_value, syscall_value;
  napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, err, &errno_value);
  napi_create_string_utf8(env, syscall_name, NAPI_AUTO_LENGTH, &syscall_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_set_named_property(env, error, "syscall", syscall_value);
  return error;
}

static napi_value throw_errno(napi_env env, int err, const char *syscall_name) {
  napi_throw(env, make_errno_error(env, err, syscall_name));
  return NULL;
}

/* --------------------------------------------------------- argument reading */

static int arg_int(napi_env env, napi_value v, int32_t *out) {
  if (napi_get_value_int32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected an integer argument");
    return -1;
  }
  return 0;
}

static int arg_uint(napi_env env, napi_value v, uint32_t *out) {
  if (napi_get_value_uint32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected an unsigned integer argument");
    return -1;
  }
  return 0;
}

/* Copies a JS string into a malloc'd buffer, or stores NULL for null/undefined
 * when `nullable`. Refuses embedded NULs: a path that C would silently cut is
 * not the path the caller asked for. */
static int arg_string(napi_env env, napi_value v, char **out, int nullable) {
  napi_valuetype t;
  *out = NULL;
  napi_typeof(env, v, &t);
  if (nullable && (t == napi_null || t == napi_undefined)) return 0;
  if (t != napi_string) {
    napi_throw_type_error(env, NULL, "expected a string argument");
    return -1;
  }
  size_t len;
  napi_get_value_string_utf8(env, v, NULL, 0, &len);
  char *s = malloc(len + 1);
  if (!s) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return -1;
  }
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  if (strlen(s) != len) {
    free(s);
    napi_throw_type_error(env, "EINVAL", "string argument contains a NUL byte");
    return -1;
  }
  *out = s;
  return 0;
}

static int fill_sockaddr(napi_env env, const char *path, struct sockaddr_un *sa, socklen_t *len) {
  size_t n = strlen(path);
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (n == 0 || n >= sizeof sa->sun_path) {
    throw_errno(env, ENAMETOOLONG, "sockaddr_un");
    return -1;
  }
  memcpy(sa->sun_path, path, n);
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  return 0;
}

static napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

static napi_value int_value(napi_env env, int64_t n) {
  napi_value v;
  napi_create_int64(env, n, &v);
  return v;
}

/* Waits until fd is ready for `events` or timeout_ms passes (negative: no
 * limit). Returns 0 when ready, else an errno (ETIMEDOUT on timeout). */
static int wait_ready(int fd, short events, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = events};
  for (;;) {
    int r = poll(&p, 1, timeout_ms);
    if (r > 0) return 0;
    if (r == 0) return ETIMEDOUT;
    if (errno != EINTR) return errno;
  }
}

/* ------------------------------------------------------------- async work */

enum op_kind { OP_CONNECT, OP_ACCEPT, OP_SEND, OP_RECV, OP_WAITPID, OP_LIBMOUNT, OP_POLL };

struct op {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref buffer_ref; /* keeps the send buffer alive while the thread uses it */
  enum op_kind kind;
  const char *syscall_name;
  int fd;
  int timeout_ms;
  /* connect */
  struct sockaddr_un addr;
  socklen_t addr_len;
  /* send */
  const void *send_data;
  size_t send_len;
  int pass_fd;
  /* recv */
  void *recv_data;
  size_t recv_cap;
  int recv_fds[MAX_RECV_FDS];
  int recv_nfds;
  int recv_flags;
  /* waitpid */
  int wstatus;
  /* libmount: what mount(8) would be given, and what it would say */
  char *mnt_source, *mnt_target, *mnt_fstype, *mnt_options;
  uint32_t mnt_flags;
  int mnt_excode;
  char mnt_message[1024];
  /* result */
  ssize_t result;
  int err;
};

/* libmountMount() flags: mount(8)'s -n, -f and --no-canonicalize */
#define FG_MNT_NO_MTAB 1
#define FG_MNT_FAKE 2
#define FG_MNT_NO_CANONICALIZE 4

/* What `mount -i [-n] [-f] -t TYPE -o OPTIONS SOURCE TARGET` does, in-process:
 * libmount is the library mount(8) is a front-end to (loop devices for image
 * files, option parsing, utab), so this is mount(8) without the exec. Helpers
 * are disabled as with -i: the helper for TYPE may be fusegate itself. The
 * exit code and message are mount(8)'s own (mnt_context_get_excode). */
static void run_libmount(struct op *op) {
  struct libmnt_context *cxt = mnt_new_context();
  if (!cxt) {
    op->err = ENOMEM;
    return;
  }
  int rc = mnt_context_disable_helpers(cxt, 1);
  if (!rc && (op->mnt_flags & FG_MNT_NO_MTAB)) rc = mnt_context_disable_mtab(cxt, 1);
  if (!rc && (op->mnt_flags & FG_MNT_FAKE)) rc = mnt_context_enable_fake(cxt, 1);
  if (!rc && (op->mnt_flags & FG_MNT_NO_CANONICALIZE)) rc = mnt_context_disable_canonicalize(cxt, 1);
  if (!rc) rc = mnt_context_set_source(cxt, op->mnt_source);
  if (!rc) rc = mnt_context_set_target(cxt, op->mnt_target);
  if (!rc) rc = mnt_context_set_fstype(cxt, op->mnt_fstype);
  if (!rc && op->mnt_options) rc = mnt_context_set_options(cxt, op->mnt_options);
  if (!rc) rc = mnt_context_mount(cxt);
  op->mnt_message[0] = '\0';
  op->mnt_excode = mnt_context_get_excode(cxt, rc, op->mnt_message, sizeof op->mnt_message);
  mnt_free_context(cxt);
}

static void op_execute(napi_env env, void *data) {
  (void)env;
  struct op *op = data;
  op->err = 0;
  switch (op->kind) {
  case OP_CONNECT: {
    /* A unix socket's connect() only waits while the listener's backlog is
     * full, and that wait is bounded by SO_SNDTIMEO (a non-blocking connect
     * would fail EAGAIN at once, and poll() cannot tell when to retry). It
     * ends with EAGAIN, reported as ETIMEDOUT; the option is reset after. */
    struct timeval tv = {0, 0};
    if (op->timeout_ms >= 0) {
      tv.tv_sec = op->timeout_ms / 1000;
      tv.tv_usec = (op->timeout_ms % 1000) * 1000;
      if (tv.tv_sec == 0 && tv.tv_usec == 0) tv.tv_usec = 1000; /* 0 would mean no limit */
      if (setsockopt(op->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0) { op->err = errno; break; }
    }
    for (;;) {
      if (connect(op->fd, (struct sockaddr *)&op->addr, op->addr_len) == 0) break;
      if (errno != EINTR) { op->err = errno == EAGAIN && op->timeout_ms >= 0 ? ETIMEDOUT : errno; break; }
    }
    if (op->timeout_ms >= 0) {
      struct timeval none = {0, 0};
      setsockopt(op->fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
    }
    break;
  }
  case OP_POLL:
    op->err = wait_ready(op->fd, POLLIN, op->timeout_ms);
    break;
  case OP_ACCEPT:
    op->err = wait_ready(op->fd, POLLIN, op->timeout_ms);
    if (op->err) break;
    op->result = accept4(op->fd, NULL, NULL, SOCK_CLOEXEC);
    if (op->result < 0) op->err = errno;
    break;
  case OP_SEND: {
    op->err = wait_ready(op->fd, POLLOUT, op->timeout_ms);
    if (op->err) break;
    struct iovec iov = {.iov_base = (void *)op->send_data, .iov_len = op->send_len};
    union {
      char buf[CMSG_SPACE(sizeof(int))];
      struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (op->pass_fd >= 0) {
      memset(&control, 0, sizeof control);
      msg.msg_control = control.buf;
      msg.msg_controllen = sizeof control.buf;
      struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      memcpy(CMSG_DATA(c), &op->pass_fd, sizeof(int));
    }
    do op->result = sendmsg(op->fd, &msg, MSG_NOSIGNAL);
    while (op->result < 0 && errno == EINTR);
    if (op->result < 0) op->err = errno;
    break;
  }
  case OP_RECV: {
    op->err = wait_ready(op->fd, POLLIN, op->timeout_ms);
    if (op->err) break;
    struct iovec iov = {.iov_base = op->recv_data, .iov_len = op->recv_cap};
    union {
      char buf[CMSG_SPACE(MAX_RECV_FDS * sizeof(int))];
      struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = control.buf, .msg_controllen = sizeof control.buf};
    do op->result = recvmsg(op->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    while (op->result < 0 && errno == EINTR);
    if (op->result < 0) { op->err = errno; break; }
    op->recv_flags = msg.msg_flags;
    op->recv_nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < n && op->recv_nfds < MAX_RECV_FDS; i++)
        memcpy(&op->recv_fds[op->recv_nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    break;
  }
  case OP_WAITPID:
    do op->result = waitpid(op->fd, &op->wstatus, 0);
    while (op->result < 0 && errno == EINTR);
    if (op->result < 0) op->err = errno;
    break;
  case OP_LIBMOUNT:
    run_libmount(op);
    break;
  }
}

static void set_flag(napi_env env, napi_value obj, const char *name, int on) {
  napi_value b;
  napi_get_boolean(env, on != 0, &b);
  napi_set_named_property(env, obj, name, b);
}

static void free_op(struct op *op) {
  free(op->recv_data);
  free(op->mnt_source);
  free(op->mnt_target);
  free(op->mnt_fstype);
  free(op->mnt_options);
  free(op);
}

static void op_complete(napi_env env, napi_status status, void *data) {
  struct op *op = data;
  if (status != napi_ok && op->err == 0) op->err = ECANCELED;
  if (op->err) {
    napi_reject_deferred(env, op->deferred, make_errno_error(env, op->err, op->syscall_name));
  } else if (op->kind == OP_RECV) {
    /* { data: Buffer, fds: number[], truncated: bool, controlTruncated: bool } */
    napi_value obj, buf, fds;
    size_t n = (size_t)op->result < op->recv_cap ? (size_t)op->result : op->recv_cap;
    void *dst;
    napi_create_object(env, &obj);
    napi_create_buffer_copy(env, n, op->recv_data, &dst, &buf);
    napi_create_array_with_length(env, (size_t)op->recv_nfds, &fds);
    for (int i = 0; i < op->recv_nfds; i++)
      napi_set_element(env, fds, (uint32_t)i, int_value(env, op->recv_fds[i]));
    napi_set_named_property(env, obj, "data", buf);
    napi_set_named_property(env, obj, "fds", fds);
    set_flag(env, obj, "truncated", op->recv_flags & MSG_TRUNC);
    set_flag(env, obj, "controlTruncated", op->recv_flags & MSG_CTRUNC);
    napi_resolve_deferred(env, op->deferred, obj);
  } else if (op->kind == OP_WAITPID) {
    /* { code, signal }: code is -1 when a signal ended the child */
    napi_value obj;
    napi_create_object(env, &obj);
    napi_set_named_property(env, obj, "code", int_value(env, WIFEXITED(op->wstatus) ? WEXITSTATUS(op->wstatus) : -1));
    napi_set_named_property(env, obj, "signal", int_value(env, WIFSIGNALED(op->wstatus) ? WTERMSIG(op->wstatus) : 0));
    napi_resolve_deferred(env, op->deferred, obj);
  } else if (op->kind == OP_LIBMOUNT) {
    /* { code, message }: mount(8)'s exit code and its message ("" when none) */
    napi_value obj, msg;
    napi_create_object(env, &obj);
    napi_set_named_property(env, obj, "code", int_value(env, op->mnt_excode));
    napi_create_string_utf8(env, op->mnt_message, NAPI_AUTO_LENGTH, &msg);
    napi_set_named_property(env, obj, "message", msg);
    napi_resolve_deferred(env, op->deferred, obj);
  } else {
    napi_resolve_deferred(env, op->deferred, int_value(env, op->result));
  }
  if (op->buffer_ref) napi_delete_reference(env, op->buffer_ref);
  napi_delete_async_work(env, op->work);
  free_op(op);
}

static napi_value queue_op(napi_env env, struct op *op) {
  napi_value promise, name;
  if (napi_create_promise(env, &op->deferred, &promise) != napi_ok) goto fail;
  napi_create_string_utf8(env, op->syscall_name, NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, op_execute, op_complete, op, &op->work) != napi_ok)
    goto fail;
  if (napi_queue_async_work(env, op->work) != napi_ok) goto fail;
  return promise;
fail:
  free_op(op);
  napi_throw_error(env, NULL, "fusegate_native: cannot queue async work");
  return NULL;
}

static struct op *new_op(napi_env env, enum op_kind kind, const char *syscall_name) {
  struct op *op = calloc(1, sizeof *op);
  if (!op) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  op->kind = kind;
  op->syscall_name = syscall_name;
  op->pass_fd = -1;
  op->timeout_ms = -1;
  return op;
}

/* ------------------------------------------------------------ socket calls */

#define GET_ARGS(n)                                                            \
  size_t argc = (n);                                                           \
  napi_value argv[(n) > 0 ? (n) : 1];                                          \
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));

/* socketSeqpacket(): fd */
static napi_value js_socket_seqpacket(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  return int_value(env, fd);
}

/* socketStream(): fd. AF_UNIX SOCK_STREAM, for the D-Bus system bus: fds
 * travel over it with sendMsg/recvMsg (lib/dbus/fd-stream.ts). */
static napi_value js_socket_stream(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  return int_value(env, fd);
}

/* socketpairSeqpacket(): [fd, fd] */
static napi_value js_socketpair_seqpacket(napi_env env, napi_callback_info info) {
  (void)info;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return throw_errno(env, errno, "socketpair");
  napi_value arr;
  napi_create_array_with_length(env, 2, &arr);
  napi_set_element(env, arr, 0, int_value(env, sv[0]));
  napi_set_element(env, arr, 1, int_value(env, sv[1]));
  return arr;
}

/* connect(fd, path, timeoutMs): Promise<0>; rejects ETIMEDOUT when the
 * listener's backlog stays full for timeoutMs */
static napi_value js_connect(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int32_t fd, timeout;
  char *path;
  if (arg_int(env, argv[0], &fd) || arg_int(env, argv[2], &timeout) || arg_string(env, argv[1], &path, 0)) return NULL;
  struct op *op = new_op(env, OP_CONNECT, "connect");
  if (!op) { free(path); return NULL; }
  op->fd = fd;
  op->timeout_ms = timeout;
  int bad = fill_sockaddr(env, path, &op->addr, &op->addr_len);
  free(path);
  if (bad) { free(op); return NULL; }
  return queue_op(env, op);
}

/* bind(fd, path) */
static napi_value js_bind(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int32_t fd;
  char *path;
  struct sockaddr_un sa;
  socklen_t len;
  if (arg_int(env, argv[0], &fd) || arg_string(env, argv[1], &path, 0)) return NULL;
  int bad = fill_sockaddr(env, path, &sa, &len);
  free(path);
  if (bad) return NULL;
  if (bind(fd, (struct sockaddr *)&sa, len) < 0) return throw_errno(env, errno, "bind");
  return undefined(env);
}

/* listen(fd, backlog) */
static napi_value js_listen(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int32_t fd, backlog;
  if (arg_int(env, argv[0], &fd) || arg_int(env, argv[1], &backlog)) return NULL;
  if (listen(fd, backlog) < 0) return throw_errno(env, errno, "listen");
  return undefined(env);
}

/* accept(fd, timeoutMs): Promise<fd>, the new fd has O_CLOEXEC */
static napi_value js_accept(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int32_t fd, timeout;
  if (arg_int(env, argv[0], &fd) || arg_int(env, argv[1], &timeout)) return NULL;
  struct op *op = new_op(env, OP_ACCEPT, "accept4");
  if (!op) return NULL;
  op->fd = fd;
  op->timeout_ms = timeout;
  return queue_op(env, op);
}

/* sendMsg(fd, buffer, passFd, timeoutMs): Promise<bytes sent>; passFd -1: none */
static napi_value js_send_msg(napi_env env, napi_callback_info info) {
  GET_ARGS(4);
  int32_t fd, pass_fd, timeout;
  void *data;
  size_t len;
  if (arg_int(env, argv[0], &fd) || arg_int(env, argv[2], &pass_fd) ||
      arg_int(env, argv[3], &timeout))
    return NULL;
  if (napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a Buffer");
    return NULL;
  }
  struct op *op = new_op(env, OP_SEND, "sendmsg");
  if (!op) return NULL;
  op->fd = fd;
  op->send_data = data;
  op->send_len = len;
  op->pass_fd = pass_fd;
  op->timeout_ms = timeout;
  napi_create_reference(env, argv[1], 1, &op->buffer_ref);
  return queue_op(env, op);
}

/* recvMsg(fd, capacity, timeoutMs):
 *   Promise<{data, fds, truncated, controlTruncated}>
 * Received fds carry O_CLOEXEC (MSG_CMSG_CLOEXEC). */
static napi_value js_recv_msg(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int32_t fd, timeout;
  uint32_t cap;
  if (arg_int(env, argv[0], &fd) || arg_uint(env, argv[1], &cap) ||
      arg_int(env, argv[2], &timeout))
    return NULL;
  struct op *op = new_op(env, OP_RECV, "recvmsg");
  if (!op) return NULL;
  op->fd = fd;
  op->timeout_ms = timeout;
  op->recv_cap = cap;
  op->recv_data = malloc(cap ? cap : 1);
  if (!op->recv_data) {
    free(op);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  return queue_op(env, op);
}

/* peerCred(fd): {pid, uid, gid} of the process that connected (SO_PEERCRED) */
static napi_value js_peer_cred(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int32_t fd;
  if (arg_int(env, argv[0], &fd)) return NULL;
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    return throw_errno(env, errno, "getsockopt(SO_PEERCRED)");
  napi_value obj;
  napi_create_object(env, &obj);
  napi_set_named_property(env, obj, "pid", int_value(env, cred.pid));
  napi_set_named_property(env, obj, "uid", int_value(env, cred.uid));
  napi_set_named_property(env, obj, "gid", int_value(env, cred.gid));
  return obj;
}

/* sendDatagram(path, buffer): one non-blocking datagram to a unix socket
 * (journald, $NOTIFY_SOCKET). A path starting with '@' is abstract. */
static napi_value js_send_datagram(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  char *path;
  void *data;
  size_t len;
  struct sockaddr_un sa;
  socklen_t sa_len;
  if (arg_string(env, argv[0], &path, 0)) return NULL;
  if (napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
    free(path);
    napi_throw_type_error(env, NULL, "expected a Buffer");
    return NULL;
  }
  int bad = fill_sockaddr(env, path, &sa, &sa_len);
  if (!bad && path[0] == '@') {
    sa.sun_path[0] = '\0';
    sa_len--; /* abstract names are not NUL-terminated */
  }
  free(path);
  if (bad) return NULL;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  ssize_t r = sendto(fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sa, sa_len);
  int err = errno;
  close(fd);
  if (r < 0) return throw_errno(env, err, "sendto");
  return int_value(env, r);
}

/* ---------------------------------------------------------- fds and files */

/* memfdCreate(name, flags): fd */
static napi_value js_memfd_create(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  char *name;
  uint32_t flags;
  if (arg_string(env, argv[0], &name, 0) || arg_uint(env, argv[1], &flags)) return NULL;
  int fd = memfd_create(name, flags);
  int err = errno;
  free(name);
  if (fd < 0) return throw_errno(env, err, "memfd_create");
  return int_value(env, fd);
}

/* setfsuid(uid) / setfsgid(gid): previous value. These never fail visibly;
 * TypeScript calls them twice to confirm, as the man page advises. */
static napi_value js_setfsuid(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  uint32_t id;
  if (arg_uint(env, argv[0], &id)) return NULL;
  return int_value(env, setfsuid(id));
}

static napi_value js_setfsgid(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  uint32_t id;
  if (arg_uint(env, argv[0], &id)) return NULL;
  return int_value(env, setfsgid(id));
}

/* openAs(path, flags, mode, fsuid, fsgid): fd
 * The filesystem ids are per thread, so switching, opening and switching back
 * must happen in one call on one thread; done in JS, a thread-pool open could
 * run with the wrong ids. */
static napi_value js_open_as(napi_env env, napi_callback_info info) {
  GET_ARGS(5);
  char *path;
  int32_t flags;
  uint32_t mode, uid, gid;
  if (arg_string(env, argv[0], &path, 0) || arg_int(env, argv[1], &flags) ||
      arg_uint(env, argv[2], &mode) || arg_uint(env, argv[3], &uid) || arg_uint(env, argv[4], &gid)) {
    free(path);
    return NULL;
  }
  int old_gid = setfsgid(gid);
  int old_uid = setfsuid(uid);
  int fd = -1, err = 0;
  if ((uint32_t)setfsuid(uid) != uid || (uint32_t)setfsgid(gid) != gid) {
    err = EPERM; /* could not take the caller's identity: do not open as ourselves */
  } else {
    fd = open(path, flags | O_CLOEXEC, mode);
    if (fd < 0) err = errno;
  }
  setfsuid(old_uid);
  setfsgid(old_gid);
  free(path);
  if (fd < 0) return throw_errno(env, err, "open");
  return int_value(env, fd);
}

/* cloexec(fd, set): current FD_CLOEXEC state; `set` true/false changes it,
 * undefined only reads it. */
static napi_value js_cloexec(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int32_t fd;
  if (arg_int(env, argv[0], &fd)) return NULL;
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0) return throw_errno(env, errno, "fcntl(F_GETFD)");
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  if (t == napi_boolean) {
    bool on;
    napi_get_value_bool(env, argv[1], &on);
    flags = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
    if (fcntl(fd, F_SETFD, flags) < 0) return throw_errno(env, errno, "fcntl(F_SETFD)");
  }
  napi_value b;
  napi_get_boolean(env, (flags & FD_CLOEXEC) != 0, &b);
  return b;
}

/* dup3(oldfd, newfd, flags): newfd. Without O_CLOEXEC in flags the new fd is
 * inherited across execve, which is how servers get their fds at known numbers. */
static napi_value js_dup3(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int32_t oldfd, newfd, flags;
  if (arg_int(env, argv[0], &oldfd) || arg_int(env, argv[1], &newfd) || arg_int(env, argv[2], &flags))
    return NULL;
  int r = dup3(oldfd, newfd, flags);
  if (r < 0) return throw_errno(env, errno, "dup3");
  return int_value(env, r);
}

/* dupAbove(fd, min): a copy of fd numbered >= min, with FD_CLOEXEC
 * (fcntl F_DUPFD_CLOEXEC): a safe place to park an fd before dup3 puts it
 * at a fixed number. */
static napi_value js_dup_above(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int32_t fd, min;
  if (arg_int(env, argv[0], &fd) || arg_int(env, argv[1], &min)) return NULL;
  int r = fcntl(fd, F_DUPFD_CLOEXEC, min);
  if (r < 0) return throw_errno(env, errno, "fcntl(F_DUPFD_CLOEXEC)");
  return int_value(env, r);
}

/* closeFromOnExec(first): every fd >= first gets FD_CLOEXEC, so execve
 * leaves the server exactly the fds the adapter placed below `first`. */
static napi_value js_close_from_on_exec(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  uint32_t first;
  if (arg_uint(env, argv[0], &first)) return NULL;
  if (syscall(SYS_close_range, first, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */) < 0)
    return throw_errno(env, errno, "close_range");
  return undefined(env);
}

/* ------------------------------------------------------------------ mount */

/* fsopen(fsname, flags): fd */
static napi_value js_fsopen(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  char *name;
  uint32_t flags;
  if (arg_string(env, argv[0], &name, 0) || arg_uint(env, argv[1], &flags)) { free(name); return NULL; }
  long fd = syscall(SYS_fsopen, name, flags);
  int err = errno;
  free(name);
  if (fd < 0) return throw_errno(env, err, "fsopen");
  return int_value(env, fd);
}

/* fsconfig(fd, cmd, key, value, aux): `key`/`value` may be null. */
static napi_value js_fsconfig(napi_env env, napi_callback_info info) {
  GET_ARGS(5);
  int32_t fd, aux;
  uint32_t cmd;
  char *key = NULL, *value = NULL;
  if (arg_int(env, argv[0], &fd) || arg_uint(env, argv[1], &cmd) ||
      arg_string(env, argv[2], &key, 1) || arg_string(env, argv[3], &value, 1) ||
      arg_int(env, argv[4], &aux)) {
    free(key);
    return NULL;
  }
  long r = syscall(SYS_fsconfig, fd, cmd, key, value, aux);
  int err = errno;
  free(key);
  free(value);
  if (r < 0) return throw_errno(env, err, "fsconfig");
  return undefined(env);
}

/* fsmount(fd, flags, attrFlags): mount fd */
static napi_value js_fsmount(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int32_t fd;
  uint32_t flags, attr;
  if (arg_int(env, argv[0], &fd) || arg_uint(env, argv[1], &flags) || arg_uint(env, argv[2], &attr))
    return NULL;
  long r = syscall(SYS_fsmount, fd, flags, attr);
  if (r < 0) return throw_errno(env, errno, "fsmount");
  return int_value(env, r);
}

/* moveMount(fromDirfd, fromPath, toDirfd, toPath, flags) */
static napi_value js_move_mount(napi_env env, napi_callback_info info) {
  GET_ARGS(5);
  int32_t from_fd, to_fd;
  uint32_t flags;
  char *from_path = NULL, *to_path = NULL;
  if (arg_int(env, argv[0], &from_fd) || arg_string(env, argv[1], &from_path, 0) ||
      arg_int(env, argv[2], &to_fd) || arg_string(env, argv[3], &to_path, 0) ||
      arg_uint(env, argv[4], &flags)) {
    free(from_path);
    return NULL;
  }
  long r = syscall(SYS_move_mount, from_fd, from_path, to_fd, to_path, flags);
  int err = errno;
  free(from_path);
  free(to_path);
  if (r < 0) return throw_errno(env, err, "move_mount");
  return undefined(env);
}

/* mount(source, target, fstype, flags, data): the classic call, the fallback
 * when the new API is missing. Flags are passed as a double to keep all 32 bits. */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  GET_ARGS(5);
  char *source = NULL, *target = NULL, *fstype = NULL, *data = NULL;
  uint32_t flags;
  int bad = arg_string(env, argv[0], &source, 1) || arg_string(env, argv[1], &target, 0) ||
            arg_string(env, argv[2], &fstype, 1) || arg_uint(env, argv[3], &flags) ||
            arg_string(env, argv[4], &data, 1);
  int r = -1, err = 0;
  if (!bad) {
    r = mount(source, target, fstype, flags, data);
    err = errno;
  }
  free(source);
  free(target);
  free(fstype);
  free(data);
  if (bad) return NULL;
  if (r < 0) return throw_errno(env, err, "mount");
  return undefined(env);
}

/* umount2(target, flags) */
static napi_value js_umount2(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  char *target;
  int32_t flags;
  if (arg_string(env, argv[0], &target, 0) || arg_int(env, argv[1], &flags)) return NULL;
  int r = umount2(target, flags);
  int err = errno;
  free(target);
  if (r < 0) return throw_errno(env, err, "umount2");
  return undefined(env);
}

/* ------------------------------------------------------------------ blkid */

/* blkidProbe(path): {status, tags} from libblkid's low-level probe, the same
 * probe `blkid -p` runs (superblocks with label/uuid/type/usage/version, and
 * partition entry details), without the cost of starting blkid(8).
 * status: "found", "nothing" (no signature), "ambivalent" (more than one). */
static napi_value js_blkid_probe(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  char *path;
  if (arg_string(env, argv[0], &path, 0)) return NULL;
  errno = 0;
  blkid_probe pr = blkid_new_probe_from_filename(path);
  int err = errno ? errno : EIO;
  free(path);
  if (!pr) return throw_errno(env, err, "blkid_new_probe_from_filename");
  blkid_probe_enable_superblocks(pr, 1);
  blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_LABEL | BLKID_SUBLKS_UUID | BLKID_SUBLKS_TYPE |
                                            BLKID_SUBLKS_SECTYPE | BLKID_SUBLKS_USAGE | BLKID_SUBLKS_VERSION);
  blkid_probe_enable_partitions(pr, 1);
  blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
  int rc = blkid_do_safeprobe(pr);
  if (rc == -1) {
    err = errno ? errno : EIO;
    blkid_free_probe(pr);
    return throw_errno(env, err, "blkid_do_safeprobe");
  }
  napi_value obj, tags, status;
  napi_create_object(env, &obj);
  napi_create_object(env, &tags);
  napi_create_string_utf8(env, rc == 0 ? "found" : rc == 1 ? "nothing" : "ambivalent", NAPI_AUTO_LENGTH, &status);
  int n = rc == 0 ? blkid_probe_numof_values(pr) : 0;
  for (int i = 0; i < n; i++) {
    const char *name, *data;
    size_t len;
    if (blkid_probe_get_value(pr, i, &name, &data, &len) != 0) continue;
    napi_value v;
    /* len counts the NUL; values are bytes from the medium, decoded as UTF-8 by N-API */
    napi_create_string_utf8(env, data, len > 0 ? len - 1 : 0, &v);
    napi_set_named_property(env, tags, name, v);
  }
  blkid_free_probe(pr);
  napi_set_named_property(env, obj, "status", status);
  napi_set_named_property(env, obj, "tags", tags);
  return obj;
}

/* ------------------------------------------------------------------ loop */

/* loopBacking(fd): {device, inode} of the file behind the loop device open
 * on fd, from LOOP_GET_STATUS64. device is the kernel's huge_encode_dev()
 * form; both are returned as BigInt, decoded in TypeScript. The policy uses
 * them to prove that the file it inspected by path is the one attached. */
static napi_value js_loop_backing(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int32_t fd;
  if (arg_int(env, argv[0], &fd)) return NULL;
  struct loop_info64 li;
  memset(&li, 0, sizeof li);
  if (ioctl(fd, LOOP_GET_STATUS64, &li) < 0) return throw_errno(env, errno, "ioctl(LOOP_GET_STATUS64)");
  napi_value obj, device, inode, rdevice, offset, sizelimit;
  napi_create_object(env, &obj);
  napi_create_bigint_uint64(env, li.lo_device, &device);
  napi_create_bigint_uint64(env, li.lo_inode, &inode);
  napi_create_bigint_uint64(env, li.lo_rdevice, &rdevice);
  napi_create_bigint_uint64(env, li.lo_offset, &offset);
  napi_create_bigint_uint64(env, li.lo_sizelimit, &sizelimit);
  napi_set_named_property(env, obj, "device", device);
  napi_set_named_property(env, obj, "inode", inode);
  napi_set_named_property(env, obj, "rdevice", rdevice);
  napi_set_named_property(env, obj, "offset", offset);
  napi_set_named_property(env, obj, "sizelimit", sizelimit);
  return obj;
}

/* flock(fd, operation): BSD lock on the open file description, which
 * survives SCM_RIGHTS passing, so a lock taken here lives as long as any
 * process holds a dup of the fd. Callers pass LOCK_NB; nothing blocks. */
static napi_value js_flock(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int32_t fd, op;
  if (arg_int(env, argv[0], &fd) || arg_int(env, argv[1], &op)) return NULL;
  if (flock(fd, op) < 0) return throw_errno(env, errno, "flock");
  return undefined(env);
}

/* ------------------------------------------------------------------ execve */

static char **string_array(napi_env env, napi_value arr) {
  uint32_t n;
  if (napi_get_array_length(env, arr, &n) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected an array of strings");
    return NULL;
  }
  char **out = calloc(n + 1, sizeof *out);
  if (!out) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    napi_get_element(env, arr, i, &v);
    if (arg_string(env, v, &out[i], 0)) {
      for (uint32_t j = 0; j < i; j++) free(out[j]);
      free(out);
      return NULL;
    }
  }
  return out;
}

static void free_string_array(char **a) {
  if (!a) return;
  for (char **p = a; *p; p++) free(*p);
  free(a);
}

/* execve(path, argv, envp): does not return on success. */
static napi_value js_execve(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  char *path;
  if (arg_string(env, argv[0], &path, 0)) return NULL;
  char **args = string_array(env, argv[1]);
  char **envp = args ? string_array(env, argv[2]) : NULL;
  int err = EINVAL;
  if (args && envp) {
    execve(path, args, envp);
    err = errno;
  }
  free(path);
  free_string_array(args);
  free_string_array(envp);
  return throw_errno(env, err, "execve");
}

/* exitNow(code): _exit(2). For short-lived programs that have finished:
 * everything they wrote went out with write(2), so Node's and V8's teardown
 * (~1 ms and more) buys nothing. */
static napi_value js_exit_now(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int32_t code;
  if (arg_int(env, argv[0], &code)) return NULL;
  _exit(code & 0xff);
}

/* ------------------------------------------------------------------ spawn */

extern char **environ;

/* spawn(path, argv, envp | null): pid. posix_spawn with stdin on /dev/null
 * and stdout/stderr inherited: starting mount(8) this way spares the mount
 * path Node's child_process module (~4 ms to load). envp null: ours. */
static napi_value js_spawn(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  char *path;
  if (arg_string(env, argv[0], &path, 0)) return NULL;
  char **args = string_array(env, argv[1]);
  napi_valuetype t;
  napi_typeof(env, argv[2], &t);
  int has_env = t != napi_null && t != napi_undefined;
  char **envp = (args && has_env) ? string_array(env, argv[2]) : NULL;
  if (!args || (has_env && !envp)) {
    free(path);
    free_string_array(args);
    return NULL;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  pid_t pid;
  int err = posix_spawn(&pid, path, &fa, NULL, args, envp ? envp : environ);
  posix_spawn_file_actions_destroy(&fa);
  free(path);
  free_string_array(args);
  free_string_array(envp);
  if (err) return throw_errno(env, err, "posix_spawn");
  return int_value(env, pid);
}

/* waitpid(pid): Promise<{code, signal}>, waited for on the thread pool. */
static napi_value js_waitpid(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int32_t pid;
  if (arg_int(env, argv[0], &pid)) return NULL;
  struct op *op = new_op(env, OP_WAITPID, "waitpid");
  if (!op) return NULL;
  op->fd = pid;
  return queue_op(env, op);
}

/* ---------------------------------------------------------------- libmount */

/* libmountMount(source, target, fstype, options | null, flags):
 * Promise<{code, message}>, mounted on the thread pool (a mount can block on
 * a slow device; the helper's timeout keeps running). */
static napi_value js_libmount_mount(napi_env env, napi_callback_info info) {
  GET_ARGS(5);
  struct op *op = new_op(env, OP_LIBMOUNT, "mnt_context_mount");
  if (!op) return NULL;
  if (arg_uint(env, argv[4], &op->mnt_flags) ||
      arg_string(env, argv[0], &op->mnt_source, 0) || arg_string(env, argv[1], &op->mnt_target, 0) ||
      arg_string(env, argv[2], &op->mnt_fstype, 0) || arg_string(env, argv[3], &op->mnt_options, 1)) {
    free_op(op);
    return NULL;
  }
  return queue_op(env, op);
}

/* ------------------------------------------------------------- SO_PASSRIGHTS */

#ifndef SO_PASSRIGHTS
#define SO_PASSRIGHTS 83 /* Linux 6.16, asm-generic value (x86, arm, riscv, …) */
#endif

/* refusePassedFds(fd): true when the kernel now refuses SCM_RIGHTS sent to
 * this socket (the sender's sendmsg fails EPERM); false on kernels without
 * SO_PASSRIGHTS (ENOPROTOOPT). */
static napi_value js_refuse_passed_fds(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int32_t fd;
  if (arg_int(env, argv[0], &fd)) return NULL;
  int off = 0;
  napi_value b;
  if (setsockopt(fd, SOL_SOCKET, SO_PASSRIGHTS, &off, sizeof off) < 0) {
    if (errno != ENOPROTOOPT) return throw_errno(env, errno, "setsockopt(SO_PASSRIGHTS)");
    napi_get_boolean(env, false, &b);
    return b;
  }
  napi_get_boolean(env, true, &b);
  return b;
}

/* ------------------------------------------------------------------ pidfds */

/* pidfdOpen(pid): fd (O_CLOEXEC is implied). A pidfd names one process, never
 * a later one that reuses its pid; it becomes readable when the process exits. */
static napi_value js_pidfd_open(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int32_t pid;
  if (arg_int(env, argv[0], &pid)) return NULL;
  long fd = syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) return throw_errno(env, errno, "pidfd_open");
  return int_value(env, fd);
}

/* pidfdSendSignal(pidfd, signal) */
static napi_value js_pidfd_send_signal(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int32_t fd, sig;
  if (arg_int(env, argv[0], &fd) || arg_int(env, argv[1], &sig)) return NULL;
  if (syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0) < 0) return throw_errno(env, errno, "pidfd_send_signal");
  return undefined(env);
}

/* pollReadable(fd, timeoutMs): Promise<0> once fd is readable (a pidfd: the
 * process exited); rejects ETIMEDOUT. Waited for on the thread pool. */
static napi_value js_poll_readable(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int32_t fd, timeout;
  if (arg_int(env, argv[0], &fd) || arg_int(env, argv[1], &timeout)) return NULL;
  struct op *op = new_op(env, OP_POLL, "poll");
  if (!op) return NULL;
  op->fd = fd;
  op->timeout_ms = timeout;
  return queue_op(env, op);
}

/* ---------------------------------------------------------------- watchdog */

/* A deadline that holds while the event loop cannot run: a thread that sleeps
 * until it, then writes the armed message to stderr, aborts and detaches the
 * armed mount (if any), and _exit(32)s. A synchronous call stuck in a FUSE
 * request (a stat() under a mount whose server never answers) blocks the main
 * thread, and with it every JS timer; this thread is not blocked by it. The
 * steps are plain syscalls; what to do is decided in TypeScript. */
static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cond;
static int wd_started, wd_armed;
static struct timespec wd_deadline;
static char wd_message[512];
#define WD_MAX_ABORTS 8
static char wd_abort_files[WD_MAX_ABORTS][64]; /* fusectl abort files of connections to end, "" if unused */
static char wd_detach_path[4096]; /* the mountpoint to detach, "" if none */

static void *watchdog_thread(void *unused) {
  (void)unused;
  pthread_mutex_lock(&wd_lock);
  for (;;) {
    if (!wd_armed) {
      pthread_cond_wait(&wd_cond, &wd_lock);
      continue;
    }
    if (pthread_cond_timedwait(&wd_cond, &wd_lock, &wd_deadline) != ETIMEDOUT) continue;
    if (!wd_armed) continue;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec < wd_deadline.tv_sec || (now.tv_sec == wd_deadline.tv_sec && now.tv_nsec < wd_deadline.tv_nsec))
      continue;
    /* Fire: the lock stays held, so nothing can re-arm or disarm meanwhile. */
    if (write(2, wd_message, strlen(wd_message)) < 0) { /* nothing left to tell */ }
    /* A thread waiting for a FUSE request the server has read cannot be
     * killed, not even by _exit: only ending the connection frees it. */
    for (int i = 0; i < WD_MAX_ABORTS && wd_abort_files[i][0]; i++) {
      int fd = open(wd_abort_files[i], O_WRONLY | O_CLOEXEC);
      if (fd >= 0) {
        if (write(fd, "1", 1) < 0) { /* gone already */ }
        close(fd);
      }
    }
    if (wd_detach_path[0]) umount2(wd_detach_path, MNT_DETACH | UMOUNT_NOFOLLOW);
    _exit(32);
  }
  return NULL;
}

/* watchdogArm(ms, message): (re)arms the deadline ms from now. */
static napi_value js_watchdog_arm(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int32_t ms;
  char *message;
  if (arg_int(env, argv[0], &ms) || arg_string(env, argv[1], &message, 0)) return NULL;
  pthread_mutex_lock(&wd_lock);
  int err = 0;
  if (!wd_started) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&wd_cond, &attr);
    pthread_condattr_destroy(&attr);
    pthread_t t;
    pthread_attr_t ta;
    pthread_attr_init(&ta);
    pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&ta, 64 * 1024);
    /* No signal ever lands on this thread: Node's handlers run on the main one. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    err = pthread_create(&t, &ta, watchdog_thread, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&ta);
    if (!err) wd_started = 1;
  }
  if (!err) {
    snprintf(wd_message, sizeof wd_message, "%s\n", message);
    clock_gettime(CLOCK_MONOTONIC, &wd_deadline);
    wd_deadline.tv_sec += ms / 1000;
    wd_deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (wd_deadline.tv_nsec >= 1000000000L) { wd_deadline.tv_sec++; wd_deadline.tv_nsec -= 1000000000L; }
    wd_armed = 1;
    pthread_cond_signal(&wd_cond);
  }
  pthread_mutex_unlock(&wd_lock);
  free(message);
  if (err) return throw_errno(env, err, "pthread_create");
  return undefined(env);
}

/* watchdogCleanup(abortFiles: string[], detachPath | null): what to undo
 * when it fires; replaces what was set before. */
static napi_value js_watchdog_cleanup(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  uint32_t n;
  if (napi_get_array_length(env, argv[0], &n) != napi_ok || n > WD_MAX_ABORTS) {
    napi_throw_type_error(env, NULL, "expected an array of at most 8 abort files");
    return NULL;
  }
  char files[WD_MAX_ABORTS][sizeof wd_abort_files[0]];
  memset(files, 0, sizeof files);
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    char *f;
    napi_get_element(env, argv[0], i, &v);
    if (arg_string(env, v, &f, 0)) return NULL;
    int too_long = strlen(f) >= sizeof files[0];
    if (!too_long) strcpy(files[i], f);
    free(f);
    if (too_long) return throw_errno(env, ENAMETOOLONG, "watchdogCleanup");
  }
  char *detach_path;
  if (arg_string(env, argv[1], &detach_path, 1)) return NULL;
  if (detach_path && strlen(detach_path) >= sizeof wd_detach_path) {
    free(detach_path);
    return throw_errno(env, ENAMETOOLONG, "watchdogCleanup");
  }
  pthread_mutex_lock(&wd_lock);
  memcpy(wd_abort_files, files, sizeof files);
  snprintf(wd_detach_path, sizeof wd_detach_path, "%s", detach_path ? detach_path : "");
  pthread_mutex_unlock(&wd_lock);
  free(detach_path);
  return undefined(env);
}

/* watchdogDisarm() */
static napi_value js_watchdog_disarm(napi_env env, napi_callback_info info) {
  (void)info;
  pthread_mutex_lock(&wd_lock);
  wd_armed = 0;
  memset(wd_abort_files, 0, sizeof wd_abort_files);
  wd_detach_path[0] = '\0';
  if (wd_started) pthread_cond_signal(&wd_cond);
  pthread_mutex_unlock(&wd_lock);
  return undefined(env);
}

/* ----------------------------------------------------------------- seccomp */

#if defined(__x86_64__)
#define FG_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define FG_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/* ioctl "types" (_IOC_TYPE, bits 8-15 of the command) denied but for the
 * allow-list: 0x12 block devices, 0x4C loop devices, 0x22 SCSI generic. */
#define IOC_TYPE_BLOCK 0x12
#define IOC_TYPE_LOOP 0x4C
#define IOC_TYPE_SG 0x22

/* restrictDeviceIoctls(allowedCmds: number[]): PR_SET_NO_NEW_PRIVS, then a
 * seccomp filter on the calling thread that fails ioctl(2) with EPERM for
 * every block, loop and SG command not in allowedCmds; everything else
 * passes (the unit's own filter still applies). Kept across execve: for the
 * FUSE server, so call it on the thread that execs, just before. */
static napi_value js_restrict_device_ioctls(napi_env env, napi_callback_info info) {
#ifndef FG_AUDIT_ARCH
  (void)info;
  return throw_errno(env, ENOSYS, "seccomp (unknown architecture)");
#else
  GET_ARGS(1);
  uint32_t n;
  if (napi_get_array_length(env, argv[0], &n) != napi_ok || n > 64) {
    napi_throw_type_error(env, NULL, "expected an array of at most 64 ioctl numbers");
    return NULL;
  }
  struct sock_filter prog[16 + 64];
  unsigned k = 0;
#define INS(x) (prog[k++] = (struct sock_filter)x)
  /* A foreign architecture's syscall numbers mean other things: refuse it. */
  INS(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
  INS(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, FG_AUDIT_ARCH, 1, 0));
  INS(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM));
  INS(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
#if defined(__x86_64__)
  /* x32 shares the arch value; its numbers carry this bit (its own ioctl too). */
  INS(BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1));
  INS(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM));
#endif
  INS(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 1, 0));
  INS(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  /* The command is an unsigned int: the low 32 bits of args[1] (little endian). */
  INS(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])));
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    uint32_t cmd;
    napi_get_element(env, argv[0], i, &v);
    if (arg_uint(env, v, &cmd)) return NULL;
    INS(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, cmd, 0, 1));
    INS(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  }
  INS(BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 8));
  INS(BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xff));
  INS(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IOC_TYPE_BLOCK, 3, 0));
  INS(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IOC_TYPE_LOOP, 2, 0));
  INS(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IOC_TYPE_SG, 1, 0));
  INS(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  INS(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM));
#undef INS
  struct sock_fprog fprog = {.len = (unsigned short)k, .filter = prog};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return throw_errno(env, errno, "prctl(PR_SET_NO_NEW_PRIVS)");
  /* prctl, not seccomp(2): the units' SystemCallFilter=@system-service has
   * prctl but not seccomp. It filters this thread only, which is the one
   * that calls execve next; execve ends every other thread. */
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) < 0)
    return throw_errno(env, errno, "prctl(PR_SET_SECCOMP)");
  return undefined(env);
#endif
}

/* ------------------------------------------------------------------- init */

static napi_value init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
#define FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL}
      FN("socketSeqpacket", js_socket_seqpacket),
      FN("socketStream", js_socket_stream),
      FN("socketpairSeqpacket", js_socketpair_seqpacket),
      FN("connect", js_connect),
      FN("bind", js_bind),
      FN("listen", js_listen),
      FN("accept", js_accept),
      FN("sendMsg", js_send_msg),
      FN("recvMsg", js_recv_msg),
      FN("peerCred", js_peer_cred),
      FN("sendDatagram", js_send_datagram),
      FN("memfdCreate", js_memfd_create),
      FN("setfsuid", js_setfsuid),
      FN("setfsgid", js_setfsgid),
      FN("openAs", js_open_as),
      FN("cloexec", js_cloexec),
      FN("dup3", js_dup3),
      FN("closeFromOnExec", js_close_from_on_exec),
      FN("dupAbove", js_dup_above),
      FN("fsopen", js_fsopen),
      FN("fsconfig", js_fsconfig),
      FN("fsmount", js_fsmount),
      FN("moveMount", js_move_mount),
      FN("mount", js_mount),
      FN("umount2", js_umount2),
      FN("execve", js_execve),
      FN("exitNow", js_exit_now),
      FN("blkidProbe", js_blkid_probe),
      FN("loopBacking", js_loop_backing),
      FN("flock", js_flock),
      FN("spawn", js_spawn),
      FN("waitpid", js_waitpid),
      FN("libmountMount", js_libmount_mount),
      FN("refusePassedFds", js_refuse_passed_fds),
      FN("pidfdOpen", js_pidfd_open),
      FN("pidfdSendSignal", js_pidfd_send_signal),
      FN("pollReadable", js_poll_readable),
      FN("watchdogArm", js_watchdog_arm),
      FN("watchdogCleanup", js_watchdog_cleanup),
      FN("watchdogDisarm", js_watchdog_disarm),
      FN("restrictDeviceIoctls", js_restrict_device_ioctls),
#undef FN
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok)
    return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
