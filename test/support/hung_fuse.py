#!/usr/bin/env python3
"""A FUSE server that never answers LOOKUP, for the helper's watchdog test.

    hung_fuse.py MOUNTPOINT

Opens /dev/fuse, mounts it on MOUNTPOINT with mount(8) (-i: no helper),
prints "ready", then answers INIT, GETATTR of the root and STATFS, and reads
every other request without answering it: a stat() of any name inside waits
forever (until the mount is aborted or this process dies).
"""
import errno
import os
import struct
import subprocess
import sys

S_IFDIR = 0o040000


def reply(fd, unique, err, payload=b''):
    os.write(fd, struct.pack('<IiQ', 16 + len(payload), err, unique) + payload)


def main():
    mnt = sys.argv[1]
    fd = os.open('/dev/fuse', os.O_RDWR)
    subprocess.run(['mount', '-i', '-t', 'fuse.hung', '-o', f'fd={fd},rootmode=40000,user_id=0,group_id=0',
                    'hung', mnt], pass_fds=[fd], check=True)
    print('ready', flush=True)
    while True:
        try:
            buf = os.read(fd, (1 << 20) + 4096)
        except OSError as e:
            if e.errno == errno.ENODEV:  # unmounted or aborted
                return
            if e.errno in (errno.EINTR, errno.ENOENT, errno.EAGAIN):
                continue
            raise
        _len, opcode, unique = struct.unpack_from('<IIQ', buf)
        if opcode == 26:  # INIT
            _major, _minor, readahead, _flags = struct.unpack_from('<IIII', buf, 40)
            reply(fd, unique, 0, struct.pack('<IIIIHHIIHHII', 7, 31, readahead, 0, 16, 12, 4096, 1, 0, 0, 0, 0) + bytes(24))
        elif opcode == 3:  # GETATTR: the root
            attr = struct.pack('<QQQQQQIIIIIIIIII', 1, 0, 0, 0, 0, 0, 0, 0, 0, S_IFDIR | 0o755, 2, 0, 0, 0, 4096, 0)
            reply(fd, unique, 0, struct.pack('<QII', 1, 0, 0) + attr)
        elif opcode == 17:  # STATFS
            reply(fd, unique, 0, struct.pack('<QQQQQIIII', 1000, 500, 500, 100, 50, 4096, 255, 4096, 0) + bytes(24))
        elif opcode in (2, 42):  # FORGET, BATCH_FORGET: no reply
            continue
        elif opcode == 1:  # LOOKUP: never answered
            continue
        else:
            reply(fd, unique, -errno.ENOSYS)


if __name__ == '__main__':
    main()
