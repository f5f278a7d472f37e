#!/bin/sh
# fusegate's mount launcher: what /sbin/mount.fusegate and every intercepted
# /sbin/mount.TYPE point at. It runs the Node helper and, only when that
# cannot run (no node, a Node too old, a missing or corrupt bundle, a crash
# before the helper reached its decision), applies the built-in fail-closed
# rule itself, so that a broken Node never stops a machine from mounting its
# own disks at boot:
#
#   a fixed disk (not a loop device, not removable, not on USB/MMC/memstick/
#   FireWire/Thunderbolt, and nothing of the kind beneath a dm/md device)
#   listed in /etc/fstab with this mountpoint mounts with the kernel driver,
#   as `mount -i -t TYPE` would; anything else is refused with one line.
#   Either is recorded in the journal (or the kernel log).
#
# policy/load.ts failClosedPolicy() is the same rule in TypeScript;
# test/unit/fail-closed-table.test.ts holds both to one table of cases.
#
# "Decided" is signalled by the helper writing one byte to fd 9
# (FUSEGATE_DECIDED_FD): after that its exit status stands, whatever it is.
# POSIX sh only: this runs at boot, before anything else can be trusted.

LIB=${FUSEGATE_LIB_DIR:-/usr/lib/fusegate}
SYSFS=${FUSEGATE_SYSFS:-/sys}
FSTAB=${FUSEGATE_FSTAB:-/etc/fstab}
name=${0##*/}
case $name in mount.*) ;; *) name=mount.fusegate ;; esac

# The Node helper. Its stdout goes to fd 3 (ours); the command substitution
# captures only the marker byte on fd 9, and $? is node's exit status.
if [ "${FUSEGATE_LAUNCHER_FORCE_FALLBACK:-}" = "" ]; then
  # Neither means anything to a mount helper; NODE_EXTRA_CA_CERTS costs ~50 ms.
  unset NODE_OPTIONS NODE_EXTRA_CA_CERTS
  exec 3>&1
  # One fork: the command substitution's subshell becomes node.
  result=$(export FUSEGATE_INVOKED_AS="$name" FUSEGATE_DECIDED_FD=9
    exec node "$LIB/dist/helper/mount.fusegate.js" "$@" 9>&1 1>&3 3>&-)
  code=$?
  exec 3>&-
  [ "$result" = D ] && exit "$code"
  case $code in
    127) why="node was not found" ;;
    126) why="node could not be executed" ;;
    7[0-9]) why="the Node helper could not start (exit $code)" ;;
    *) why="the Node helper failed before deciding (exit $code)" ;;
  esac
else
  why=$FUSEGATE_LAUNCHER_FORCE_FALLBACK
fi

# ---- fail-closed mode -------------------------------------------------------

# The tools below from their Debian places, whatever PATH the caller had.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

# One line to the journal (SYSLOG_IDENTIFIER=fusegate, as the helper's), or
# to the kernel log when there is no journal yet (early boot).
record() {
  if [ -n "${FUSEGATE_KMSG:-}" ]; then
    printf '<4>fusegate: %s\n' "$*" >>"$FUSEGATE_KMSG"
  elif ! logger -t fusegate -p auth.warning -- "$*" 2>/dev/null; then
    { printf '<4>fusegate: %s\n' "$*" >/dev/kmsg; } 2>/dev/null || true
  fi
}

repair="repair: reinstall Node >= 20 and fusegate ('fusegate doctor' says what is missing)"

# Whether sysfs device directory $1 (and everything beneath it) is fixed
# hardware; if not, $not_fixed says why. Names mirror policy/device.ts.
fixed() {
  [ "$2" -le 8 ] || return 0
  fx_disk=$1
  [ -e "$1/partition" ] && fx_disk=${1%/*}
  case ${fx_disk##*/} in loop[0-9]*) not_fixed="${fx_disk##*/} is a loop device"; return 1 ;; esac
  if [ "$(cat "$fx_disk/removable" 2>/dev/null)" = 1 ]; then not_fixed="${fx_disk##*/} is removable"; return 1; fi
  case "$1/" in
    */usb[0-9]*/*) not_fixed="${fx_disk##*/} is on usb"; return 1 ;;
    */mmc[0-9]*/* | */mmc_host/* | */mmcblk[0-9]*/*) not_fixed="${fx_disk##*/} is on mmc"; return 1 ;;
    */memstick[0-9]*/*) not_fixed="${fx_disk##*/} is on memstick"; return 1 ;;
    */fw[0-9]*/* | */firewire/*) not_fixed="${fx_disk##*/} is on ieee1394"; return 1 ;;
    */thunderbolt/* | */domain[0-9]*/*) not_fixed="${fx_disk##*/} is on thunderbolt"; return 1 ;;
  esac
  # A dm or md device is only as fixed as what lies beneath it.
  for fx_lower in "$1"/slaves/*; do
    [ -e "$fx_lower" ] || continue
    fixed "$(readlink -f "$fx_lower")" $(($2 + 1)) || return 1
  done
  return 0
}

# The mount(8) helper command line: SOURCE DIR [-sfnvr] [-N NS] [-o OPTS] [-t TYPE]
src='' dir='' opts='' type='' flags=''
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help)
      echo "Usage: $name SOURCE DIR [-sfnvr] [-o OPTIONS] [-t TYPE]"
      echo "fusegate's launcher, in fail-closed mode: $why."
      echo "Only fixed disks listed in $FSTAB mount (with the kernel driver); $repair."
      exit 0 ;;
    -V | --version) echo "$name: fusegate launcher in fail-closed mode: $why"; exit 0 ;;
    -o) opts=$2; shift ;;
    -o*) opts=${1#-o} ;;
    -t) type=$2; shift ;;
    -t*) type=${1#-t} ;;
    -N) echo "$name: -N is not supported" >&2; exit 1 ;;
    -[sfnvr]*) flags="$flags $1" ;;
    -*) echo "$name: unknown option '$1'" >&2; exit 1 ;;
    *) if [ -z "$src" ]; then src=$1; elif [ -z "$dir" ]; then dir=$1; else echo "$name: too many arguments" >&2; exit 1; fi ;;
  esac
  shift
done
[ -n "$src" ] && [ -n "$dir" ] || { echo "$name: need SOURCE and DIR" >&2; exit 1; }

# The type the kernel driver gets: -t fusegate.TYPE, else our name (mount.ext4), else probed.
case $type in fusegate.?*) type=${type#fusegate.} ;; fusegate | auto) type='' ;; esac
if [ -z "$type" ]; then
  case $name in mount.fusegate) ;; *) type=${name#mount.} ;; esac
fi

refuse() {
  echo "$name: $src on $dir refused: $1 ($why; only fixed disks listed in $FSTAB mount without the helper); $repair" >&2
  record "launcher fail-closed: refused $src on $dir: $1 ($why)"
  exit 32
}

[ -b "$src" ] || refuse "$src is not a block device"
majmin=$(stat -L -c '%t %T' "$src") || refuse "cannot stat $src"
set -- $majmin
devdir=$(readlink -f "$SYSFS/dev/block/$((0x$1)):$((0x$2))")
[ -n "$devdir" ] && [ -d "$devdir" ] || refuse "$src is not in $SYSFS"
not_fixed=''
fixed "$devdir" 0 || refuse "$not_fixed"
findmnt --tab-file "$FSTAB" --evaluate --noheadings --source "$src" --mountpoint "$dir" >/dev/null 2>&1 \
  || refuse "$src is not listed in $FSTAB with mountpoint $dir"
[ -n "$type" ] || type=$(blkid -p -s TYPE -o value "$src") || refuse "cannot tell the filesystem type of $src"

record "launcher fail-closed: $src on $dir ($type) is a fixed disk listed in $FSTAB: kernel driver ($why)"
echo "$name: $why; $src is a fixed disk listed in $FSTAB: mounting it with the kernel driver; $repair" >&2
# shellcheck disable=SC2086 # $flags is a list of single-letter options
exec mount -i -t "$type" $flags ${opts:+-o "$opts"} "$src" "$dir"
