#!/bin/bash
# relpoline test suite.
#
#   tests/run.sh [PATTERN...]      build and run every test for gcc and clang
#   make check                     the same, after building the runtime
#   make check-san  (or SAN=1)     the tests built with -fsanitize=address,undefined
#
# Every case runs as its own process under timeout and prints one line,
# "PASS <cc>/<case>" or "FAIL <cc>/<case> (reason)"; the last line is
# "N passed, M failed" (", K skipped" if a case could not run here, see
# below).  Exit status 1 if anything failed.
#
# Environment:
#   TEST_CCS="gcc clang"   compilers to test (RELPOLINE_CC values)
#   SAN=1                  sanitizer build of the tests (build/tests-san/<cc>)
#   STRESS_CALLS=N         total calls of the stress test (default 3e8; 1e8 with SAN=1)
#   STRESS_THREADS=N       stress threads (default 8)
#   TREESTRESS_CALLS=N     calls of each tree stress case (default 1e8)
#   TEST_TIMEOUT_SCALE=N   multiply every timeout by N
#   PATTERN                only cases whose "<cc>/<case>" matches a glob
# Logs: build/tests/<cc>/logs/<case>.{out,err} (and build.log).
# Needs gdb for gdb-default-settings (scripts/install-deps.sh installs it).
# perf-report-names-stubs needs perf (linux-perf) and a kernel that lets this
# user sample cpu-clock; without them it is reported as SKIP, and the summary
# line says "N passed, M failed, K skipped".
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=$ROOT/tests
B=${RP_BUILD:-$ROOT/build}
RCC=$B/bin/relpoline-cc
CCS=${TEST_CCS:-gcc clang}
SAN=${SAN:-0}
SCALE=${TEST_TIMEOUT_SCALE:-1}

# Nothing from the caller's environment may steer the runtime.
for v in $(compgen -e); do
	case $v in RELPOLINE_*|RP_TEST_*) unset "$v" ;; esac
done

CFLAGS="-std=gnu11 -O2 -g -Wall -Wextra -Wno-unused-parameter -I$T"
if [ "$SAN" = 1 ]; then
	CFLAGS="$CFLAGS -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=0}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
	SCALE=$((SCALE * 3))
	: "${STRESS_CALLS:=100000000}"
	export STRESS_CALLS
fi
TREESTRESS_CALLS=${TREESTRESS_CALLS:-100000000}

PROFILE_OTHER_ID=52504c50524f46494c4552504c50524f46494c45   # t_profile_b's build-id (t_profile other)

npass=0
nfail=0
nskip=0
pass() { echo "PASS $1"; npass=$((npass + 1)); }
fail() { echo "FAIL $1 ($2)"; nfail=$((nfail + 1)); }
# Only where a tool the case needs cannot run here (never for a wrong result).
skip() { echo "SKIP $1 ($2)"; nskip=$((nskip + 1)); }

selected() {
	[ ${#PATTERNS[@]} -eq 0 ] && return 0
	local p
	for p in "${PATTERNS[@]}"; do
		# shellcheck disable=SC2053
		[[ $1 == $p ]] && return 0
		[[ $1 == *$p* ]] && return 0
	done
	return 1
}
PATTERNS=("$@")

if [ ! -x "$RCC" ] || [ ! -f "$B/lib/librelpoline.so" ]; then
	echo "FAIL setup (runtime not built: run make first)"
	echo "0 passed, 1 failed"
	exit 1
fi

declare -A BUILT

# run_build CC NAME COMMAND...: run a build command, remember whether NAME built.
run_build() {
	local cc=$1 name=$2
	shift 2
	if "$@" >>"$OUT/build.log" 2>&1; then
		BUILT[$cc/$name]=1
	else
		BUILT[$cc/$name]=0
		echo "build of $name failed: see $OUT/build.log" >&2
	fi
}

# build CC NAME OUTFILE ARGS...: compile with relpoline-cc for compiler CC.
build() {
	local cc=$1 name=$2 out=$3
	shift 3
	# shellcheck disable=SC2086
	run_build "$cc" "$name" env RELPOLINE_CC="$cc" "$RCC" $CFLAGS -o "$out" "$@"
}

# build_plain CC NAME OUTFILE ARGS...: compile with the plain compiler CC (no relpoline-cc).
build_plain() {
	local cc=$1 name=$2 out=$3
	shift 3
	# shellcheck disable=SC2086
	run_build "$cc" "$name" "$cc" $CFLAGS -I"$B/include" -o "$out" "$@"
}

# buildxx CC NAME OUTFILE ARGS...: the same for C++ with relpoline-c++.
buildxx() {
	local cc=$1 name=$2 out=$3 cxx=g++
	shift 3
	[ "$cc" = clang ] && cxx=clang++
	local flags="-O2 -g -Wall"
	[ "$SAN" = 1 ] && flags="$flags -fsanitize=address,undefined -fno-sanitize-recover=undefined"
	# shellcheck disable=SC2086
	run_build "$cc" "$name" env RELPOLINE_CXX="$cxx" "$B/bin/relpoline-c++" $flags -o "$out" "$@"
}

# first "check failed" line (or last stderr line) as the reason
reason_of() {
	local err=$1 r
	r=$(grep -m1 -E 'check failed|AddressSanitizer|runtime error|LeakSanitizer' "$err" 2>/dev/null)
	[ -z "$r" ] && r=$(grep -v -e '^\s*$' -e 'timeout -k' "$err" 2>/dev/null | tail -n1)
	r=${r//$'\t'/ }
	echo "${r:0:200}"
}

# run_case CC CASE BIN TIMEOUT CHECKFN [VAR=VAL...] -- ARGS...
run_case() {
	local cc=$1 case=$2 bin=$3 tmo=$4 checkfn=$5
	shift 5
	local envs=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	local name=$cc/$case
	selected "$name" || return 0
	if [ "${BUILT[$cc/$bin]:-0}" != 1 ]; then
		fail "$name" "build of $bin failed, see $OUT/build.log"
		return
	fi
	local log=$OUT/logs/$case
	rm -f "$log.out" "$log.err"
	# No exec: the subshell reports a death by signal into the log, not here.
	(cd "$OUT" && timeout -k 5 $((tmo * SCALE)) env "${envs[@]}" "./$bin" "$@"; exit $?) \
		>"$log.out" 2>"$log.err"
	local rc=$?
	if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
		fail "$name" "timeout after $((tmo * SCALE))s; $(reason_of "$log.err")"
		return
	fi
	if [ $rc -gt 128 ]; then
		local why
		why=$(reason_of "$log.err")
		fail "$name" "killed by signal $((rc - 128)) (SIG$(kill -l $((rc - 128)) 2>/dev/null))${why:+; $why}"
		return
	fi
	if [ $rc -ne 0 ]; then
		fail "$name" "exit $rc: $(reason_of "$log.err")"
		return
	fi
	local why=
	if [ -n "$checkfn" ] && ! why=$($checkfn "$log" 2>&1); then
		fail "$name" "$why"
		return
	fi
	pass "$name"
	[ -n "$why" ] && echo "$why"
}

# ---- output checks (called with the log prefix; print the reason, return 1) ----
warn_mode() {
	grep -i 'mode' "$1.err" | grep -iw 'on' | grep -iqw 'off' && return 0
	echo "no warning line naming mode and its values on/off on stderr"; return 1
}
warn_fallback() {
	grep -i 'fallback' "$1.err" | grep -iw 'retpoline' | grep -iqw 'indirect' && return 0
	echo "no warning line naming fallback and retpoline/indirect on stderr"; return 1
}
warn_promote_min() {
	grep -iq 'promote_min' "$1.err" && return 0
	echo "no warning naming PROMOTE_MIN on stderr"; return 1
}
warn_epoch_ms() {
	grep -iq 'epoch_ms' "$1.err" && return 0
	echo "no warning naming EPOCH_MS on stderr"; return 1
}
# a bad boolean: one warning naming it and every spelling a boolean takes
warn_bool() {
	local v
	for v in 'RELPOLINE_VERBOSE=2' 'RELPOLINE_THREAD=true'; do
		[ "$(grep -cF "relpoline: warning: $v is not valid (valid: 0|1|on|off|yes|no); using the default" "$1.err")" = 1 ] \
			|| { echo "no single warning for $v naming 0|1|on|off|yes|no on stderr"; return 1; }
	done
}
# unknown names: one warning each, with the nearest valid name; the values were not taken
warn_unknown() {
	local l n
	for l in 'RELPOLINE_STAT is not a relpoline setting: ignored; did you mean RELPOLINE_STATS?' \
		'RELPOLINE_EPOCHMS is not a relpoline setting: ignored; did you mean RELPOLINE_EPOCH_MS?'; do
		n=$(grep -cxF "relpoline: warning: $l" "$1.err")
		[ "$n" = 1 ] || { echo "$n lines '$l' on stderr, want 1"; return 1; }
	done
	n=$(grep -c '^relpoline: warning' "$1.err")
	[ "$n" = 2 ] || { echo "$n relpoline warning lines, want 2"; return 1; }
	if grep -q 'stats (pid' "$1.err"; then echo "RELPOLINE_STAT=1 printed the stats table"; return 1; fi
}
# empty values: a warning each that says so; the defaults stay (no stats table)
warn_empty() {
	local v
	for v in STATS MODE PROMOTE_MIN; do
		grep -q "^relpoline: warning: RELPOLINE_$v= is empty (valid: .*); using the default" "$1.err" \
			|| { echo "no warning for the empty RELPOLINE_$v= on stderr"; return 1; }
	done
	if grep -q 'stats (pid' "$1.err"; then echo "RELPOLINE_STATS= printed the stats table"; return 1; fi
}
# exactly one relpoline warning line, and it says what happened
one_degrade_warning() {
	local n
	n=$(grep -c '^relpoline: warning' "$1.err")
	[ "$n" = 1 ] || { echo "$n relpoline warning lines on stderr, want exactly 1"; return 1; }
	grep -q 'plain retpolines' "$1.err" && return 0
	echo "the warning does not say relpoline runs with plain retpolines"; return 1
}
no_warning() {
	if grep -iqE 'warn|invalid|bad value' "$1.err"; then
		echo "unexpected warning: $(grep -m1 -iE 'warn|invalid|bad value' "$1.err")"; return 1
	fi
}
stats_table() {
	local n
	n=$(grep -c . "$1.err")
	if [ "$n" -lt 5 ]; then echo "RELPOLINE_STATS=1: only $n lines on stderr"; return 1; fi
	if ! grep -iq 'promot' "$1.err"; then echo "RELPOLINE_STATS=1: no 'promot...' in the table"; return 1; fi
	# The program's destructor retired its module before the table: it still counts.
	if ! grep -Eq 'modules with thunks +[1-9]' "$1.err"; then
		echo "RELPOLINE_STATS=1: the table at exit counts no module"; return 1
	fi
}
stats_json() {
	local f=$OUT/logs/stats.json
	if [ ! -s "$f" ]; then echo "RELPOLINE_STATS=json: $f missing or empty"; return 1; fi
	if ! python3 -m json.tool "$f" >/dev/null 2>"$1.json-err"; then
		echo "invalid JSON in $f: $(head -n1 "$1.json-err")"; return 1
	fi
	python3 - "$f" <<'EOF'
import json, sys
def find(o, k):
    if isinstance(o, dict):
        for kk, v in o.items():
            if kk == k:
                yield v
            yield from find(v, k)
    elif isinstance(o, list):
        for v in o:
            yield from find(v, k)
d = json.load(open(sys.argv[1]))
v = list(find(d, "sites_promoted"))
if not v:
    print("JSON has no sites_promoted key"); sys.exit(1)
if not isinstance(v[0], int) or v[0] < 3:
    print("JSON sites_promoted = %r, want >= 3" % (v[0],)); sys.exit(1)
m = list(find(d, "modules"))
if not m or not isinstance(m[0], int) or m[0] < 1:
    print("JSON at exit: modules = %r, want >= 1" % (m[:1],)); sys.exit(1)
EOF
}
# RELPOLINE_STATS=json:...-%p.json: one file named by the pid, valid, with promotions
stats_json_pid() {
	local f
	f=$(ls "$OUT"/logs/stats-pid-*.json 2>/dev/null)
	if [ "$(echo "$f" | grep -c .)" != 1 ]; then echo "want exactly one stats-pid-PID.json, got: $f"; return 1; fi
	if ! [[ $f =~ stats-pid-[0-9]+\.json$ ]]; then echo "%p not expanded to a pid: $f"; return 1; fi
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["sites_promoted"] >= 3 and str(d["pid"]) in sys.argv[1] else 1)' "$f" \
		|| { echo "$f: invalid JSON, no promotions or another pid"; return 1; }
}
# the per-site report of t_sites (tests/check_sites.py says what it must hold)
sites_table() { python3 "$T/check_sites.py" table "$1.err"; }
sites_table_top() { python3 "$T/check_sites.py" table "$1.err" 2; }
sites_json() {
	python3 -m json.tool "$OUT/logs/sites.json" >/dev/null 2>"$1.json-err" ||
		{ echo "invalid JSON in $OUT/logs/sites.json: $(head -n1 "$1.json-err")"; return 1; }
	python3 "$T/check_sites.py" json "$OUT/logs/sites.json"
}
sites_cap() { python3 "$T/check_sites.py" cap "$1.err"; }
# a stats file that cannot be written gets one warning that says so
warn_stats_write() {
	grep -q '^relpoline: warning: cannot write stats to /dev/full' "$1.err" && return 0
	echo "no warning about the failed stats write on stderr"; return 1
}
# RELPOLINE_LOG=PATH: the warning is in the file, not on stderr
log_in_file() {
	if grep -q 'relpoline' "$1.err"; then echo "relpoline wrote to stderr despite RELPOLINE_LOG"; return 1; fi
	grep -iq 'promote_min' "$OUT/logs/relpoline.log" 2>/dev/null && return 0
	echo "no PROMOTE_MIN warning in $OUT/logs/relpoline.log"; return 1
}
# RELPOLINE_JITDUMP=1: the dumps of t_jitdump and its fork child against their snapshots
jitdump_check() {
	python3 "$T/jitdump_check.py" "$OUT/logs/jitdump"
}
stress_report() {
	grep -E '^stress:' "$1.out" | sed 's/^/    info: /'
	grep -E 'stopped|time limit' "$1.err" | sed 's/^/    info: /'
	return 0
}
tree_report() {
	grep -E '^(treestress:|promotion of)' "$1.out" | sed 's/^/    info: /'
	grep -E 'time limit' "$1.err" | sed 's/^/    info: /'
	return 0
}

# objdump: the site kinds the tests rely on really are in the binaries.
objdump_kinds() {
	local cc=$1
	local name=$cc/objdump-site-kinds
	selected "$name" || return 0
	if ! command -v objdump >/dev/null; then fail "$name" "objdump not found"; return; fi
	if [ "${BUILT[$cc/t_regs]:-0}" != 1 ] || [ "${BUILT[$cc/t_tail]:-0}" != 1 ]; then
		fail "$name" "binaries not built"; return
	fi
	local d r
	d=$(objdump -d "$OUT/t_regs")
	local hx='( [0-9a-f]{2}){4}'
	local nc nj nx
	nc=$(grep -cE "e8$hx\s+call\s+[0-9a-f]+ <__x86_indirect_thunk_" <<<"$d")
	nj=$(grep -cE "e9$hx\s+jmp\s+[0-9a-f]+ <__x86_indirect_thunk_" <<<"$d")
	nx=$(grep -cE "0f 85$hx\s+jne\s+[0-9a-f]+ <__x86_indirect_thunk_" <<<"$d")
	if [ "$nc" -lt 15 ] || [ "$nj" -lt 15 ] || [ "$nx" -ne 15 ]; then
		fail "$name" "t_regs: $nc call/$nj jmp/$nx jcc thunk sites, want 15/15/15"; return
	fi
	d=$(objdump -d "$OUT/t_tail")
	nj=$(grep -cE "e9$hx\s+jmp\s+[0-9a-f]+ <__x86_indirect_thunk_" <<<"$d")
	if [ "$nj" -lt 10 ]; then
		fail "$name" "t_tail: only $nj e9 (jmp) thunk sites, want >= 10"; return
	fi
	d=$(objdump -d "$OUT/t_stress")
	nc=$(grep -cE "e8$hx\s+call\s+[0-9a-f]+ <__x86_indirect_thunk_" <<<"$d")
	nj=$(grep -cE "e9$hx\s+jmp\s+[0-9a-f]+ <__x86_indirect_thunk_" <<<"$d")
	r=$(grep -oE "call\s+[0-9a-f]+ <__x86_indirect_thunk_[a-z0-9]+>" <<<"$d" | sed 's/.*thunk_//; s/>//' | sort -u | tr '\n' ' ')
	if [ "$nc" -lt 32 ] || [ "$nj" -lt 16 ]; then
		fail "$name" "t_stress: $nc call/$nj jmp thunk sites, want >= 32/16"; return
	fi
	# clang 14 does not emit jcc to a thunk (see t_tail.c); note it if that changes.
	local njcc
	njcc=$(objdump -d "$OUT/t_tail" "$OUT/t_stress" | grep -cE "0f 8[0-9a-f]$hx\s+j[a-z]+\s+[0-9a-f]+ <__x86_indirect_thunk_")
	echo "    info: $cc t_stress thunk registers used: $r; compiled jcc thunk sites: $njcc" >&2
	pass "$name"
}

# perf names the stubs: perf record -k mono on a program whose hot loop runs
# through a chain stub, perf inject --jit with the runtime's jit-PID.dump,
# then perf report must show relpoline_stub:<site>.  SKIP only if perf is not
# installed or the kernel refuses a software cpu-clock event to this user
# (perf_event_paranoid); docs/design.md has the same steps to run by hand.
perf_names_stubs() {
	local cc=$1
	local name=$cc/perf-report-names-stubs
	selected "$name" || return 0
	if [ "${BUILT[$cc/t_jitdump]:-0}" != 1 ]; then fail "$name" "t_jitdump not built"; return; fi
	if ! command -v perf >/dev/null; then skip "$name" "perf not installed (linux-perf)"; return; fi
	local d=$OUT/logs/perf
	rm -rf "$d" && mkdir -p "$d/buildid"
	# Our own build-id cache: perf inject would put the jitted objects in ~/.debug.
	local perf=(perf --buildid-dir "$d/buildid")
	if ! "${perf[@]}" record -e cpu-clock -k mono -N -o "$d/probe.data" -- true >"$d/probe.log" 2>&1; then
		skip "$name" "perf record -e cpu-clock refused: $(grep -m1 -iE 'error|permission|paranoid|not supported' "$d/probe.log")"
		return
	fi
	local calls=50000000
	[ "$SAN" = 1 ] && calls=20000000
	if ! (cd "$OUT" && timeout -k 5 $((120 * SCALE)) env RELPOLINE_JITDUMP=1 JITDUMPDIR="$d" \
		RELPOLINE_EPOCH_MS=0 RELPOLINE_PROMOTE_MIN=16 \
		"${perf[@]}" record -e cpu-clock -k mono -N -o "$d/perf.data" -- ./t_jitdump hot $calls) \
		>"$d/record.out" 2>"$d/record.err"; then
		fail "$name" "perf record of t_jitdump hot failed: $(tail -n1 "$d/record.err")"; return
	fi
	if ! "${perf[@]}" inject --jit -i "$d/perf.data" -o "$d/perf.jit.data" >"$d/inject.log" 2>&1; then
		fail "$name" "perf inject --jit failed: $(tail -n1 "$d/inject.log")"; return
	fi
	"${perf[@]}" report -i "$d/perf.jit.data" --stdio --sort dso,sym >"$d/report.txt" 2>"$d/report.err"
	if ! grep -q '\[\.\] relpoline_stub:' "$d/report.txt"; then
		fail "$name" "no relpoline_stub: symbol in perf report ($d/report.txt): $(grep -m3 '%' "$d/report.txt" | tr -s ' ' | tr '\n' ';')"
		return
	fi
	pass "$name"
	grep -E '\[\.\] relpoline_' "$d/report.txt" | head -n3 | sed 's/^ */    info: /'
}

for cc in $CCS; do
	if [ "$SAN" = 1 ]; then OUT=$B/tests-san/$cc; else OUT=$B/tests/$cc; fi
	mkdir -p "$OUT/logs"
	: >"$OUT/build.log"
	if ! command -v "$cc" >/dev/null; then
		fail "$cc/compiler" "$cc not installed"
		continue
	fi
	build "$cc" t_regs "$OUT/t_regs" "$T/t_regs.c" "$T/regs.S"
	build "$cc" t_abi "$OUT/t_abi" "$T/t_abi.c"
	build "$cc" t_tail "$OUT/t_tail" "$T/t_tail.c"
	build "$cc" t_idle "$OUT/t_idle" "$T/t_idle.c"
	build "$cc" t_config "$OUT/t_config" "$T/t_config.c"
	build "$cc" t_disable "$OUT/t_disable" "$T/t_disable.c"
	build "$cc" t_fork "$OUT/t_fork" "$T/t_fork.c" -pthread
	build "$cc" t_stats "$OUT/t_stats" "$T/t_stats.c"
	build "$cc" t_stress "$OUT/t_stress" "$T/t_stress.c" -pthread
	build "$cc" t_policy "$OUT/t_policy" "$T/t_policy.c"
	build "$cc" t_exit "$OUT/t_exit" "$T/t_exit.c" -pthread
	build "$cc" t_many "$OUT/t_many" "$T/t_many.c"
	buildxx "$cc" t_cxx "$OUT/t_cxx" "$T/t_cxx.cc"
	build "$cc" t_degrade "$OUT/t_degrade" "$T/t_degrade.c"
	build "$cc" t_forkarena "$OUT/t_forkarena" "$T/t_forkarena.c"
	# Tree stubs: the register fixture with many targets; Capstone checks the trees' structure.
	build "$cc" t_tree "$OUT/t_tree" "$T/t_tree.c" "$T/regs.S" "$T/tree_targets.S" -lcapstone
	build "$cc" t_treestress "$OUT/t_treestress" "$T/t_treestress.c" -pthread
	if [ "$SAN" != 1 ]; then # -static (librelpoline.a); the sanitizers cannot link statically
		build "$cc" t_regs_static "$OUT/t_regs_static" -static "$T/t_regs.c" "$T/regs.S"
		build "$cc" t_stress_static "$OUT/t_stress_static" -static "$T/t_stress.c" -pthread
	fi
	build "$cc" libtsites.so "$OUT/libtsites.so" -shared -fPIC "$T/lib_sites.c"
	build "$cc" tdl.so "$OUT/tdl.so" -shared -fPIC -DDL_LIB "$T/lib_sites.c"
	# The same library under another soname: another build-id (t_profile depart).
	build "$cc" tdl2.so "$OUT/tdl2.so" -shared -fPIC -DDL_LIB -Wl,-soname,tdl2.so "$T/lib_sites.c"
	if [ "${BUILT[$cc/libtsites.so]}" = 1 ]; then
		build "$cc" t_shlib "$OUT/t_shlib" "$T/t_shlib.c" -L"$OUT" -ltsites \
			-Wl,-rpath,"$OUT" -ldl
		# The per-site report, relpoline-stubs and capped sites (a site in libtsites.so too).
		build "$cc" t_sites "$OUT/t_sites" "$T/t_sites.c" -L"$OUT" -ltsites -Wl,-rpath,"$OUT"
	fi
	build "$cc" t_crowd "$OUT/t_crowd" "$T/t_crowd.c" -pthread -ldl
	if [ "$SAN" != 1 ]; then # the sanitizers reserve terabytes of address space: no RLIMIT_AS for them
		build "$cc" t_oom "$OUT/t_oom" "$T/t_oom.c" -ldl
	fi
	# Saved profiles: the same program three times, with its own build-id, with
	# another one (the "other build" of the same code), and with none at all.
	build "$cc" t_profile "$OUT/t_profile" "$T/t_profile.c" -ldl
	build "$cc" t_profile_b "$OUT/t_profile_b" "$T/t_profile.c" -ldl -Wl,--build-id=0x$PROFILE_OTHER_ID
	build "$cc" t_profile_nobid "$OUT/t_profile_nobid" "$T/t_profile.c" -ldl -Wl,--build-id=none

	# The runtime's contract with the program (ABI 3): its malloc, fds, signals,
	# SIGTRAP, memory protections, threads, exit, partial links.
	build "$cc" t_fds "$OUT/t_fds" "$T/t_fds.c"
	build "$cc" t_jitdump "$OUT/t_jitdump" "$T/t_jitdump.c"
	build "$cc" t_sigblock "$OUT/t_sigblock" "$T/t_sigblock.c" -pthread
	build "$cc" t_int3app "$OUT/t_int3app" "$T/t_int3app.c" -pthread
	build "$cc" t_rwx "$OUT/t_rwx" "$T/t_rwx.c" -pthread
	build "$cc" t_gdb "$OUT/t_gdb" "$T/t_gdb.c" -pthread
	build "$cc" t_unshare "$OUT/t_unshare" "$T/t_unshare.c"
	build "$cc" t_ttabfail "$OUT/t_ttabfail" "$T/t_ttabfail.c" -pthread
	build "$cc" t_tailsteady "$OUT/t_tailsteady" "$T/t_tailsteady.c" -pthread
	# Jump tables: only gcc makes them under its thunk flags (clang's
	# retpoline mode never does), with RELPOLINE_JUMP_TABLES=Yes (the
	# runtime's boolean syntax; a bad value must stop the build).
	if [ "$cc" = gcc ]; then
		run_build "$cc" t_jumptab env RELPOLINE_CC="$cc" RELPOLINE_JUMP_TABLES=Yes "$RCC" $CFLAGS \
			-o "$OUT/t_jumptab" "$T/t_jumptab.c"
		if selected "$cc/wrapper-bad-bool"; then
			if env RELPOLINE_CC="$cc" RELPOLINE_JUMP_TABLES=2 "$RCC" -c "$T/t_jumptab.c" \
				-o "$OUT/bad.o" 2>"$OUT/logs/wrapper-bad-bool.err"; then
				fail "$cc/wrapper-bad-bool" "RELPOLINE_JUMP_TABLES=2 was accepted"
			elif grep -q 'valid: 0|1|on|off|yes|no' "$OUT/logs/wrapper-bad-bool.err"; then
				pass "$cc/wrapper-bad-bool"
			else
				fail "$cc/wrapper-bad-bool" "no message naming the valid values"
			fi
		fi
	fi
	if [ "$SAN" != 1 ]; then # brings its own malloc: the sanitizers bring theirs
		build "$cc" t_malloc "$OUT/t_malloc" "$T/t_malloc.c"
	fi
	# A main program built with the plain compiler, linked against a relpoline-cc library.
	build "$cc" libtexitplain.so "$OUT/libtexitplain.so" -shared -fPIC "$T/t_exitplain_lib.c"
	if [ "${BUILT[$cc/libtexitplain.so]}" = 1 ]; then
		build_plain "$cc" t_exitplain "$OUT/t_exitplain" "$T/t_exitplain.c" -L"$OUT" \
			-ltexitplain -Wl,-rpath,"$OUT" -pthread -ldl
	fi
	# Partial link: relpoline-cc -r, then the final link with relpoline-cc.
	rm -f "$OUT/t_partial_a.o" "$OUT/t_partial_b.o" "$OUT/t_partial_ab.o" "$OUT/t_partial"
	build "$cc" t_partial_a.o "$OUT/t_partial_a.o" -c -DPART_A "$T/t_partial.c"
	build "$cc" t_partial_b.o "$OUT/t_partial_b.o" -c -DPART_B "$T/t_partial.c"
	if [ "${BUILT[$cc/t_partial_a.o]}" = 1 ] && [ "${BUILT[$cc/t_partial_b.o]}" = 1 ]; then
		# No $CFLAGS: clang links its sanitizer runtime into a -r output given -fsanitize.
		run_build "$cc" t_partial_ab.o env RELPOLINE_CC="$cc" "$RCC" -r -o "$OUT/t_partial_ab.o" \
			"$OUT/t_partial_a.o" "$OUT/t_partial_b.o"
	fi
	if [ "${BUILT[$cc/t_partial_ab.o]:-0}" = 1 ]; then
		build "$cc" t_partial "$OUT/t_partial" "$OUT/t_partial_ab.o" "$T/t_partial.c"
	fi

	DET=(RELPOLINE_EPOCH_MS=0 RELPOLINE_PROMOTE_MIN=16)
	# Targets that move every few ms and stubs that keep being replaced, by the
	# worker (BUSY) or by epochs on the program's own threads (BUSY_OFF).  Samples
	# that span phase changes must not pin a site (MIN_COVERAGE=1, and STUB=chain:
	# the cost model would leave such a mix on the fallback): with
	# RELPOLINE_THREAD=off a program whose sites are all pinned runs no epoch again.
	MOVING=(RELPOLINE_EPOCH_MS=1 RELPOLINE_PROMOTE_MIN=8 RELPOLINE_RELEARN_MISSES=10
		RELPOLINE_MAX_TARGETS=2 RELPOLINE_MAX_VERSIONS=1000 RELPOLINE_PIN_EPOCHS=20
		RELPOLINE_MIN_COVERAGE=1 RELPOLINE_STUB=chain)
	BUSY=(RELPOLINE_THREAD=on "${MOVING[@]}")
	BUSY_OFF=(RELPOLINE_THREAD=off "${MOVING[@]}")

	objdump_kinds "$cc"
	run_case "$cc" regs t_regs 60 no_warning "${DET[@]}" --
	run_case "$cc" regs-fallback-indirect t_regs 60 "" "${DET[@]}" RELPOLINE_FALLBACK=indirect --
	run_case "$cc" regs-mode-off t_regs 60 "" "${DET[@]}" RELPOLINE_MODE=off -- nopromote
	run_case "$cc" regs-ymm t_regs 60 "" "${DET[@]}" RP_TEST_VLEVEL=1 --
	run_case "$cc" regs-inline-epochs t_regs 60 "" RELPOLINE_THREAD=off RELPOLINE_EPOCH_MS=1 RELPOLINE_PROMOTE_MIN=16 \
		RELPOLINE_RELEARN_MISSES=20 RELPOLINE_MAX_TARGETS=1 -- inline
	run_case "$cc" abi t_abi 60 "" "${DET[@]}" --
	run_case "$cc" abi-fallback-indirect t_abi 60 "" "${DET[@]}" RELPOLINE_FALLBACK=indirect --
	run_case "$cc" tail t_tail 60 "" "${DET[@]}" --
	run_case "$cc" policy t_policy 60 "" "${DET[@]}" RELPOLINE_MAX_TARGETS=16 RELPOLINE_MIN_COVERAGE=75 \
		RELPOLINE_RELEARN_MISSES=100 RELPOLINE_MAX_VERSIONS=3 --
	run_case "$cc" many-sites t_many 60 "" "${DET[@]}" --
	run_case "$cc" cxx-virtual-exceptions t_cxx 60 "" "${DET[@]}" --
	run_case "$cc" fork-private-arena t_forkarena 60 "" "${DET[@]}" RELPOLINE_MAX_VERSIONS=1000 --
	run_case "$cc" degrade-no-membarrier t_degrade 60 no_warning -- membarrier
	run_case "$cc" degrade-no-code-writes t_degrade 60 one_degrade_warning -- procmem
	run_case "$cc" degrade-no-memfd t_degrade 60 one_degrade_warning -- memfd
	run_case "$cc" idle-epoch t_idle 60 "" "${DET[@]}" --
	run_case "$cc" disable-enable t_disable 60 "" "${DET[@]}" --
	run_case "$cc" fork t_fork 60 "" "${DET[@]}" --
	run_case "$cc" fork-worker t_fork 90 "" RELPOLINE_THREAD=on RELPOLINE_EPOCH_MS=1 RELPOLINE_PROMOTE_MIN=16 \
		RELPOLINE_RELEARN_MISSES=20 -- worker
	run_case "$cc" fork-thread-off t_fork 90 "" RELPOLINE_THREAD=off RELPOLINE_EPOCH_MS=1 RELPOLINE_PROMOTE_MIN=16 \
		RELPOLINE_RELEARN_MISSES=20 -- worker
	run_case "$cc" shlib t_shlib 60 "" "${DET[@]}" -- ./tdl.so
	if [ "$SAN" != 1 ]; then
		# Out of memory (RLIMIT_AS swept): never a crash, one accurate warning at most.
		run_case "$cc" oom-limit-at-start t_oom 180 "" -- start ./tdl.so
		run_case "$cc" oom-limit-before-hot-calls t_oom 120 "" -- hot ./tdl.so
		run_case "$cc" oom-limit-before-dlopen t_oom 120 "" -- dlopen ./tdl.so
	fi
	for th in on off; do
		run_case "$cc" crowded-dlopen-thread-$th t_crowd 60 "" "${DET[@]}" RELPOLINE_THREAD=$th -- ./tdl.so
	done
	mkdir -p "$OUT/logs/jitdump-config"
	run_case "$cc" config-api t_config 60 "" "${DET[@]}" JITDUMPDIR="$OUT/logs/jitdump-config" -- api
	run_case "$cc" config-default t_config 60 no_warning -- work promoted
	run_case "$cc" config-mode-bogus t_config 60 warn_mode RELPOLINE_MODE=bogus -- work promoted
	run_case "$cc" config-fallback-bogus t_config 60 warn_fallback RELPOLINE_FALLBACK=sideways -- work promoted
	run_case "$cc" config-promote-min-bad t_config 60 warn_promote_min RELPOLINE_PROMOTE_MIN=lots -- work promoted
	run_case "$cc" config-epoch-ms-bad t_config 60 warn_epoch_ms RELPOLINE_EPOCH_MS=-3 -- work promoted
	run_case "$cc" config-mode-off t_config 60 "" RELPOLINE_MODE=off -- work none
	run_case "$cc" config-mode-off-worker t_config 60 "" RELPOLINE_MODE=off RELPOLINE_EPOCH_MS=1 -- work none
	# One boolean syntax: 0|1|on|off|yes|no in any case, for MODE as for the others.
	run_case "$cc" config-mode-0 t_config 60 no_warning RELPOLINE_MODE=0 -- work none
	run_case "$cc" config-mode-no t_config 60 no_warning RELPOLINE_MODE=No -- work none
	run_case "$cc" config-bool-spellings t_config 60 no_warning RELPOLINE_MODE=YES RELPOLINE_THREAD=0 \
		RELPOLINE_PERF_MAP=no RELPOLINE_VERBOSE=Off -- work promoted
	run_case "$cc" config-bool-bad t_config 60 warn_bool RELPOLINE_VERBOSE=2 RELPOLINE_THREAD=true -- work promoted
	run_case "$cc" config-unknown-name t_config 60 warn_unknown RELPOLINE_STAT=1 RELPOLINE_EPOCHMS=5 -- work promoted
	# Variables of the compiler wrapper (tools/relpoline-cc), exported during a build: no warning.
	run_case "$cc" config-wrapper-vars t_config 60 no_warning RELPOLINE_CC="$cc" RELPOLINE_CXX=g++ \
		RELPOLINE_INCDIR=/nonexistent RELPOLINE_LIBDIR=/nonexistent RELPOLINE_JUMP_TABLES=1 -- work promoted
	run_case "$cc" config-empty-value t_config 60 warn_empty RELPOLINE_STATS= RELPOLINE_MODE= \
		RELPOLINE_PROMOTE_MIN= -- work promoted
	run_case "$cc" exit-while-busy t_exit 120 "" RELPOLINE_EPOCH_MS=1 RELPOLINE_PROMOTE_MIN=16 \
		RELPOLINE_RELEARN_MISSES=20 --
	run_case "$cc" exit-while-busy-worker t_exit 120 "" RELPOLINE_THREAD=on RELPOLINE_EPOCH_MS=1 \
		RELPOLINE_PROMOTE_MIN=16 RELPOLINE_RELEARN_MISSES=20 --
	run_case "$cc" thread-churn t_exit 120 "" RELPOLINE_EPOCH_MS=1 RELPOLINE_PROMOTE_MIN=16 -- churn
	run_case "$cc" stress-blocked-signals t_stress 120 stress_report RELPOLINE_EPOCH_MS=1 \
		RELPOLINE_PROMOTE_MIN=32 RELPOLINE_RELEARN_MISSES=50 RELPOLINE_MAX_VERSIONS=1000 \
		STRESS_BLOCK_SIGNALS=1 STRESS_CALLS=50000000 STRESS_SECONDS=$((100 * SCALE)) --
	if [ "$SAN" != 1 ]; then
		run_case "$cc" static-regs t_regs_static 60 "" "${DET[@]}" --
		run_case "$cc" static-stress t_stress_static 180 stress_report RELPOLINE_EPOCH_MS=1 \
			RELPOLINE_PROMOTE_MIN=32 RELPOLINE_RELEARN_MISSES=50 RELPOLINE_MAX_VERSIONS=1000 \
			STRESS_CALLS=100000000 STRESS_SECONDS=$((150 * SCALE)) --
	fi
	run_case "$cc" stats-api t_stats 60 "" "${DET[@]}" --
	run_case "$cc" stats-table t_stats 60 stats_table "${DET[@]}" RELPOLINE_STATS=1 --
	rm -f "$OUT/logs/stats.json"
	run_case "$cc" stats-json t_stats 60 stats_json "${DET[@]}" "RELPOLINE_STATS=json:$OUT/logs/stats.json" --
	rm -f "$OUT"/logs/stats-pid-*.json
	run_case "$cc" stats-json-pid t_stats 60 stats_json_pid "${DET[@]}" \
		"RELPOLINE_STATS=json:$OUT/logs/stats-pid-%p.json" --
	run_case "$cc" stats-json-write-fails t_stats 60 warn_stats_write "${DET[@]}" RELPOLINE_STATS=json:/dev/full --
	# Per-site report (RELPOLINE_STATS=sites, the JSON's sites, STATS_TOP), relpoline-stubs on a
	# live process, and a site that has used all its stub versions (tests/check_sites.py).
	SITES=("${DET[@]}" RELPOLINE_MAX_TARGETS=16 RELPOLINE_MIN_COVERAGE=90)
	run_case "$cc" sites-table t_sites 60 sites_table "${SITES[@]}" RELPOLINE_STATS=sites -- report
	run_case "$cc" sites-table-top t_sites 60 sites_table_top "${SITES[@]}" RELPOLINE_STATS=sites \
		RELPOLINE_STATS_TOP=2 -- report
	rm -f "$OUT/logs/sites.json"
	run_case "$cc" sites-json t_sites 60 sites_json "${SITES[@]}" "RELPOLINE_STATS=json:$OUT/logs/sites.json" \
		-- report
	run_case "$cc" sites-capped t_sites 60 sites_cap "${SITES[@]}" RELPOLINE_MAX_VERSIONS=2 \
		RELPOLINE_RELEARN_MISSES=100 RELPOLINE_PIN_EPOCHS=3 RELPOLINE_VERBOSE=1 RELPOLINE_STATS=sites -- cap
	run_case "$cc" sites-relpoline-stubs t_sites 60 "" "${SITES[@]}" RELPOLINE_RELEARN_MISSES=100 \
		RP_STUBS_TOOL="$B/bin/relpoline-stubs" -- stubs
	rm -f "$OUT/logs/relpoline.log"
	run_case "$cc" log-to-file t_config 60 log_in_file RELPOLINE_PROMOTE_MIN=lots \
		"RELPOLINE_LOG=$OUT/logs/relpoline.log" -- work promoted
	run_case "$cc" log-syslog t_config 60 "" -- syslog
	run_case "$cc" stress t_stress 180 stress_report RELPOLINE_EPOCH_MS=1 RELPOLINE_PROMOTE_MIN=32 \
		RELPOLINE_RELEARN_MISSES=50 RELPOLINE_MAX_VERSIONS=1000 RELPOLINE_ARENA_KB=65536 \
		STRESS_SECONDS=$((150 * SCALE)) --
	run_case "$cc" stress-worker t_stress 180 stress_report RELPOLINE_THREAD=on RELPOLINE_EPOCH_MS=1 \
		RELPOLINE_PROMOTE_MIN=32 RELPOLINE_RELEARN_MISSES=50 RELPOLINE_MAX_VERSIONS=1000 \
		RELPOLINE_ARENA_KB=65536 STRESS_CALLS=100000000 STRESS_SECONDS=$((150 * SCALE)) --

	if [ "$SAN" != 1 ]; then
		run_case "$cc" malloc-own-allocator t_malloc 60 "" RELPOLINE_THREAD=on RELPOLINE_EPOCH_MS=1 \
			RELPOLINE_PROMOTE_MIN=8 RELPOLINE_RELEARN_MISSES=20 RELPOLINE_MAX_VERSIONS=1000 \
			RELPOLINE_PIN_EPOCHS=20 RELPOLINE_MIN_COVERAGE=1 RELPOLINE_STUB=chain --
		run_case "$cc" malloc-own-allocator-thread-off t_malloc 60 "" RELPOLINE_THREAD=off \
			RELPOLINE_EPOCH_MS=1 RELPOLINE_PROMOTE_MIN=8 RELPOLINE_RELEARN_MISSES=20 \
			RELPOLINE_MAX_VERSIONS=1000 RELPOLINE_PIN_EPOCHS=20 RELPOLINE_MIN_COVERAGE=1 RELPOLINE_STUB=chain -- nothread
		# The same with everything that reads or writes files on the epochs and at exit:
		# profile saves (every second and at exit), jitdump records, the per-site table.
		rm -rf "$OUT/logs/malloc-files" && mkdir -p "$OUT/logs/malloc-files"
		run_case "$cc" malloc-own-allocator-files t_malloc 60 "" RELPOLINE_THREAD=off \
			RELPOLINE_EPOCH_MS=1 RELPOLINE_PROMOTE_MIN=8 RELPOLINE_RELEARN_MISSES=20 \
			RELPOLINE_MAX_VERSIONS=1000 RELPOLINE_PIN_EPOCHS=20 RELPOLINE_MIN_COVERAGE=1 RELPOLINE_STUB=chain \
			RELPOLINE_PROFILE="$OUT/logs/malloc-files" RELPOLINE_PROFILE_SAVE_S=1 RELPOLINE_JITDUMP=1 \
			JITDUMPDIR="$OUT/logs/malloc-files" RELPOLINE_STATS=sites -- nothread
	fi
	run_case "$cc" fds-none-kept t_fds 60 "" "${DET[@]}" RELPOLINE_RELEARN_MISSES=50 -- promote
	run_case "$cc" fds-none-kept-worker t_fds 60 "" RELPOLINE_THREAD=on RELPOLINE_EPOCH_MS=1 \
		RELPOLINE_PROMOTE_MIN=16 RELPOLINE_RELEARN_MISSES=50 -- promote
	run_case "$cc" fds-none-kept-thread-off t_fds 60 "" RELPOLINE_THREAD=off RELPOLINE_EPOCH_MS=1 \
		RELPOLINE_PROMOTE_MIN=16 RELPOLINE_RELEARN_MISSES=50 -- promote
	run_case "$cc" fds-closed-and-dup2 t_fds 60 "" "${DET[@]}" RELPOLINE_RELEARN_MISSES=50 -- closeall
	# The jitdump file is opened, appended to and closed per record; only its marker mapping stays.
	rm -rf "$OUT/logs/jitdump-fds" && mkdir -p "$OUT/logs/jitdump-fds"
	for how in promote closeall; do
		run_case "$cc" fds-$how-jitdump t_fds 60 "" "${DET[@]}" RELPOLINE_RELEARN_MISSES=50 \
			RELPOLINE_JITDUMP=1 JITDUMPDIR="$OUT/logs/jitdump-fds" -- $how
	done
	# perf's jitdump: the file against the live code, the fork child's own file; then perf itself.
	rm -rf "$OUT/logs/jitdump" && mkdir -p "$OUT/logs/jitdump"
	run_case "$cc" jitdump-file-and-fork t_jitdump 60 jitdump_check "${DET[@]}" RELPOLINE_JITDUMP=1 \
		JITDUMPDIR="$OUT/logs/jitdump" -- dump
	perf_names_stubs "$cc"
	run_case "$cc" fds-closed-and-dup2-worker t_fds 60 "" RELPOLINE_THREAD=on RELPOLINE_EPOCH_MS=1 \
		RELPOLINE_PROMOTE_MIN=16 RELPOLINE_RELEARN_MISSES=50 -- closeall
	# The sample table's mmap refused by the kernel (seccomp): retried every 4096 calls, not each.
	run_case "$cc" sample-table-unmappable t_ttabfail 60 ""
	run_case "$cc" sigblock-handler-full-mask t_sigblock 60 "" "${BUSY[@]}" -- handler
	run_case "$cc" sigblock-raw-rt-sigprocmask t_sigblock 60 "" "${BUSY[@]}" -- rawmask
	run_case "$cc" sigblock-swapcontext t_sigblock 60 "" "${BUSY[@]}" -- swapcontext
	run_case "$cc" sigblock-sigsetmask t_sigblock 60 "" "${BUSY[@]}" -- sigsetmask
	run_case "$cc" sigblock-handler-full-mask-thread-off t_sigblock 60 "" "${BUSY_OFF[@]}" -- handler
	run_case "$cc" sigblock-raw-rt-sigprocmask-thread-off t_sigblock 60 "" "${BUSY_OFF[@]}" -- rawmask
	run_case "$cc" int3-in-app t_int3app 60 "" "${BUSY[@]}" --
	run_case "$cc" int3-in-app-thread-off t_int3app 60 "" "${BUSY_OFF[@]}" --
	run_case "$cc" no-wx-mapping t_rwx 60 "" RELPOLINE_EPOCH_MS=0 RELPOLINE_PROMOTE_MIN=8 \
		RELPOLINE_MAX_VERSIONS=1000 --
	run_case "$cc" no-wx-mapping-worker t_rwx 60 "" "${BUSY[@]}" -- worker
	run_case "$cc" no-wx-mapping-thread-off t_rwx 60 "" "${BUSY_OFF[@]}" -- worker
	run_case "$cc" gdb-default-settings t_gdb 240 "" "${BUSY[@]}" --
	run_case "$cc" gdb-default-settings-thread-off t_gdb 240 "" "${BUSY_OFF[@]}" --
	run_case "$cc" thread-off-unshare t_unshare 60 "" RELPOLINE_THREAD=off RELPOLINE_EPOCH_MS=1 \
		RELPOLINE_PROMOTE_MIN=8 RELPOLINE_RELEARN_MISSES=20 -- env
	run_case "$cc" thread-off-api-unshare t_unshare 60 "" RELPOLINE_THREAD=on RELPOLINE_EPOCH_MS=1 \
		RELPOLINE_PROMOTE_MIN=8 RELPOLINE_RELEARN_MISSES=20 -- api
	for th in on off; do
		run_case "$cc" exit-plain-main-thread-$th t_exitplain 120 "" RELPOLINE_THREAD=$th \
			RELPOLINE_EPOCH_MS=1 RELPOLINE_PROMOTE_MIN=16 RELPOLINE_RELEARN_MISSES=20 \
			RELPOLINE_MAX_TARGETS=2 RELPOLINE_MAX_VERSIONS=1000 RELPOLINE_PIN_EPOCHS=20 \
			RELPOLINE_MIN_COVERAGE=1 RELPOLINE_STUB=chain --
	done
	# Tree stubs (RELPOLINE_STUB=tree forces them; auto lets the cost model choose).
	TREE_DET=(RELPOLINE_EPOCH_MS=0 RELPOLINE_PROMOTE_MIN=16 RELPOLINE_STUB=tree
		RELPOLINE_RELEARN_MISSES=1000000)
	run_case "$cc" tree-regs t_tree 60 no_warning "${TREE_DET[@]}" --
	run_case "$cc" tree-regs-fallback-indirect t_tree 60 "" "${TREE_DET[@]}" RELPOLINE_FALLBACK=indirect --
	run_case "$cc" tree-regs-ymm t_tree 60 "" "${TREE_DET[@]}" RP_TEST_VLEVEL=1 --
	run_case "$cc" tree-policy-narrow-wide t_tree 60 "" RELPOLINE_EPOCH_MS=0 RELPOLINE_PROMOTE_MIN=256 \
		RELPOLINE_STUB=auto RELPOLINE_RELEARN_MISSES=100 -- policy
	for th in off on; do
		run_case "$cc" tree-promotion-latency-thread-$th t_tree 60 tree_report RELPOLINE_STUB=auto \
			RELPOLINE_THREAD=$th -- latency
	done
	for stub in tree auto; do
		for th in on off; do
			run_case "$cc" treestress-$stub-thread-$th t_treestress 60 tree_report RELPOLINE_EPOCH_MS=1 \
				RELPOLINE_PROMOTE_MIN=8 RELPOLINE_RELEARN_MISSES=16 RELPOLINE_MAX_VERSIONS=1000 \
				RELPOLINE_STUB=$stub RELPOLINE_THREAD=$th RELPOLINE_ARENA_KB=65536 \
				TS_CALLS="$TREESTRESS_CALLS" TS_SECONDS=$((40 * SCALE)) --
		done
	done
	run_case "$cc" partial-link t_partial 60 "" "${DET[@]}" --
	if [ "$cc" = gcc ]; then
		run_case "$cc" jump-table-tree t_jumptab 60 "" "${DET[@]}" RELPOLINE_STUB=tree T_WANT_TREE=1 --
		run_case "$cc" jump-table-auto t_jumptab 60 "" "${DET[@]}" --
	fi
	# Saved profiles (t_profile.c drives children of itself with RELPOLINE_PROFILE).
	run_case "$cc" profile-warm-start t_profile 120 "" -- warm ./tdl.so
	run_case "$cc" profile-warm-start-no-build-id t_profile_nobid 120 "" -- warm
	run_case "$cc" profile-merge t_profile 60 "" -- merge
	run_case "$cc" profile-corrupt t_profile 180 "" -- corrupt ./tdl.so
	run_case "$cc" profile-other-build t_profile 60 "" -- other ./t_profile_b "$PROFILE_OTHER_ID"
	run_case "$cc" profile-concurrent-writers t_profile 120 "" -- writers
	run_case "$cc" profile-lock-held t_profile 60 "" -- held ./tdl.so
	run_case "$cc" profile-periodic-save t_profile 60 "" -- periodic
	run_case "$cc" profile-auto-directory t_profile 60 "" -- auto
	run_case "$cc" profile-warm-no-records t_profile 120 "" -- lazy ./tdl.so
	run_case "$cc" profile-warm-target-unloaded t_profile 60 "" -- depart ./tdl.so ./tdl2.so
	for th in on off; do
		run_case "$cc" tail-steady-one-stub-thread-$th t_tailsteady 60 "" RELPOLINE_THREAD=$th \
			RELPOLINE_EPOCH_MS=1 RELPOLINE_PROMOTE_MIN=64 RELPOLINE_RELEARN_MISSES=50 --
	done
done

# Not per compiler: the runtime's files call only downward (docs/design.md, "Map").
if selected layers; then
	if r=$("$ROOT/scripts/check-layers.sh" "$B/obj/runtime" 2>&1); then
		pass layers
	else
		fail layers "$(echo "$r" | head -n1)"
	fi
fi

if [ "$nskip" -gt 0 ]; then
	echo "$npass passed, $nfail failed, $nskip skipped"
else
	echo "$npass passed, $nfail failed"
fi
[ "$nfail" -eq 0 ]
