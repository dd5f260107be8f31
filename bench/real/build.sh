#!/bin/bash
# Build one benchmark program in one configuration, out of tree, cached.
#   bench/real/build.sh PROG CONFIG
# PROG:   redis | nginx | sqlite | phase | leveldb
# CONFIG: plain | retpoline | relpoline | relpoline-jt | pgo-gen | pgo-retpoline
#   (relpoline-indirect uses the relpoline build; pgo-retpoline needs the
#    pgo-gen build to have been trained first: see run.py, which drives it)
# Results: build/real/PROG/CONFIG/  (binary path printed on stdout)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/real
SRC=$ROOT/build/real/src
OUT=$ROOT/build/real
PROF=$OUT/profiles
prog=$1 cfg=$2
JOBS=${BENCH_JOBS:-2}
log() { echo "[bench-build] $prog/$cfg: $*" >&2; }

# Bump when a build recipe below changes in a way that needs a rebuild.
RECIPE=1
RETPO="-mindirect-branch=thunk -fno-jump-tables"
CC=gcc
case $cfg in
plain)         CF="-O2"; LF="" ;;
retpoline)     CF="-O2 $RETPO"; LF="" ;;
relpoline)     CC=$ROOT/build/bin/relpoline-cc; CF="-O2"; LF=""
               [ -x "$CC" ] || { log "missing $CC (run make first)"; exit 3; } ;;
relpoline-jt)  CC=$ROOT/build/bin/relpoline-cc; CF="-O2"; LF=""
               export RELPOLINE_JUMP_TABLES=1
               [ -x "$CC" ] || { log "missing $CC (run make first)"; exit 3; } ;;
pgo-gen)       CF="-O2 $RETPO -fprofile-generate=$PROF/$prog -fprofile-update=atomic"
               LF="-fprofile-generate=$PROF/$prog" ;;
pgo-retpoline) CF="-O2 $RETPO -fprofile-use=$PROF/$prog"
               LF=""
               [ -n "$(find "$PROF/$prog" -name '*.gcda' -print -quit 2>/dev/null)" ] ||
                   { log "no profile in $PROF/$prog (train pgo-gen first)"; exit 3; } ;;
*) echo "unknown config $cfg" >&2; exit 2 ;;
esac
# pgo-gen and pgo-retpoline must compile the same object paths: share a dir.
dircfg=$cfg; [ $cfg = pgo-gen ] && dircfg=pgo-retpoline
D=$OUT/$prog/$dircfg
mkdir -p "$D"

# Cache key: flags, compiler, sources, and (for relpoline) the module object
# and wrapper that get linked in.  The profile counts for pgo-retpoline.
key() {
	{
		if [ $prog = python ]; then echo "python recipe 2"; fi
		echo "$prog $cfg $CC $CF $LF"
		"${CC}" --version 2>/dev/null | head -1
		echo "recipe $RECIPE"
		if [ $prog = leveldb ]; then echo "leveldb recipe 1"; fi
		cat "$SRC/versions.txt" 2>/dev/null
		if [ $cfg = relpoline ] || [ $cfg = relpoline-jt ]; then sha1sum "$ROOT/build/bin/relpoline-cc" "$ROOT/build/lib/relpoline-module.o" 2>/dev/null || true; fi
		if [ $prog = phase ]; then sha1sum "$HERE/phase/phase.c"; fi
		if [ $cfg = pgo-retpoline ]; then cat "$PROF/$prog/.trained" 2>/dev/null || true; fi
	} | sha1sum | cut -d' ' -f1
}
K=$(key)
if [ "${3:-}" = --key ]; then echo "$K"; exit 0; fi
case $prog in
leveldb) BIN=$D/build/db_bench ;;
redis)  BIN=$D/src/redis-server ;;
nginx)  BIN=$D/objs/nginx ;;
sqlite) BIN=$D/speedtest1 ;;
phase)  BIN=$D/phase ;;
python) BIN=$D/python ;;
*) echo "unknown program $prog" >&2; exit 2 ;;
esac
if [ -x "$BIN" ] && [ "$(cat "$D/.stamp-$cfg" 2>/dev/null)" = "$K" ] && [ "$(cat "$D/.last" 2>/dev/null)" = "$cfg" ]; then
	echo "$BIN"; exit 0
fi
log "building (CC=$CC CFLAGS=$CF)"
rm -f "$D/.stamp-"* "$D/.last"
blog=$D/build-$cfg.log
: > "$blog"
cmds=$D/build-$cfg.cmds
: > "$cmds"
run() {
	printf '(cd %q &&' "$PWD" >> "$cmds"; printf ' %q' "$@" >> "$cmds"; echo ')' >> "$cmds"
	nice -n 10 "$@" >>"$blog" 2>&1 || { log "FAILED, see $blog"; tail -30 "$blog" >&2; exit 1; }
}

case $prog in
leveldb)
	# C++ and CMake: the C++ driver of the same configuration (relpoline-c++
	# beside relpoline-cc), a static libleveldb so that db_bench holds every
	# call site, and the optional libraries switched off so that the result
	# does not depend on what else is installed (no snappy: values are stored
	# as they are; no tcmalloc, crc32c, sqlite3 or kyotocabinet benchmarks),
	# -DNDEBUG as in a release build.
	CXX=g++; case $CC in */relpoline-cc) CXX=${CC%-cc}-c++ ;; esac
	rm -rf "$D/build"; mkdir -p "$D/build"; cd "$D/build"
	run cmake "$SRC/leveldb" -DCMAKE_BUILD_TYPE= -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" \
		-DCMAKE_C_FLAGS="$CF -DNDEBUG" -DCMAKE_CXX_FLAGS="$CF -DNDEBUG" -DCMAKE_EXE_LINKER_FLAGS="$LF" \
		-DBUILD_SHARED_LIBS=OFF -DLEVELDB_BUILD_TESTS=OFF -DLEVELDB_BUILD_BENCHMARKS=ON -DLEVELDB_INSTALL=OFF \
		-DHAVE_SNAPPY=OFF -DHAVE_TCMALLOC=OFF -DHAVE_CRC32C=OFF -DHAVE_SQLITE3=OFF -DHAVE_KYOTOCABINET=OFF
	run make -C "$D/build" -j"$JOBS" db_bench VERBOSE=1
	;;
redis)
	if [ ! -f "$D/.copied" ]; then cp -a "$SRC/redis/." "$D/"; rm -rf "$D/debian"; touch "$D/.copied"; fi
	# distclean also rebuilds deps (lua, hiredis, ...) with the same flags
	run make -C "$D" distclean
	run make -C "$D/src" -j"$JOBS" redis-server MALLOC=libc USE_SYSTEMD=no BUILD_TLS=no \
		OPTIMIZATION=-O2 CC="$CC" CFLAGS="$CF" LDFLAGS="$LF" V=1
	;;
nginx)
	if [ ! -f "$D/.copied" ]; then cp -a "$SRC/nginx/." "$D/"; rm -rf "$D/debian"; touch "$D/.copied"; fi
	rm -rf "$D/objs" "$D/Makefile"
	( cd "$D" && run ./configure --with-cc="$CC" --with-cc-opt="$CF -Wno-error" --with-ld-opt="$LF" \
		--prefix="$D/prefix" --without-http_rewrite_module --without-http_gzip_module \
		--without-pcre --without-http_ssi_module --without-http-cache )
	run make -C "$D" -j"$JOBS"
	;;
sqlite)
	A=$OUT/sqlite/amalg
	if [ ! -f "$A/sqlite3.c" ]; then
		log "generating the amalgamation (make sqlite3.c, needs tclsh)"
		mkdir -p "$A"
		( cd "$A" && run "$SRC/sqlite3/configure" --disable-tcl && run make sqlite3.c )
	fi
	cp "$SRC/sqlite3/test/speedtest1.c" "$D/speedtest1.c"
	DEFS="-DSQLITE_THREADSAFE=1 -DSQLITE_OMIT_LOAD_EXTENSION -DSQLITE_ENABLE_RTREE"
	# two objects so that -j2 helps and the profile names are per object
	cd "$D"
	run $CC $CF $DEFS -I"$A" -c "$A/sqlite3.c" -o "$D/sqlite3.o" & p1=$!
	run $CC $CF $DEFS -I"$A" -c "$D/speedtest1.c" -o "$D/speedtest1.o" & p2=$!
	wait $p1 && wait $p2 || { log "FAILED, see $blog"; tail -30 "$blog" >&2; exit 1; }
	run $CC $CF $LF "$D/speedtest1.o" "$D/sqlite3.o" -o "$BIN" -lm -lpthread
	;;
phase)
	run $CC $CF $LF -Wall "$HERE/phase/phase.c" -o "$BIN"
	;;
python)
	# CPython 3.11, out of tree: configure in $D against the untouched source
	# (build/real/src/python3.11, Debian's patches applied by apt-get source)
	# and run make's default target: the interpreter (libpython static) and
	# the extension modules that tests/real/check-python.sh needs.  $CF comes
	# after CPython's own OPT (-O3) on each command line, so -O2 wins as for
	# the other programs.  No --enable-optimizations: pgo-gen/pgo-retpoline
	# above are the PGO configuration.  The binary runs in place ($D/python).
	PYSRC=$(readlink -f "$SRC/python3.11")
	[ ! -e "$PYSRC/Programs/python.o" ] || { log "$PYSRC has an in-tree build (make distclean there)"; exit 1; }
	find "$D" -mindepth 1 -maxdepth 1 ! -name 'build-*' ! -name '.stamp-*' ! -name '.last' -exec rm -rf {} +
	# pyexpat built in, against Debian's libexpat: Debian's pyexpat.c (a
	# security patch) includes an internal header, which only compiles with
	# Py_BUILD_CORE_BUILTIN; as a shared module it fails.  regrtest's
	# --junit-xml (check-python) parses XML with it.
	mkdir -p "$D/Modules"
	printf '%s\n' '*static*' 'pyexpat pyexpat.c -lexpat' > "$D/Modules/Setup.local"
	# configure's probe programs ran under -fprofile-generate too: their
	# profiles match no later probe and fail pgo-retpoline's configure
	# (coverage-mismatch is an error).  They are not part of the program.
	[ "$cfg" != pgo-retpoline ] || rm -f "$PROF/$prog/"*conftest*.gcda
	# ac_cv_no_strict_aliasing=no: what configure finds with gcc 12 for plain,
	# retpoline, relpoline and pgo-gen; with -fprofile-use its -Werror probe
	# fails on the missing conftest profile and would add -fno-strict-aliasing
	# to pgo-retpoline only, whose code then no longer matches the profile.
	( cd "$D" && run "$PYSRC/configure" CC="$CC" CFLAGS="$CF" LDFLAGS="$LF" --without-ensurepip \
		ac_cv_no_strict_aliasing=no )
	run make -C "$D" -j"$JOBS"
	;;
esac
[ -x "$BIN" ] || { log "no binary $BIN"; exit 1; }
echo "$K" > "$D/.stamp-$cfg"
echo "$cfg" > "$D/.last"
log "ok -> $BIN"
echo "$BIN"
