#!/bin/bash
# CPython part of bench/real/setup.sh (called at its end, after the deb-src
# entry and apt-get update are done there):
#  - the Debian packages the build needs: a compiler, zlib1g-dev (the zlib
#    module, which test_zlib in tests/real/check-python.sh exercises) and
#    libexpat1-dev (pyexpat, built in: see build.sh; regrtest's --junit-xml
#    needs it).  The benchmark scripts need no extension module at all.
#    Nothing else (no OpenSSL, libffi, Tk, readline): those modules are
#    simply not built.
#  - `apt-get source python3.11` into build/real/src (symlink python3.11 ->
#    python3.11-3.11.x) and its line in build/real/src/versions.txt
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
SRC=$ROOT/build/real/src
mkdir -p "$SRC"
log() { echo "[bench-setup] $*" >&2; }
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo

PKGS="dpkg-dev build-essential zlib1g-dev libexpat1-dev"
missing=
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
	log "apt-get install$missing"
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null
fi

pkg=python3.11
cd "$SRC"
if ls -d "$SRC/$pkg"-[0-9]*/ >/dev/null 2>&1; then
	log "source $pkg present: $(ls -d "$SRC/$pkg"-[0-9]*/ | head -1)"
else
	log "apt-get source $pkg"
	apt-get source -q "$pkg/bookworm" >/dev/null 2>"$SRC/$pkg.source.log" ||
		apt-get source -q "$pkg" >/dev/null 2>>"$SRC/$pkg.source.log" ||
		{ cat "$SRC/$pkg.source.log" >&2; exit 1; }
fi
d=$(ls -d "$SRC/$pkg"-[0-9]*/ | head -1); d=${d%/}
ln -sfn "$(basename "$d")" "$SRC/$pkg"
v=$(basename "$d"); v=${v#"$pkg"-}
# one line per package; rewrite ours only if it changed (the file is part of
# every build's cache key)
if ! grep -qxF "$pkg $v" "$SRC/versions.txt" 2>/dev/null; then
	{ grep -v "^$pkg " "$SRC/versions.txt" 2>/dev/null || true; echo "$pkg $v"; } > "$SRC/versions.txt.new"
	mv "$SRC/versions.txt.new" "$SRC/versions.txt"
fi
log "python source: $v"
