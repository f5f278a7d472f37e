#!/usr/bin/env python3
"""FAKE FUSE service for fusegate's tests, started per connection by
`systemd-socket-activate --seqpacket --accept` (connection on fd 3).

It speaks the server side of libfuse's service-mount protocol v1 written
straight from docs/protocol.md with struct.pack -- it shares no code with
fusegate's TypeScript codec, so the two ends cannot drift together. It checks
every message the helper sends, then (mode "ok") mounts and serves a tiny
read-only FUSE filesystem (INIT, STATFS, GETATTR of the root) on the /dev/fuse
fd it received, until the kernel says the mount is gone.

FAKE_MODE picks a misbehaviour, to prove the helper refuses it:
  ok               behave
  wrong-mntp       ask for a mountpoint that is not the helper's
  open-other       ask to open /etc/shadow instead of the source
  extra-fd         attach an fd to TYPE
  oversize         send a NAME larger than 65536 bytes
  out-of-order     send NAME before TYPE
  doit-twice       send DOIT twice
  die-before-byee  exit right after the mount, without BYEE
  hang             never answer after the mount
  hang-serving     say BYEE(0), then never answer FUSE requests
  ignore-destroy   behave, but never answer DESTROY (a fuseblk unmount waits for it)
  slow-exit        behave, but linger FAKE_EXIT_DELAY seconds after the
                   unmount before exiting, like a server flushing its data
  fuseblk          behave, but ask for a fuseblk mount (TYPE with FUSEBLK)
  mtab-unit        claim fusegate's utab field: MTAB x-fusegate.unit=…
  mtab-n           send libfuse's -n in MTAB (no utab entry for the server)
FAKE_LOG, when set, names a file that gets one JSON line of what the helper sent.
"""
import errno
import json
import os
import socket
import stat
import struct
import sys
import time

MAGIC = {n: int.from_bytes(n.encode(), 'big') for n in
         ['SAFT', 'LAST', 'FILE', 'OPEN', 'BDEV', 'TYPE', 'NAME', 'MNTP',
          'OPTS', 'MTAB', 'DOIT', 'REPL', 'BYEE', 'ARGS']}
NAMES = {v: k for k, v in MAGIC.items()}
S_IFDIR = 0o040000

log = {'mode': os.environ.get('FAKE_MODE', 'ok'), 'errors': []}


def fail(why):
    log['errors'].append(why)
    write_log()
    sys.exit(3)


def write_log():
    path = os.environ.get('FAKE_LOG')
    if path:
        with open(path, 'a') as f:
            f.write(json.dumps(log) + '\n')


def send(sock, data, fds=()):
    socket.send_fds(sock, [data], list(fds)) if fds else sock.send(data)


def recv(sock, want_fd=False):
    data, fds, flags, _ = socket.recv_fds(sock, 65537, 1, socket.MSG_CMSG_CLOEXEC)
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        fail('truncated message from helper')
    if len(data) < 4:
        fail('helper sent %d bytes' % len(data))
    if bool(fds) != want_fd:
        fail('fd rule broken for %s' % NAMES.get(struct.unpack('>I', data[:4])[0]))
    return data, (fds[0] if fds else -1)


def recv_file(sock, expected_path):
    data, fd = recv(sock, want_fd=True)
    magic, err = struct.unpack_from('>II', data)
    if magic != MAGIC['FILE'] or data[-1] != 0:
        fail('bad FILE')
    path = data[8:-1].decode()
    if path != expected_path or err != 0:
        fail('FILE %r error %d, wanted %r' % (path, err, expected_path))
    return fd


def recv_file_error(sock, expected_path):
    data, _ = recv(sock, want_fd=False)
    magic, err = struct.unpack_from('>II', data)
    if magic != MAGIC['FILE'] or data[8:-1].decode() != expected_path:
        fail('bad FILE reply')
    return err


def read_argv(fd):
    buf = os.pread(fd, 1 << 20, 0)
    magic, argc = struct.unpack_from('>II', buf)
    if magic != MAGIC['ARGS']:
        fail('argv memfd magic')
    args = []
    for i in range(argc):
        pos, length = struct.unpack_from('>II', buf, 8 + 8 * i)
        if buf[pos + length - 1] != 0:  # len counts the NUL
            fail('argv string not NUL-terminated')
        args.append(buf[pos:pos + length - 1].decode())
    return args


def command(sock, name, body=b'', fds=()):
    """Sends one command and returns the errno of the REPL that answers it."""
    send(sock, struct.pack('>I', MAGIC[name]) + body, fds)
    data, _ = recv(sock)
    magic, err = struct.unpack('>II', data)
    if magic != MAGIC['REPL']:
        fail('expected REPL after %s' % name)
    log.setdefault('replies', []).append([name, err])
    return err


def cstr(s):
    return s.encode() + b'\0'


def bye(sock, code):
    send(sock, struct.pack('>II', MAGIC['BYEE'], code))


# ----------------------------------------------------------------- FUSE side

def fuse_reply(fd, unique, err, payload=b''):
    os.write(fd, struct.pack('<IiQ', 16 + len(payload), err, unique) + payload)


def serve_fuse(fd, answer=True):
    while True:
        try:
            buf = os.read(fd, (1 << 20) + 4096)
        except OSError as e:
            if e.errno == errno.ENODEV:  # unmounted: the connection is gone
                return
            if e.errno in (errno.EINTR, errno.ENOENT, errno.EAGAIN):
                continue
            raise
        if not answer:
            continue
        _len, opcode, unique = struct.unpack_from('<IIQ', buf)
        if opcode == 26:  # INIT
            _major, _minor, readahead, _flags = struct.unpack_from('<IIII', buf, 40)
            out = struct.pack('<IIIIHHIIHHII', 7, 31, readahead, 0, 16, 12, 4096, 1, 0, 0, 0, 0) + bytes(24)
            fuse_reply(fd, unique, 0, out)
        elif opcode == 17:  # STATFS
            fuse_reply(fd, unique, 0, struct.pack('<QQQQQIIII', 1000, 500, 500, 100, 50, 4096, 255, 4096, 0) + bytes(24))
        elif opcode == 3:  # GETATTR: only the root exists
            attr = struct.pack('<QQQQQQIIIIIIIIII', 1, 0, 0, 0, 0, 0, 0, 0, 0, S_IFDIR | 0o755, 2, 0, 0, 0, 4096, 0)
            fuse_reply(fd, unique, 0, struct.pack('<QII', 1, 0, 0) + attr)
        elif opcode in (2, 42):  # FORGET, BATCH_FORGET: no reply
            continue
        elif opcode == 38 and log['mode'] == 'ignore-destroy':  # DESTROY (fuseblk's unmount waits for it)
            continue
        else:
            fuse_reply(fd, unique, -errno.ENOSYS)


# --------------------------------------------------------------- conversation

def main():
    mode = log['mode']
    sock = socket.socket(fileno=3)

    data, _ = recv(sock)
    if len(data) != 12:
        fail('SAFT size %d' % len(data))
    magic, vmin, vmax, flags = struct.unpack('>IHHI', data)
    if magic != MAGIC['SAFT'] or not vmin <= 1 <= vmax or flags & ~3:
        fail('bad SAFT')
    log['hello_flags'] = flags
    send(sock, struct.pack('>IHH', MAGIC['LAST'], 1, 0))

    argv_fd = recv_file(sock, 'argv')
    args = read_argv(argv_fd)
    log['argv'] = args
    fuse_fd = recv_file(sock, 'fusedev')
    log['fusedev_is_char'] = stat.S_ISCHR(os.fstat(fuse_fd).st_mode)
    source, mountpoint = args[1], args[2]

    if mode == 'open-other':
        err = recv_file_error_after(sock, 'OPEN', '/etc/shadow')
        log['open_other_error'] = err
        write_log()  # before BYEE: the helper returns as soon as it reads it
        bye(sock, 1)
        return
    is_block = stat.S_ISBLK(os.stat(source).st_mode)
    kind = 'BDEV' if is_block else 'OPEN'
    send(sock, struct.pack('>IIIII', MAGIC[kind], os.O_RDONLY, 0, 0, 0) + cstr(source))
    src_fd = recv_file(sock, source)
    log['source_head'] = os.pread(src_fd, 16, 1024 + 56).hex()  # ext2/3/4 magic at 1080

    if mode == 'extra-fd':
        try:
            command(sock, 'TYPE', struct.pack('>I', 0), fds=[src_fd])
        except PermissionError as e:  # the helper's socket refuses fds (SO_PASSRIGHTS off)
            log['extra_fd_error'] = errno.errorcode[e.errno]
            write_log()
        return
    if mode == 'oversize':
        send(sock, struct.pack('>I', MAGIC['NAME']) + b'a' * 70000 + b'\0')
        time.sleep(5)
        return
    if mode == 'out-of-order':
        command(sock, 'NAME', cstr(source))
        return

    steps = [
        # fuseblk (FSOPEN flag 1) where the kernel then sends DESTROY at unmount
        ('TYPE', struct.pack('>I', 1 if mode == 'fuseblk' or (mode == 'ignore-destroy' and is_block) else 0)),
        ('NAME', cstr(source)),
        ('MNTP', struct.pack('>HH', S_IFDIR, 0) + cstr('/tmp/elsewhere' if mode == 'wrong-mntp' else mountpoint)),
        ('OPTS', cstr('default_permissions,allow_other')),
        ('MTAB', cstr({'mtab-unit': 'x-fusegate.unit=sshd.service', 'mtab-n': 'x-fake.mode=mtab-n,-n'}
                      .get(mode, 'x-fake.mode=' + mode))),
        ('DOIT', struct.pack('>I', 0)),
    ]
    for name, body in steps:
        if command(sock, name, body) != 0:
            write_log()
            bye(sock, 1)
            return
    if mode == 'doit-twice':
        command(sock, 'DOIT', struct.pack('>I', 0))
        return
    if mode == 'die-before-byee':
        write_log()
        os._exit(1)
    if mode == 'hang':
        write_log()
        time.sleep(3600)
    write_log()
    bye(sock, 0)
    serve_fuse(fuse_fd, answer=(mode != 'hang-serving'))
    if mode == 'slow-exit':
        time.sleep(float(os.environ.get('FAKE_EXIT_DELAY', '1.5')))


def recv_file_error_after(sock, kind, path):
    send(sock, struct.pack('>IIIII', MAGIC[kind], os.O_RDONLY, 0, 0, 0) + cstr(path))
    return recv_file_error(sock, path)


if __name__ == '__main__':
    main()
