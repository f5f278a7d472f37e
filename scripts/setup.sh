#!/bin/sh
# Everything a fresh Debian 12 machine (root, with Node 20 and git) needs
# before `npm run demo` or `npm test`: the Debian packages, the npm
# dependencies with the C addon built against this machine's Node headers,
# and the build. Safe to run again: each step is skipped when already done.
#
#   scripts/setup.sh && npm run demo
#   scripts/setup.sh && npm test
set -eu
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: %s\n' "$1" >&2; [ -z "${2:-}" ] || printf 'setup: %s\n' "$2" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs Debian packages; the tests mount filesystems and boot containers)" \
  "run it with sudo, or as root"
command -v node >/dev/null 2>&1 || die "no node in PATH" "install Node 20 or later (Debian 12's own nodejs is 18, too old)"
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || die "node $(node -v) is too old" "install Node 20 or later (Debian 12's own nodejs is 18)"
command -v npm >/dev/null 2>&1 || die "no npm in PATH" "install npm alongside Node 20"
[ -f /usr/include/node/node_api.h ] || die "no Node headers in /usr/include/node (the addon builds against them)" \
  "install the Node 20 package that ships them (NodeSource's nodejs does)"

# The Debian packages, from the one list.
missing=
for pkg in $(sed -e 's/#.*//' scripts/debian-packages.txt); do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  say "installing Debian packages:$missing"
  apt-get update -qq
  # shellcheck disable=SC2086 # a list of package names
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi

# npm ci, unless node_modules already matches the lock file and the addon is built from the current C sources.
# npm_config_nodedir: the addon builds against the machine's own headers, no download.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
  || [ ! -f build/Release/fusegate_native.node ] || [ ! -f build/Release/fdmap-preload.so ] \
  || [ lib/native/fusegate_native.c -nt build/Release/fusegate_native.node ] \
  || [ sandbox/native/fdmap-preload.c -nt build/Release/fdmap-preload.so ]; then
  say "npm ci (builds the C addon)"
  npm_config_nodedir=/usr npm ci --no-audit --no-fund
fi

say "npm run build"
npm run --silent build
say "ready: npm run demo, npm test"
