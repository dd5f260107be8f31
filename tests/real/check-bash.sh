#!/bin/bash
# check-real: bash 5.2 from Debian's source package, built plain (gcc) and
# with relpoline-cc, each running bash's own test suite; the relpoline build
# must give the same result as the plain one, test by test, and must really
# have patched call sites.  See tests/real/README.md.
#
# Phases (each one timed):
#   setup     deb-src entry (derived from the configured bookworm lines),
#             Debian packages, `apt-get source bash`, the locales the
#             suite wants (built with localedef into the work dir, as
#             debian/locale-gen does, used through LOCPATH: no system change)
#   build     ./configure && make, upstream style (bash's own malloc, the
#             default), once with CC=gcc and once with CC=relpoline-cc, each
#             in its own copy of the source; cached, rebuilt only when the
#             compiler, the wrapper or relpoline-module.o change
#   tests     every tests/run-* script (what `make tests` runs), each in its
#             own copy of tests/ and, as root, its own private /tmp:
#               plain-1, plain-2          the reference, twice (flakiness)
#               relpoline-default         no RELPOLINE_* tuning
#               relpoline-aggressive      RELPOLINE_EPOCH_MS=1 RELPOLINE_PROMOTE_MIN=8
#   compare   per test: outcome (pass/fail/timeout) and the diff output the
#             run-* script printed, with paths normalised; a test whose two
#             plain runs differ, or that is listed in REAL_FLAKY, is flaky:
#             reported, not failed
#   stats     RELPOLINE_STATS=json:DIR/stats-%p.json in the relpoline runs
#             (or, for a runtime that does not expand %p, one extra run of a
#             heavy script per setting); fails when nothing was promoted
#
# Environment:
#   RP_BUILD=DIR          relpoline build to test (default: <repo>/build)
#   REAL_DIR=DIR          work and cache dir (default: <repo>/build/real/bash)
#   REAL_JOBS=N           suite runs at once (default 2 with private /tmp, else 1)
#   REAL_TESTS="a b"      only these tests (run-a run-b); default: all
#   REAL_TEST_TIMEOUT=S   per run-* script (default 120; run-jobs needs 62-63)
#   REAL_PLAIN_RUNS=1|2   plain reference runs (default 2)
#   REAL_FLAKY="x y"      tests declared flaky (default: see DECLARED_FLAKY)
#   REAL_SHOW_LINES=N     diff lines shown per differing test (default 25)
#   REAL_NO_SETUP=1       skip the package/source step (offline re-runs)
#   REAL_AGGRESSIVE="..." the second relpoline suite's settings instead of the
#                         aggressive ones, e.g. RELPOLINE_PROFILE=DIR (an
#                         absolute directory outside /tmp, which each suite
#                         gets privately): a warm start for every process
#   REAL_REBUILD=1        rebuild both bash builds
# Exit status: 0 when every non-flaky test matches in both relpoline settings
# and at least one process promoted a site; 1 otherwise; 2 on a setup or
# build error.  The last line is "N passed, N failed" (N = test comparisons,
# one per test and relpoline setting).
set -uo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RP_BUILD=${RP_BUILD:-$ROOT/build}
WORK=${REAL_DIR:-$ROOT/build/real/bash}
TIMEOUT=${REAL_TEST_TIMEOUT:-120}
PLAIN_RUNS=${REAL_PLAIN_RUNS:-2}
SHOW_LINES=${REAL_SHOW_LINES:-25}
AGGRESSIVE=${REAL_AGGRESSIVE:-"RELPOLINE_EPOCH_MS=1 RELPOLINE_PROMOTE_MIN=8"}

# Tests declared flaky up front (REAL_FLAKY="run-x run-y").  None by
# default: the two plain runs find the flaky ones.  In four full runs on a
# 2-core machine (two plain suites each, two suites at a time, once four)
# no test differed between plain-1 and plain-2 once the "no job control"
# pid was normalised and the suite's locales were built.  The timing-heavy
# tests (run-jobs, run-trap, run-coproc, run-read's timeouts) are where
# flakiness would show first.
DECLARED_FLAKY=${REAL_FLAKY-}

T_START=$(date +%s.%N)
log() { printf '[check-real %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.0f", b-a}'; }
declare -A PHASE_T=()
PHASE_ORDER=()
phase_done() { PHASE_T[$1]=$(secs "$2" "$(now)"); PHASE_ORDER+=("$1"); }

SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
mkdir -p "$WORK" || die "cannot create $WORK"
WORK=$(cd "$WORK" && pwd)
[ -d "$RP_BUILD" ] || die "no relpoline build at $RP_BUILD (run make first)"
RP_BUILD=$(cd "$RP_BUILD" && pwd)
RPCC=$RP_BUILD/bin/relpoline-cc
for f in "$RPCC" "$RP_BUILD/lib/librelpoline.so" "$RP_BUILD/lib/relpoline-module.o"; do
	[ -e "$f" ] || die "missing $f: build the runtime first (make)"
done
# The bash builds get their own -j; a make jobserver inherited from
# `make check-real` would only produce warnings in the nested makes.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES

# ---------------------------------------------------------------- setup ----
have_debsrc() {
	grep -rqsE '^[[:space:]]*deb-src[[:space:]].*[[:space:]]bookworm[[:space:]]' \
		/etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null && return 0
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk 'BEGIN{RS="";f=0} /Types:[^\n]*deb-src/ && /Suites:[^\n]*bookworm([ \n]|$)/ && !/Enabled:[ ]*no/ {f=1} END{exit !f}' "$f" && return 0
	done
	return 1
}

# Add deb-src lines for the same archives, suites and components as the
# configured bookworm `deb` lines (deb822 stanzas or one-line entries).
add_debsrc() {
	local tmp f out=/etc/apt/sources.list.d/relpoline-real-src
	tmp=$(mktemp)
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk 'BEGIN{RS="";ORS="\n\n"}
		     /Types:[^\n]*deb/ && /Suites:[^\n]*bookworm([ \n-]|$)/ && !/Enabled:[ ]*no/ {
		        s=$0; sub(/Types:[^\n]*/, "Types: deb-src", s); print s }' "$f" >>"$tmp"
	done
	if [ -s "$tmp" ]; then
		$SUDO install -m 644 "$tmp" "$out.sources" && log "added $out.sources"
	else
		for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
			[ -f "$f" ] || continue
			grep -E '^[[:space:]]*deb[[:space:]].*[[:space:]]bookworm([-[:alnum:]]*)[[:space:]]' "$f" |
				sed -E 's/^[[:space:]]*deb[[:space:]]/deb-src /' >>"$tmp" || true
		done
		[ -s "$tmp" ] || { rm -f "$tmp"; die "no bookworm 'deb' entry in the apt sources to derive a deb-src entry from"; }
		sort -u "$tmp" | $SUDO tee "$out.list" >/dev/null && log "added $out.list"
	fi
	rm -f "$tmp"
}

# What the upstream build and the test suite need: a C toolchain, bison for
# the grammar, ncurses for the termcap library, dpkg-dev for apt-get source,
# locales (localedef's inputs) for en_US.UTF-8, python3 to read the stats.
PKGS="dpkg-dev build-essential bison libncurses-dev xz-utils locales python3 util-linux"

setup() {
	local t0 missing p updated=no src
	t0=$(now)
	if [ "${REAL_NO_SETUP:-0}" != 1 ]; then
		if ! have_debsrc; then add_debsrc; rm -f "$WORK/.apt-updated"; fi
		missing=
		for p in $PKGS; do
			dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
		done
		if [ -n "$missing" ] || [ ! -f "$WORK/.apt-updated" ]; then
			log "apt-get update"
			$SUDO apt-get update -q >"$WORK/apt-update.log" 2>&1 || { cat "$WORK/apt-update.log" >&2; die "apt-get update failed"; }
			touch "$WORK/.apt-updated"; updated=yes
		fi
		if [ -n "$missing" ]; then
			log "apt-get install$missing"
			$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing \
				>"$WORK/apt-install.log" 2>&1 || { tail -20 "$WORK/apt-install.log" >&2; die "apt-get install failed"; }
		fi
		mkdir -p "$WORK/src"
		if ! ls -d "$WORK/src"/bash-5.2*/ >/dev/null 2>&1; then
			log "apt-get source bash"
			( cd "$WORK/src" && apt-get source -q bash/bookworm ) >"$WORK/src/source.log" 2>&1 ||
			( [ $updated = no ] && $SUDO apt-get update -q >/dev/null 2>&1 &&
			  cd "$WORK/src" && apt-get source -q bash/bookworm ) >>"$WORK/src/source.log" 2>&1 ||
				{ tail -20 "$WORK/src/source.log" >&2; die "apt-get source bash failed"; }
		fi
	fi
	src=$(ls -d "$WORK/src"/bash-5.2*/ 2>/dev/null | sort -V | tail -1)
	[ -n "$src" ] || die "no bash 5.2 source in $WORK/src (REAL_NO_SETUP=1 needs an earlier run)"
	SRC=${src%/}
	SRC_VERSION=$(sed -n '1s/^bash (\([^)]*\)).*/\1/p' "$SRC/debian/changelog")
	# The locales the suite uses, built into $WORK/locales and used through
	# LOCPATH as Debian's own test run does (debian/locale-gen), which makes
	# en_US.UTF-8 only; the others stop intl/glob tests from failing, and
	# glob2.sub from interleaving setlocale warnings differently each run.
	# `locale -a` ignores LOCPATH: the tests see a shim that adds these.
	local loc in cm name
	mkdir -p "$WORK/locales" "$WORK/shim"
	for loc in en_US:UTF-8:en_US.UTF-8 de_DE:UTF-8:de_DE.UTF-8 fr_FR:ISO-8859-1:fr_FR.ISO8859-1 \
	           ja_JP:SHIFT_JIS:ja_JP.SJIS zh_HK:BIG5-HKSCS:zh_HK.big5hkscs ru_RU:CP1251:ru_RU.CP1251; do
		IFS=: read -r in cm name <<<"$loc"
		[ -e "$WORK/locales/$name/LC_CTYPE" ] && continue
		localedef -i "$in" -c -f "$cm" "$WORK/locales/$name" >>"$WORK/localedef.log" 2>&1
		[ -e "$WORK/locales/$name/LC_CTYPE" ] || log "warning: could not build locale $name (see $WORK/localedef.log)"
	done
	cat >"$WORK/shim/locale" <<'SHIM'
#!/bin/sh
# check-real: `locale -a` that also lists the locales in $LOCPATH
if [ "$*" = "-a" ]; then
	{ /usr/bin/locale -a; [ -n "${LOCPATH:-}" ] && ls "$LOCPATH"; } | sort -u
else
	exec /usr/bin/locale "$@"
fi
SHIM
	chmod +x "$WORK/shim/locale"
	log "bash source $SRC_VERSION in $SRC"
	phase_done setup "$t0"
}

# ---------------------------------------------------------------- build ----
# build NAME CC FULLKEY LINKKEY
#   FULLKEY change: fresh copy, configure, make.  LINKKEY change only:
#   relink (what relpoline-cc adds at link time: relpoline-module.o).
SUPPORT="recho zecho printenv xcase"
build() {
	local name=$1 cc=$2 key=$3 lkey=$4 d=$WORK/$1 t0 log
	t0=$(now); log=$WORK/$name.build.log
	if [ "${REAL_REBUILD:-0}" != 1 ] && [ -x "$d/bash" ] && [ "$(cat "$d/.key" 2>/dev/null)" = "$key" ]; then
		if [ "$(cat "$d/.linkkey" 2>/dev/null)" = "$lkey" ]; then
			log "build $name: cached"
			phase_done "build-$name" "$t0"; return 0
		fi
		log "build $name: relink (relpoline-module.o changed)"
		( cd "$d" && rm -f bash bashbug $SUPPORT && make -j"$(nproc)" && make $SUPPORT ) >>"$log" 2>&1 ||
			{ tail -30 "$log" >&2; die "relink of $name failed (log: $log)"; }
	else
		log "build $name: ./configure CC=$cc && make"
		rm -rf "$d" && cp -a "$SRC" "$d" || die "cannot copy the source to $d"
		( cd "$d" && ./configure CC="$cc" && make -j"$(nproc)" && make $SUPPORT ) >"$log" 2>&1 ||
			{ tail -30 "$log" >&2; die "build of $name failed (log: $log)"; }
		grep -q '^#define USING_BASH_MALLOC 1' "$d/config.h" || die "$name: not built with bash's own malloc"
		echo "$key" >"$d/.key"
	fi
	echo "$lkey" >"$d/.linkkey"
	( cd "$d" && cp $SUPPORT tests/ ) || die "no test support programs in $d"
	phase_done "build-$name" "$t0"
}

hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

builds() {
	local gccv rpv
	gccv=$(gcc --version | head -1)
	build plain gcc "$(echo "$SRC_VERSION|gcc|$gccv" | hash_of)" -
	rpv=$(${RELPOLINE_CC:-gcc} --version | head -1)
	build relpoline "$RPCC" \
		"$( { echo "$SRC_VERSION|$RP_BUILD|${RELPOLINE_CC:-gcc}|$rpv"; cat "$RPCC"; } | hash_of)" \
		"$(hash_of "$RP_BUILD/lib/relpoline-module.o")"
	ldd "$WORK/relpoline/bash" | grep -q "librelpoline.so.0 => $RP_BUILD/lib/" ||
		die "relpoline bash does not load $RP_BUILD/lib/librelpoline.so"
	if ldd "$WORK/plain/bash" | grep -q librelpoline; then die "plain bash links librelpoline"; fi
}

# ---------------------------------------------------------------- tests ----
# As root, every suite run gets its own /tmp (a mount namespace): the tests
# use fixed names such as /tmp/redir-test, and runs go on side by side.
# Paths under /tmp that the run needs (the work dir, the relpoline build)
# are bound back into the private /tmp at the same place.
PRIVATE_TMP=no
probe_private_tmp() {
	local d=$WORK/runs/probe-tmp
	rm -rf "$d" && mkdir -p "$d"
	if [ "$(id -u)" = 0 ] && [ -d /mnt ] && command -v unshare >/dev/null; then
		PRIVATE_TMP=yes
		in_private_tmp "$d" /bin/sh -c "touch /tmp/.probe && test -d '$RP_BUILD/lib' && test -d '$WORK/runs'" 2>/dev/null &&
			[ -e "$d/.probe" ] || PRIVATE_TMP=no
	fi
	JOBS=${REAL_JOBS:-$([ $PRIVATE_TMP = yes ] && echo 2 || echo 1)}
}

in_private_tmp() {   # in_private_tmp NEWTMP CMD...
	local newtmp=$1; shift
	if [ $PRIVATE_TMP = no ]; then "$@"; return; fi
	local keep=() p
	for p in "$WORK" "$RP_BUILD"; do case $p in /tmp/*) keep+=("$p") ;; esac; done
	# The originals are held under a private tmpfs on /mnt (this namespace
	# only) while /tmp is replaced, then bound back at their own paths.
	unshare --mount --propagation private /bin/sh -c '
		set -e
		newtmp=$1; n=$2; shift 2
		i=0
		[ "$n" -eq 0 ] || mount -t tmpfs -o size=64k,mode=700 rp-real-hold /mnt
		while [ $i -lt "$n" ]; do
			eval "p=\${$((i + 1))}"
			mkdir "/mnt/$i" && mount --bind "$p" "/mnt/$i"
			i=$((i + 1))
		done
		mount --bind "$newtmp" /tmp
		chmod 1777 /tmp
		i=0
		while [ $i -lt "$n" ]; do
			eval "p=\${$((i + 1))}"
			mkdir -p "$p" && mount --bind "/mnt/$i" "$p"
			i=$((i + 1))
		done
		shift "$n"
		exec "$@"
	' check-real-ns "$newtmp" "${#keep[@]}" "${keep[@]}" "$@"
}

list_tests() {
	local x t
	for x in "$WORK/plain/tests"/run-*; do
		x=${x##*/}
		case $x in run-all|run-minimal|run-gprof|*.orig|*~) continue ;; esac
		if [ -n "${REAL_TESTS:-}" ]; then
			for t in $REAL_TESTS; do [ "$x" = "run-${t#run-}" ] && echo "$x"; done
		else
			echo "$x"
		fi
	done
}

sed_escape() { printf '%s' "$1" | sed 's/[][\.*^$|/]/\\&/g'; }

# One test, as `make tests` / run-all would run it: from the tests
# directory, with sh, THIS_SH and BUILD_DIR set and the support programs on
# PATH; a clean environment, no stdin, no inherited descriptors, no cores.
run_one() {   # run_one RUNDIR BUILDDIR TEST [VAR=VALUE...]
	local r=$1 b=$2 x=$3; shift 3
	local fd
	for fd in /proc/$BASHPID/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done 2>/dev/null
	ulimit -S -c 0     # soft only: builtins.tests raises it to 1000
	cd "$r/tests" || exit 2
	exec env -i HOME="$r/home" USER=root LOGNAME=root SHELL=/bin/sh TERM=dumb \
		PATH="$b/tests:.:$WORK/shim:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		TMPDIR=/tmp BASH_TSTOUT="/tmp/bashtst-$x" LOCPATH="$WORK/locales" \
		THIS_SH="$b/bash" BUILD_DIR="$b" "$@" \
		timeout -k 10 "$TIMEOUT" sh "./$x"
}

# run_suite NAME BUILD [VAR=VALUE...]: every test; per test the raw and the
# normalised output, and a line "test outcome exit seconds" in results.tsv.
run_suite() {
	local name=$1 bname=$2; shift 2
	local r=$WORK/runs/$name b=$WORK/$bname x t0 t1 rc outcome nb nr
	rm -rf "$r" && mkdir -p "$r/out" "$r/raw" "$r/tmp" "$r/home" "$r/stats"
	cp -a "$b/tests" "$r/tests"
	nb=$(sed_escape "$b"); nr=$(sed_escape "$r")
	: >"$r/results.tsv"
	local envs=("$@")
	local t_suite0; t_suite0=$(now)
	for x in $TESTS; do
		t0=$(now)
		in_private_tmp "$r/tmp" bash -c "$(declare -f run_one); WORK='$WORK'; TIMEOUT='$TIMEOUT'; run_one \"\$@\"" \
			run_one "$r" "$b" "$x" "${envs[@]}" >"$r/raw/$x" 2>&1 </dev/null
		rc=$?
		t1=$(now)
		# The build and run directories differ between runs, and so does the
		# pid in bash's "no job control" message; nothing else is rewritten.
		sed -e "s/$nr/@RUN@/g" -e "s/$nb/@BUILD@/g" \
		    -e 's/cannot set terminal process group ([0-9]*)/cannot set terminal process group (PID)/' \
		    "$r/raw/$x" >"$r/out/$x"
		if [ $rc = 124 ] || [ $rc = 137 ]; then
			outcome=timeout
		elif grep -qE '^[0-9]+(,[0-9]+)?[acd][0-9]+(,[0-9]+)?$|^[<>] |^[<>]$' "$r/out/$x"; then
			outcome=fail
		elif grep -qvE '^(warning|[-a-z0-9.]+: warning|[-a-z0-9.]+: that will cause)' "$r/out/$x"; then
			outcome=fail     # anything but the scripts' warnings: a crash, a message
		else
			outcome=pass
		fi
		printf '%s\t%s\t%s\t%s\n' "$x" "$outcome" "$rc" "$(secs "$t0" "$t1")" >>"$r/results.tsv"
		rm -rf "${r:?}/tmp"/* "${r:?}/tmp"/.[!.]* 2>/dev/null
	done
	echo "$(secs "$t_suite0" "$(now)")" >"$r/wall"
	log "suite $name: $(awk -F'\t' '{n++; c[$2]++} END{printf "%d tests, %d pass, %d fail, %d timeout", n, c["pass"], c["fail"], c["timeout"]}' "$r/results.tsv") in $(cat "$r/wall")s"
}

PCT_P=no   # does the runtime expand %p in RELPOLINE_STATS?
probe_pct_p() {
	local d=$WORK/runs/probe-stats
	rm -rf "$d" && mkdir -p "$d"
	RELPOLINE_STATS="json:$d/s-%p.json" "$WORK/relpoline/bash" -c ':' >/dev/null 2>&1
	local f
	for f in "$d"/s-*.json; do [[ ${f##*/} =~ ^s-[0-9]+\.json$ ]] && PCT_P=yes; done
	log "runtime expands %p in RELPOLINE_STATS: $PCT_P"
}

run_tests() {
	local t0 suites=() s name
	t0=$(now)
	TESTS=$(list_tests | tr '\n' ' ')
	[ -n "$TESTS" ] || die "no test selected"
	rm -rf "$WORK/runs" && mkdir -p "$WORK/runs"   # no stale suite is ever compared
	probe_private_tmp
	probe_pct_p
	local stat_default=() stat_aggr=()
	if [ $PCT_P = yes ]; then
		stat_default=("RELPOLINE_STATS=json:$WORK/runs/relpoline-default/stats/stats-%p.json")
		stat_aggr=("RELPOLINE_STATS=json:$WORK/runs/relpoline-aggressive/stats/stats-%p.json")
	fi
	# Started in this order, JOBS at a time, so that each relpoline run goes
	# alongside a plain one: two relpoline suites at once are much slower
	# (the runtime's start-up in every process is system time).
	suites=("plain-1|plain|" "relpoline-default|relpoline|${stat_default[*]}")
	[ "$PLAIN_RUNS" -ge 2 ] && suites+=("plain-2|plain|")
	suites+=("relpoline-aggressive|relpoline|$AGGRESSIVE ${stat_aggr[*]}")
	log "running $(echo $TESTS | wc -w) tests x ${#suites[@]} runs, $JOBS at a time, private /tmp: $PRIVATE_TMP"
	local running=0
	for s in "${suites[@]}"; do
		IFS='|' read -r name b envs <<<"$s"
		# shellcheck disable=SC2086
		run_suite "$name" "$b" $envs &
		running=$((running + 1))
		if [ $running -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
	done
	wait
	for s in "${suites[@]}"; do
		name=${s%%|*}
		[ -f "$WORK/runs/$name/wall" ] || die "suite $name did not finish"
	done
	phase_done tests "$t0"
}

# A heavy script for the stats when %p is not expanded (all processes of a
# test run would write the same file): one process, many builtin and
# function calls; its output must match the plain build's too.
HEAVY='f() { local a=$1; case $a in *7) printf -v r "%05d" "$a";; *) r=${a//1/x};; esac; }
declare -A h; arr=()
for ((i = 0; i < 60000; i++)); do
	f "$i"; h[$r]=$i; arr+=("${r:1:3}")
	[[ $r == *x* ]] && s=${r^^} || s=${r,,}
	(( i % 1000 == 0 )) && set -- "${arr[@]:0:10}"
done
echo "${#h[@]} ${#arr[@]} $s $# $(( ${#arr[*]} % 97 ))"'

run_heavy() {
	local d=$WORK/runs/heavy s i rc
	rm -rf "$d" && mkdir -p "$d"
	( ulimit -c 0; env -i PATH=/usr/bin:/bin "$WORK/plain/bash" -c "$HEAVY" >"$d/plain.out" 2>&1; echo $? >"$d/plain.rc" ) 2>/dev/null
	# The first attempt's output and exit status are compared with plain;
	# a process that dies writes no stats, so up to two more attempts are
	# made for the stats alone (all exit statuses are reported).
	for s in relpoline-default relpoline-aggressive; do
		local envs=""
		[ $s = relpoline-aggressive ] && envs=$AGGRESSIVE
		: >"$d/$s.rcs"
		for i in 1 2 3; do
			# shellcheck disable=SC2086
			( ulimit -c 0; env -i PATH=/usr/bin:/bin $envs RELPOLINE_STATS="json:$d/$s.json" \
				"$WORK/relpoline/bash" -c "$HEAVY" >"$d/$s.out.$i" 2>&1 ) 2>/dev/null
			rc=$?
			[ "$i" = 1 ] && { cp "$d/$s.out.1" "$d/$s.out"; echo $rc >"$d/$s.rc"; }
			printf '%s ' "$rc" >>"$d/$s.rcs"
			[ -s "$d/$s.json" ] && break
		done
		mkdir -p "$WORK/runs/$s/stats"
		cp "$d/$s.json" "$WORK/runs/$s/stats/" 2>/dev/null
	done
}

# ------------------------------------------------------------- compare ----
FAILED=0
main() {
	setup
	builds
	run_tests
	local t0; t0=$(now)
	HEAVY_BAD=
	if [ $PCT_P = no ]; then
		log "heavy script run for the stats (the runtime does not expand %p)"
		run_heavy
		for s in relpoline-default relpoline-aggressive; do
			cmp -s "$WORK/runs/heavy/plain.out" "$WORK/runs/heavy/$s.out" &&
				cmp -s "$WORK/runs/heavy/plain.rc" "$WORK/runs/heavy/$s.rc" || HEAVY_BAD="$HEAVY_BAD $s"
		done
	fi
	phase_done stats-run "$t0"
	report >"$WORK/report.txt"
	cat "$WORK/report.txt"
	return "$FAILED"
}

suite_names() { local d; for d in "$WORK"/runs/*/wall; do d=${d%/wall}; echo "${d##*/}"; done; }

stats_summary() {   # stats_summary DIR -> "files promoted_procs sites_promoted patch_passes bad"
	python3 - "$1" <<'EOF'
import json, os, sys
d = sys.argv[1]
files = procs = sites = passes = bad = 0
for n in sorted(os.listdir(d)) if os.path.isdir(d) else []:
    if not n.endswith(".json"):
        continue
    files += 1
    try:
        with open(os.path.join(d, n)) as f:
            j = json.load(f)
    except Exception:
        bad += 1
        continue
    sp = int(j.get("sites_promoted", 0))
    procs += sp > 0
    sites += sp
    passes += int(j.get("patch_passes", 0))
print(files, procs, sites, passes, bad)
EOF
}

report() {
	local p1=$WORK/runs/plain-1 p2=$WORK/runs/plain-2 x s o1 o2 nflaky=0 passed=0 failed=0
	declare -A FLAKY=() WHY=()
	for x in $DECLARED_FLAKY; do x=run-${x#run-}; FLAKY[$x]=1; WHY[$x]="declared (REAL_FLAKY)"; done
	outcome_of() { awk -F'\t' -v t="$2" '$1 == t {print $2}' "$1/results.tsv"; }
	if [ -d "$p2" ]; then
		for x in $TESTS; do
			o1=$(outcome_of "$p1" "$x"); o2=$(outcome_of "$p2" "$x")
			if [ "$o1" != "$o2" ] || ! cmp -s "$p1/out/$x" "$p2/out/$x"; then
				FLAKY[$x]=1; WHY[$x]="plain-1 and plain-2 differ ($o1/$o2)"
			fi
		done
	fi
	local ntests; ntests=$(echo $TESTS | wc -w)
	echo
	echo "== check-real: bash $SRC_VERSION, plain (gcc) vs relpoline-cc"
	echo "   runtime: $RP_BUILD   work: $WORK"
	echo "   $ntests tests (tests/run-*), runs: $(suite_names | tr '\n' ' ')"
	echo
	echo "-- reference (plain-1): $(awk -F'\t' '{c[$2]++} END{printf "%d pass, %d fail, %d timeout", c["pass"], c["fail"], c["timeout"]}' "$p1/results.tsv")"
	echo "   failing in plain too (environment: root, no tty, locales...): $(awk -F'\t' '$2 != "pass" {printf "%s ", $1; n++} END{if (!n) print "none"}' "$p1/results.tsv")"
	for x in $TESTS; do [ -n "${FLAKY[$x]:-}" ] && nflaky=$((nflaky + 1)); done
	echo "-- flaky ($nflaky, compared but not failed):"
	for x in $TESTS; do [ -n "${FLAKY[$x]:-}" ] && echo "   $x: ${WHY[$x]}"; done
	declare -A DIFFERS=()
	for s in relpoline-default relpoline-aggressive; do
		local r=$WORK/runs/$s match=0 differ=() tolerated=() o or same
		for x in $TESTS; do
			o=$(outcome_of "$p1" "$x"); or=$(outcome_of "$r" "$x")
			same=no
			if [ "$o" = "$or" ] && cmp -s "$p1/out/$x" "$r/out/$x"; then same=yes
			elif [ -d "$p2" ] && [ "$(outcome_of "$p2" "$x")" = "$or" ] && cmp -s "$p2/out/$x" "$r/out/$x"; then same=yes
			fi
			if [ $same = yes ]; then match=$((match + 1)); passed=$((passed + 1))
			elif [ -n "${FLAKY[$x]:-}" ]; then tolerated+=("$x($o->$or)"); passed=$((passed + 1))
			else differ+=("$x($o->$or$( [ "$o" = "$or" ] && echo ", other output"))"); DIFFERS[$s:$x]=1; failed=$((failed + 1))
			fi
		done
		echo
		echo "-- $s ($( [ $s = relpoline-aggressive ] && echo "$AGGRESSIVE" || echo "no RELPOLINE_* tuning")):"
		echo "   $ntests compared, $match match, ${#differ[@]} differ, ${#tolerated[@]} differ but flaky"
		[ ${#differ[@]} -gt 0 ] && echo "   DIFFER: ${differ[*]}"
		[ ${#tolerated[@]} -gt 0 ] && echo "   flaky, tolerated: ${tolerated[*]}"
		# what the differing outputs show, test by test
		local sig n signs=
		for sig in 'Segmentation fault' 'Aborted' 'malloc: ' 'Bad file descriptor' 'relpoline'; do
			n=0
			for x in $TESTS; do
				grep -q -- "$sig" "$r/out/$x" && ! grep -q -- "$sig" "$p1/out/$x" && n=$((n + 1))
			done
			[ $n -gt 0 ] && signs="$signs \"$sig\" in $n,"
		done
		n=$(awk -F'\t' '$2 == "timeout"' "$r/results.tsv" | wc -l)
		[ "$n" -gt 0 ] && signs="$signs timeout in $n,"
		[ -n "$signs" ] && echo "   new in the relpoline output (tests):${signs%,}"
		read -r files procs sites passes bad <<<"$(stats_summary "$r/stats")"
		if [ $PCT_P = yes ]; then
			echo "   stats: $files processes wrote stats ($bad unreadable), $procs promoted, $sites sites promoted in total, $passes patch passes"
		else
			echo "   stats (runtime does not expand %p: heavy script, exit status per attempt: $(cat "$WORK/runs/heavy/$s.rcs")): $files file, $procs promoted, $sites sites promoted, $passes patch passes"
		fi
		[ "${procs:-0}" -gt 0 ] || { echo "   FAIL: no process promoted a call site"; NOPATCH=1; }
	done
	if [ -n "${HEAVY_BAD:-}" ]; then
		echo
		for s in $HEAVY_BAD; do
			echo "   heavy script, $s: exit $(cat "$WORK/runs/heavy/$s.rc") (plain $(cat "$WORK/runs/heavy/plain.rc")), output differs from plain:"
			diff "$WORK/runs/heavy/plain.out" "$WORK/runs/heavy/$s.out" 2>&1 | head -5 | sed 's/^/     /'
		done
	fi
	if [ ${#DIFFERS[@]} -gt 0 ]; then
		echo
		echo "-- differences (plain-1 vs relpoline, normalised; all outputs in $WORK/runs/*/out/)"
		local k
		for k in $(printf '%s\n' "${!DIFFERS[@]}" | sort -t: -k2,2 -k1,1); do
			s=${k%%:*}; x=${k#*:}
			echo "   ## $x, $s: plain $(outcome_of "$p1" "$x"), relpoline $(outcome_of "$WORK/runs/$s" "$x") (exit $(awk -F'\t' -v t="$x" '$1 == t {print $3}' "$WORK/runs/$s/results.tsv"))"
			diff "$p1/out/$x" "$WORK/runs/$s/out/$x" | head -n "$SHOW_LINES" | cut -c1-160 | sed 's/^/      /'
		done
	fi
	echo
	printf -- "-- wall time:"
	for s in "${PHASE_ORDER[@]}"; do printf " %s %ss," "$s" "${PHASE_T[$s]}"; done
	printf " total %ss\n" "$(secs "$T_START" "$(now)")"
	printf "   suites:"
	for s in $(suite_names); do printf " %s %ss" "$s" "$(cat "$WORK/runs/$s/wall")"; done
	printf " (%s at a time)\n" "$JOBS"
	[ "${NOPATCH:-0}" = 1 ] && echo "FAIL: nothing was patched in at least one relpoline setting"
	[ -n "${HEAVY_BAD:-}" ] && echo "FAIL: the heavy script's output differs"
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ] && [ "${NOPATCH:-0}" != 1 ] && [ -z "${HEAVY_BAD:-}" ] || FAILED=1
}

main "$@"; exit $?
