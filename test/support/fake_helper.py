#!/usr/bin/env python3
"""FAKE mount helper for fusegate's tests: the client side of libfuse's
service-mount protocol v1, written straight from docs/protocol.md with
struct.pack. It shares no code with fusegate's TypeScript, so a drift in the
adapter shows up here.

It connects to SOCKET, checks every message the service sends (sizes,
padding, NUL termination, order, flags), answers like libfuse's
fuservicemount3 would, and performs the mount itself with mount(2):

  fake_helper.py SOCKET SOURCE MOUNTPOINT [OPTIONS]

Prints one JSON line describing what the service sent; exits 0 when the
service said BYEE(0) after a mount it asked for, 1 otherwise.
"""
import ctypes
import errno
import json
import os
import socket
import stat
import struct
import sys

MAGIC = {n: int.from_bytes(n.encode(), 'big') for n in
         ['SAFT', 'LAST', 'FILE', 'OPEN', 'BDEV', 'TYPE', 'NAME', 'MNTP',
          'OPTS', 'MTAB', 'DOIT', 'REPL', 'BYEE', 'ARGS']}
NAMES = {v: k for k, v in MAGIC.items()}
S_IFDIR, S_IFREG = 0o040000, 0o100000
MS_ALLOWED = 1 | 2 | 4 | 8 | 16 | 128 | 1024 | 2048 | (1 << 21) | (1 << 24)

libc = ctypes.CDLL(None, use_errno=True)
report = {'sent': [], 'errors': []}


def fail(why):
    report['errors'].append(why)
    print(json.dumps(report))
    sys.exit(1)


def recv(sock):
    data, fds, flags, _ = socket.recv_fds(sock, 65537, 1, socket.MSG_CMSG_CLOEXEC)
    if fds:
        fail('the service sent an fd with %r' % data[:4])
    if flags & socket.MSG_TRUNC or len(data) > 65536:
        fail('oversize message')
    if len(data) < 4:
        fail('service hung up' if not data else 'short message')
    name = NAMES.get(struct.unpack_from('>I', data)[0])
    if name is None:
        fail('unknown magic %r' % data[:4])
    report['sent'].append(name)
    return name, data


def string_body(name, data, offset):
    body = data[offset:]
    if not body or body[-1] != 0 or 0 in body[:-1]:
        fail('%s string is not exactly NUL-terminated' % name)
    return body[:-1].decode()


def memfd_argv(args):
    fd = os.memfd_create('fuse service argv', os.MFD_CLOEXEC)
    strings = [a.encode() + b'\0' for a in args]
    pos = 8 + 8 * len(args)
    table = b''
    for s in strings:
        table += struct.pack('>II', pos, len(s))  # len counts the NUL
        pos += len(s)
    os.write(fd, struct.pack('>II', MAGIC['ARGS'], len(args)) + table + b''.join(strings))
    return fd


def reply(sock, err):
    sock.send(struct.pack('>II', MAGIC['REPL'], err))


def main():
    sock_path, source, mountpoint = sys.argv[1:4]
    options = sys.argv[4] if len(sys.argv) > 4 else ''
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.connect(sock_path)

    sock.send(struct.pack('>IHHI', MAGIC['SAFT'], 1, 1, 1))  # ALLOW_OTHER
    name, data = recv(sock)
    if name != 'LAST' or len(data) != 8:
        fail('expected an 8-byte LAST, got %s of %d' % (name, len(data)))
    _, version, padding = struct.unpack('>IHH', data)
    if version != 1 or padding != 0:
        fail('LAST version %d padding %d' % (version, padding))

    args = ['fuse2fs', source, mountpoint] + (['-o', options] if options else [])
    argv_fd = memfd_argv(args)
    socket.send_fds(sock, [struct.pack('>II', MAGIC['FILE'], 0) + b'argv\0'], [argv_fd])
    fuse_fd = os.open('/dev/fuse', os.O_RDWR | os.O_CLOEXEC)
    socket.send_fds(sock, [struct.pack('>II', MAGIC['FILE'], 0) + b'fusedev\0'], [fuse_fd])

    state = {'fsopen': None, 'source': None, 'mntp': None, 'opts': '', 'mounted': False}
    while True:
        name, data = recv(sock)
        if name in ('OPEN', 'BDEV'):
            if len(data) < 22:
                fail('%s too short' % name)
            oflags, mode, rflags, _bs = struct.unpack_from('>IIII', data, 4)
            path = string_body(name, data, 20)
            if rflags & ~1:
                fail('unknown request flags')
            if path != source:
                socket.send_fds(sock, [struct.pack('>II', MAGIC['FILE'], errno.EPERM) + path.encode() + b'\0'], [])
                continue
            fd = os.open(path, oflags | os.O_CLOEXEC, mode)
            if name == 'BDEV' and not stat.S_ISBLK(os.fstat(fd).st_mode):
                os.close(fd)
                sock.send(struct.pack('>II', MAGIC['FILE'], 15) + path.encode() + b'\0')  # ENOTBLK
                continue
            socket.send_fds(sock, [struct.pack('>II', MAGIC['FILE'], 0) + path.encode() + b'\0'], [fd])
            os.close(fd)
            report.setdefault('opened', []).append([name, path, oflags])
        elif name == 'TYPE':
            if len(data) != 8 or struct.unpack('>II', data)[1] & ~1 or state['fsopen'] is not None:
                fail('bad TYPE')
            state['fsopen'] = struct.unpack('>II', data)[1]
            reply(sock, 0)
        elif name == 'NAME':
            state['source'] = string_body(name, data, 4)
            reply(sock, 0)
        elif name == 'MNTP':
            fmt, padding = struct.unpack_from('>HH', data, 4)
            path = string_body(name, data, 8)
            if padding != 0 or fmt not in (0, S_IFDIR, S_IFREG):
                fail('bad MNTP header')
            if path not in args:
                reply(sock, errno.EINVAL)
                continue
            state['mntp'] = path
            reply(sock, 0)
        elif name in ('OPTS', 'MTAB'):
            value = string_body(name, data, 4)
            report[name.lower()] = value
            if name == 'OPTS':
                state['opts'] = value
            reply(sock, 0)
        elif name == 'DOIT':
            if len(data) != 8 or state['source'] is None or state['mntp'] is None:
                fail('DOIT before NAME and MNTP')
            ms_flags = struct.unpack('>II', data)[1]
            if ms_flags & ~MS_ALLOWED:
                fail('DOIT flags 0x%x' % ms_flags)
            report['ms_flags'] = ms_flags
            opts = ','.join(filter(None, [state['opts'], 'fd=%d' % fuse_fd, 'rootmode=40000',
                                          'user_id=0', 'group_id=0']))
            rc = libc.mount(state['source'].encode(), state['mntp'].encode(), b'fuse.fuse2fs',
                            ctypes.c_ulong(ms_flags), opts.encode())
            err = ctypes.get_errno() if rc != 0 else 0
            state['mounted'] = rc == 0
            reply(sock, err)
        elif name == 'BYEE':
            if len(data) != 8:
                fail('bad BYEE')
            code = struct.unpack('>II', data)[1]
            report['bye'] = code
            print(json.dumps(report))
            sys.exit(0 if code == 0 and state['mounted'] else 1)
        else:
            fail('unexpected %s' % name)


if __name__ == '__main__':
    main()
