#!/bin/bash
# FAKE sandbox for host tests, standing in for the systemd unit's sandbox
# where systemd is not PID 1: a private mount namespace (slave, so the host's
# umount reaches it) whose /dev holds only null, zero, full, random and
# urandom, a private TMPDIR (not over /tmp: the checkout under test may live
# there), then the command as nobody with no capabilities and no_new_privs.
# The real unit is tested on a real systemd in test/e2e.
# usage: fake_sandbox.sh COMMAND [ARGS...]   (started by systemd-socket-activate)
set -euo pipefail
# Only a mountpoint on the host: the tmpfs on it exists in the namespace alone.
PRIVATE_TMP=/run/fusegate-fake-sandbox-tmp
mkdir -p "$PRIVATE_TMP"
export TMPDIR=$PRIVATE_TMP
exec unshare --mount --propagation slave -- /bin/bash -c '
set -euo pipefail
mount -t tmpfs -o mode=0755,nosuid,noexec,size=64k fake-sandbox-dev /dev
for n in null:3 zero:5 full:7 random:8 urandom:9; do mknod -m 0666 "/dev/${n%%:*}" c 1 "${n##*:}"; done
ln -s /proc/self/fd /dev/fd
mount -t tmpfs -o mode=1777,nosuid,nodev,size=4m fake-sandbox-tmp "$TMPDIR"
exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs -- "$@"
' fake_sandbox "$@"
