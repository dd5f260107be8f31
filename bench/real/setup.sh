#!/bin/bash
# relpoline real-program benchmarks: one-time setup.
#  - adds a deb-src entry matching the existing bookworm mirror (idempotent)
#  - installs the load generators and build tools from Debian
#  - fetches the source packages with `apt-get source` into build/real/src
#    (redis, nginx, sqlite3, and leveldb in a block of its own)
# Nothing is fetched from anywhere but the configured Debian mirrors.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SRC=$ROOT/build/real/src
mkdir -p "$SRC"
log() { echo "[bench-setup] $*" >&2; }
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo

# ---- deb-src -----------------------------------------------------------
have_debsrc() {
	grep -rqsE '^[[:space:]]*deb-src[[:space:]].*bookworm' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null && return 0
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk 'BEGIN{RS="";t=0;s=0} {t=($0 ~ /Types:[^\n]*deb-src/); s=($0 ~ /Suites:[^\n]*bookworm([ \n]|$)/); if (t&&s) f=1} END{exit !f}' "$f" && return 0
	done
	return 1
}
debsrc_added=no
if have_debsrc; then
	log "deb-src for bookworm already configured"
else
	out=/etc/apt/sources.list.d/relpoline-bench-src.sources
	tmp=$(mktemp)
	# deb822 files: copy every enabled stanza whose URIs point at a Debian
	# archive (debian or debian-security) and turn Types: deb into deb-src.
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk 'BEGIN{RS="";ORS="\n\n"}
		     /Types:[^\n]*deb/ && /Suites:[^\n]*bookworm/ && /URIs:[^\n]*\/debian(-security)?\/?([ \n]|$)/ && !/Enabled:[ ]*no/ {
		        s=$0; gsub(/Types:[^\n]*/, "Types: deb-src", s); print s }' "$f" >> "$tmp"
	done
	# one-line sources.list entries
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		grep -E '^[[:space:]]*deb[[:space:]].*/debian(-security)?/?[[:space:]]+bookworm' "$f" |
			sed -E 's/^[[:space:]]*deb[[:space:]]/deb-src /' > "$tmp.list" || true
		if [ -s "$tmp.list" ]; then cat "$tmp.list" >> /etc/apt/sources.list.d/relpoline-bench-src.list.new; fi
		rm -f "$tmp.list"
	done
	if [ -s "$tmp" ]; then $SUDO install -m 644 "$tmp" "$out"; log "added $out"; debsrc_added=yes; fi
	if [ -f /etc/apt/sources.list.d/relpoline-bench-src.list.new ]; then
		sort -u /etc/apt/sources.list.d/relpoline-bench-src.list.new | $SUDO tee /etc/apt/sources.list.d/relpoline-bench-src.list >/dev/null
		rm -f /etc/apt/sources.list.d/relpoline-bench-src.list.new
		log "added /etc/apt/sources.list.d/relpoline-bench-src.list"; debsrc_added=yes
	fi
	rm -f "$tmp"
	[ $debsrc_added = yes ] || { log "no bookworm Debian mirror line found to derive deb-src from"; exit 1; }
fi

# ---- packages ------------------------------------------------------------
PKGS="dpkg-dev redis-tools wrk tcl gnuplot-nox util-linux"
need_install=no
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || need_install=yes; done
stamp=$ROOT/build/real/.apt-updated
if [ $debsrc_added = yes ] || [ ! -f "$stamp" ] || [ $need_install = yes ]; then
	log "apt-get update"
	$SUDO apt-get update -q >/dev/null
	touch "$stamp"
fi
if [ $need_install = yes ]; then
	log "apt-get install $PKGS"
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $PKGS >/dev/null
fi

# ---- sources -------------------------------------------------------------
cd "$SRC"
for pkg in redis nginx sqlite3; do
	if ls -d "$SRC/$pkg"-[0-9]*/ >/dev/null 2>&1; then
		log "source $pkg present: $(ls -d "$SRC/$pkg"-[0-9]*/ | head -1)"
		continue
	fi
	log "apt-get source $pkg"
	apt-get source -q "$pkg/bookworm" >/dev/null 2>"$SRC/$pkg.source.log" ||
		apt-get source -q "$pkg" >/dev/null 2>>"$SRC/$pkg.source.log" ||
		{ cat "$SRC/$pkg.source.log" >&2; exit 1; }
done
for pkg in redis nginx sqlite3; do
	d=$(ls -d "$SRC/$pkg"-[0-9]*/ | head -1); d=${d%/}
	ln -sfn "$(basename "$d")" "$SRC/$pkg"
	echo "$pkg $(basename "$d" | sed "s/^$pkg-//")"
done > "$SRC/versions.txt"
# leveldb (db_bench, a C++ program built with CMake): its own block, same steps
for p in cmake g++ libgmock-dev; do dpkg -s "$p" >/dev/null 2>&1 || { log "apt-get install $p"; $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$p" >/dev/null; }; done
ls -d "$SRC"/leveldb-[0-9]*/ >/dev/null 2>&1 || { log "apt-get source leveldb"; apt-get source -q leveldb/bookworm >/dev/null 2>"$SRC/leveldb.source.log" || { cat "$SRC/leveldb.source.log" >&2; exit 1; }; }
d=$(ls -d "$SRC"/leveldb-[0-9]*/ | head -1); d=${d%/}; ln -sfn "$(basename "$d")" "$SRC/leveldb"; echo "leveldb ${d##*/leveldb-}" >> "$SRC/versions.txt"
log "versions: $(tr '\n' ' ' < "$SRC/versions.txt")"

# CPython 3.11 (build deps, apt-get source python3.11): its own script
bash "$ROOT/bench/real/python/setup.sh"
