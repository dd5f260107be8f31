#!/bin/bash
# check-gawk: gawk 5.2.1's own `make check` (Debian's source package), the
# warm-start measurement of issue 9: a suite of hundreds of short processes.
#
#   tests/real/check-gawk.sh              setup, build, measure (about 15 minutes on 2 cores)
#   make check-gawk                       the same
#
# Phases:
#   setup   `apt-get source gawk/bookworm` into $WORK/src (needs a deb-src
#           entry: tests/real/check-bash.sh adds one; build dependencies:
#           gcc, make, dpkg-dev for apt-get source)
#           (the manual is not built: its sources are not in the package)
#   build   ./configure && make, upstream style, three times: plain (gcc),
#           retpoline (gcc -mindirect-branch=thunk -mindirect-branch-register
#           -fno-jump-tables) and relpoline (relpoline-cc); cached
#   warm    one `make check` of the relpoline build with
#           RELPOLINE_PROFILE=$WORK/profile-warm (empty before): the earlier
#           run whose profiles the warm runs start from
#   timed   GAWK_ROUNDS rounds (default 3), interleaved: plain, retpoline,
#           relpoline (no profile), relpoline-profile (a fresh copy of the
#           warmed profiles each round, so every timed run starts from a
#           profile warmed by exactly one earlier run); wall time of the
#           whole `make check`, and its verdict
#   stats   one more run of each relpoline setting with
#           RELPOLINE_STATS=json:<dir>/s-%p.json (untimed: the JSON files
#           cost time): processes, processes that promoted a site, that
#           promoted from a profile, profile files written
# Environment: RP_BUILD (default <repo>/build), GAWK_DIR (default
# <repo>/build/real/gawk), GAWK_ROUNDS, GAWK_NO_SETUP=1, GAWK_REBUILD=1.
# The last lines are the report, also in $WORK/report.txt.
set -uo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RP_BUILD=${RP_BUILD:-$ROOT/build}
WORK=${GAWK_DIR:-$ROOT/build/real/gawk}
ROUNDS=${GAWK_ROUNDS:-3}
RCC=$RP_BUILD/bin/relpoline-cc

die() { echo "check-gawk: $*" >&2; exit 2; }
log() { echo "check-gawk: $*" >&2; }
[ -x "$RCC" ] || die "no $RCC: run make first"
mkdir -p "$WORK"

# ---- setup ----
if [ "${GAWK_NO_SETUP:-0}" != 1 ] && ! ls -d "$WORK"/src/gawk-*/ >/dev/null 2>&1; then
	mkdir -p "$WORK/src"
	log "apt-get source gawk"
	(cd "$WORK/src" && apt-get source -q gawk/bookworm) >"$WORK/src/source.log" 2>&1 ||
		die "apt-get source gawk failed (see $WORK/src/source.log; a deb-src entry is needed: tests/real/check-bash.sh adds one)"
fi
SRC=$(ls -d "$WORK"/src/gawk-*/ 2>/dev/null | head -n1)
[ -n "$SRC" ] || die "no gawk source in $WORK/src"

# ---- build ----
build() {
	local cfg=$1 cc=$2 cflags=$3 dir=$WORK/$1
	local stamp="$cc $cflags $(cat "$RP_BUILD/lib/relpoline-module.o" 2>/dev/null | md5sum)"
	if [ "${GAWK_REBUILD:-0}" != 1 ] && [ -x "$dir/gawk" ] && [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$stamp" ]; then
		return
	fi
	log "build $cfg"
	rm -rf "$dir" && cp -a "$SRC" "$dir" || die "copy"
	# -k: doc/ fails (Debian's source package leaves the manual's sources
	# out); what the tests need is checked below.
	(cd "$dir" && CC=$cc CFLAGS=$cflags ./configure -q && make -j2 -s -k) >"$WORK/build-$cfg.log" 2>&1
	[ -x "$dir/gawk" ] && [ -f "$dir/extension/.libs/ordchr.so" ] || die "build of $cfg failed: $WORK/build-$cfg.log"
	echo "$stamp" >"$dir/.stamp"
}
build plain gcc "-O2 -g"
build retpoline gcc "-O2 -g -mindirect-branch=thunk -mindirect-branch-register -fno-jump-tables"
build relpoline "$RCC" "-O2 -g"
[ "$(objdump -d "$WORK/relpoline/gawk" | grep -c 'call.*__x86_indirect_thunk')" -gt 0 ] ||
	die "the relpoline gawk has no thunk calls"

# A clean environment for the suite: nothing of ours leaks in.
clean_env=(env -i PATH="$PATH" HOME="${HOME:-/root}" LC_ALL=C TERM=dumb)

# suite CFG NAME [VAR=VAL...]: the test suite of build CFG (`make check` in
# test/: the top level's also wants the manual's sources, which Debian's
# source package leaves out); prints "wall cpu verdict" (seconds; cpu: user
# + system of every process of the suite).
suite() {
	local cfg=$1 name=$2
	shift 2
	local out=$WORK/logs/$name.log tf=$WORK/logs/$name.time
	mkdir -p "$WORK/logs"
	local TIMEFORMAT="%R %U %S"
	{ time (cd "$WORK/$cfg" && "${clean_env[@]}" "$@" make -s -C test check >"$out" 2>&1); } 2>"$tf"
	local verdict
	verdict=$(grep -E 'ALL TESTS PASSED|TESTS? FAILED' "$out" | tail -n1)
	awk -v v="${verdict:-no verdict}" '{ printf "%.3f %.3f %s\n", $1, $2 + $3, v }' "$tf"
}

# ---- warm: one earlier run ----
rm -rf "$WORK/profile-warm" && mkdir -p "$WORK/profile-warm"
log "warm-up run (relpoline, RELPOLINE_PROFILE=$WORK/profile-warm)"
read -r s c v < <(suite relpoline warmup RELPOLINE_PROFILE="$WORK/profile-warm")
log "  ${s}s (cpu ${c}s), $v; $(ls "$WORK/profile-warm" | wc -l) profile files"

fresh_profile() {
	rm -rf "$WORK/profile-run" && cp -a "$WORK/profile-warm" "$WORK/profile-run"
}

# ---- timed rounds ----
rm -f "$WORK/times.txt"
for r in $(seq "$ROUNDS"); do
	for cfg in plain retpoline relpoline relpoline-profile; do
		case $cfg in
		relpoline-profile) fresh_profile; read -r s c v < <(suite relpoline "$cfg-$r" RELPOLINE_PROFILE="$WORK/profile-run") ;;
		*) read -r s c v < <(suite "$cfg" "$cfg-$r") ;;
		esac
		log "round $r $cfg: ${s}s (cpu ${c}s), $v"
		echo "$r $cfg $s $c $v" >>"$WORK/times.txt"
	done
done

# ---- stats runs (untimed) ----
for cfg in relpoline relpoline-profile; do
	d=$WORK/stats/$cfg
	rm -rf "$d" && mkdir -p "$d"
	if [ $cfg = relpoline-profile ]; then
		fresh_profile
		suite relpoline "stats-$cfg" RELPOLINE_PROFILE="$WORK/profile-run" RELPOLINE_STATS="json:$d/s-%p.json" >/dev/null
	else
		suite relpoline "stats-$cfg" RELPOLINE_STATS="json:$d/s-%p.json" >/dev/null
	fi
done

python3 - "$WORK" "$ROUNDS" <<'EOF' | tee "$WORK/report.txt"
import glob, json, os, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
times, cpu, verdicts = {}, {}, {}
for line in open(os.path.join(work, "times.txt")):
    p = line.split(None, 4)
    times.setdefault(p[1], []).append(float(p[2]))
    cpu.setdefault(p[1], []).append(float(p[3]))
    verdicts.setdefault(p[1], set()).add(p[4].strip())
print(f"gawk 5.2.1 test suite (make -C test check), {rounds} interleaved rounds, seconds: "
      "median (min-max); cpu = user + system of all its processes")
plain, pcpu = statistics.median(times["plain"]), statistics.median(cpu["plain"])
for cfg in ["plain", "retpoline", "relpoline", "relpoline-profile"]:
    v, c = times.get(cfg, []), cpu.get(cfg, [])
    if not v:
        continue
    m, mc = statistics.median(v), statistics.median(c)
    print(f"  {cfg:<18} wall {m:7.2f} ({min(v):.2f}-{max(v):.2f}) {m / plain:5.3f}x   "
          f"cpu {mc:6.2f} ({min(c):.2f}-{max(c):.2f}) {mc / pcpu:5.3f}x plain   "
          f"{'; '.join(sorted(verdicts[cfg]))}")
for cfg in ["relpoline", "relpoline-profile"]:
    files = glob.glob(os.path.join(work, "stats", cfg, "s-*.json"))
    n = prom = prof = written = 0
    sites = psites = 0
    for f in files:
        try:
            d = json.load(open(f))
        except ValueError:
            continue
        n += 1
        prom += d.get("sites_promoted", 0) > 0
        prof += d.get("profile_sites", 0) > 0
        written += d.get("profile_written", 0)
        sites += d.get("sites_promoted", 0)
        psites += d.get("profile_sites", 0)
    if n:
        print(f"  {cfg}: {n} processes, {prom} promoted something ({100.0 * prom / n:.1f}%), "
              f"{prof} from a profile ({100.0 * prof / n:.1f}%); sites promoted {sites} "
              f"(from profiles {psites}); profile files written {written}")
EOF
