#!/bin/bash
# check-python: CPython 3.11 (Debian's source package, the builds of
# bench/real/build.sh) runs a set of its own regression-test modules with
# regrtest, plain and relpoline, and the results are compared test case by
# test case.  See tests/real/README.md.
#
#   tests/real/check-python.sh            (or: make check-python)
#
# Knobs (environment):
#   PY_TESTS="test_a test_b"   the modules to run (default: the list below)
#   PY_FLAKY="test.test_x.C.test_y ..."  test cases compared but not failed
#   PY_JOBS=2                  regrtest -j (worker processes per suite)
#   PY_TIMEOUT=300             regrtest --timeout, per test module (seconds)
#   PY_CHECK_DIR=build/real/python-check   work directory (runs, report)
#   RP_BUILD=build             the relpoline runtime under test: the relpoline
#                              suites run with LD_LIBRARY_PATH=$RP_BUILD/lib
#                              (the binary's RUNPATH is build/lib; the build
#                              itself always uses build/bin/relpoline-cc)
#
# Three suites, one after the other, each `python -m test -jN --junit-xml`:
#   plain                 build/real/python/plain/python
#   relpoline-default     build/real/python/relpoline/python, no RELPOLINE_* tuning
#   relpoline-aggressive  the same with RELPOLINE_EPOCH_MS=1 RELPOLINE_PROMOTE_MIN=8
# regrtest runs every module in a fresh worker process of the same binary,
# and the tests start more (test_subprocess, test_signal, ...), so the
# relpoline runtime is exercised in a few hundred processes per suite.
# A relpoline suite passes when every test case has the same outcome as in
# plain (pass, skip, expected failure, failure, error; a case missing on one
# side counts as a difference) and its stats (RELPOLINE_STATS=json:...%p)
# show promoted call sites.  Exit status 0 only then.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${PY_CHECK_DIR:-$ROOT/build/real/python-check}
JOBS=${PY_JOBS:-2}
TMO=${PY_TIMEOUT:-300}
AGGRESSIVE="RELPOLINE_EPOCH_MS=1 RELPOLINE_PROMOTE_MIN=8"
RP_BUILD=$(cd "${RP_BUILD:-$ROOT/build}" && pwd) || exit 1
[ -e "$RP_BUILD/lib/librelpoline.so.0" ] || { echo "no $RP_BUILD/lib/librelpoline.so.0 (run make)" >&2; exit 1; }
# 76 modules: the language (grammar, scopes, classes, descriptors,
# generators, coroutines, exceptions, pattern-free syntax), the builtin types
# (int, float, str, bytes, list, tuple, dict, set), the C-accelerated
# library modules (re, json, itertools, functools, collections, decimal,
# pickle, struct, array, zlib, heapq, bisect, random, math) and the
# process/thread machinery (threading, thread, queue, signal, subprocess,
# gc, sys).  All of them pass on the plain build here, as root, offline.
DEFAULT_TESTS="test_grammar test_dict test_list test_tuple test_set test_string
test_unicode test_re test_json test_class test_generators test_exceptions
test_threading test_int test_long test_float test_math test_itertools
test_functools test_collections test_format test_bytes test_scope test_descr
test_bool test_builtin test_compile test_contextlib test_coroutines
test_dataclasses test_enum test_fstring test_genexps test_iter test_listcomps
test_opcodes test_operator test_raise test_richcmp test_slice test_sort
test_statistics test_textwrap test_types test_unpack test_with test_weakref
test_heapq test_bisect test_struct test_fractions test_random test_zlib
test_ast test_typing test_super test_property test_abc test_copy test_deque
test_defaultdict test_ordered_dict test_userdict test_array test_base64
test_csv test_difflib test_pprint test_queue test_thread test_gc test_pickle
test_decimal test_sys test_signal test_subprocess"
TESTS=$(echo ${PY_TESTS:-$DEFAULT_TESTS})
SUITES="plain relpoline-default relpoline-aggressive"

log() { echo "[check-python] $*" >&2; }
now() { date +%s; }
T0=$(now)
declare -A PHASE_T=()
mkdir -p "$WORK"

# ---- setup and builds (shared with bench/real: nothing is built twice) ----
t=$(now)
if [ ! -e "$ROOT/build/real/src/python3.11/configure" ]; then
	log "no CPython source yet: bench/real/setup.sh"
	bash "$ROOT/bench/real/setup.sh" || exit 1
else
	bash "$ROOT/bench/real/python/setup.sh" || exit 1
fi
PHASE_T[setup]=$(( $(now) - t ))
t=$(now)
PLAIN=$(bash "$ROOT/bench/real/build.sh" python plain) || { log "plain build failed"; exit 1; }
RP=$(bash "$ROOT/bench/real/build.sh" python relpoline) || { log "relpoline build failed"; exit 1; }
PHASE_T[builds]=$(( $(now) - t ))
log "plain:     $PLAIN"
log "relpoline: $RP (runtime $RP_BUILD/lib/librelpoline.so.0)"

# ---- one suite ----------------------------------------------------------
# run_suite NAME BINARY [VAR=VALUE...]: everything lands in $WORK/runs/NAME
run_suite() {
	local name=$1 bin=$2; shift 2
	local d=$WORK/runs/$name
	rm -rf "$d"; mkdir -p "$d/tmp" "$d/home" "$d/stats"
	# tests that switch to another user (test_subprocess) write stats too
	chmod 1777 "$d/stats" "$d/tmp"
	local -a envv=(PATH=/usr/local/bin:/usr/bin:/bin HOME="$d/home" LANG=C.UTF-8 TMPDIR="$d/tmp"
	               PYTHONPYCACHEPREFIX="$d/pycache")
	[ "$name" = plain ] || envv+=(LD_LIBRARY_PATH="$RP_BUILD/lib" "RELPOLINE_STATS=json:$d/stats/stats-%p.json" "$@")
	local t=$(now)
	log "suite $name: $(echo $TESTS | wc -w) modules, -j$JOBS${*:+, $*}"
	( cd "$d/tmp" && env -i "${envv[@]}" timeout -k 30 3600 "$bin" -m test -j"$JOBS" --timeout "$TMO" \
		--junit-xml "$d/junit.xml" $TESTS ) > "$d/out.txt" 2>&1 < /dev/null
	echo $? > "$d/rc"
	echo $(( $(now) - t )) > "$d/wall"
	log "suite $name: exit $(cat "$d/rc"), $(cat "$d/wall") s"
}

t=$(now)
run_suite plain "$PLAIN"
run_suite relpoline-default "$RP"
run_suite relpoline-aggressive "$RP" $AGGRESSIVE
PHASE_T[suites]=$(( $(now) - t ))

# ---- compare ------------------------------------------------------------
report() {
python3 - "$WORK" "$SUITES" "${PY_FLAKY:-}" "$TESTS" "$AGGRESSIVE" <<'EOF'
import collections, json, os, re, sys
import xml.etree.ElementTree as ET

work, suites, flaky, tests, aggressive = sys.argv[1], sys.argv[2].split(), set(sys.argv[3].split()), \
    sys.argv[4].split(), sys.argv[5]


def outcome(tc):
    for k in tc:
        if k.tag == "skipped":
            return "skip"
        if k.tag in ("failure", "error"):
            return k.tag
        if k.tag == "output":  # regrtest's record of an expected failure
            return "expected-failure"
    return "pass"


def load(name):
    d = os.path.join(work, "runs", name)
    cases = collections.defaultdict(list)
    try:
        root = ET.parse(os.path.join(d, "junit.xml")).getroot()
        for tc in root.iter("testcase"):
            cases[tc.get("name")].append(outcome(tc))
    except (OSError, ET.ParseError) as e:
        print("   %s: no junit.xml (%s)" % (name, e))
    mods = {}
    try:
        out = open(os.path.join(d, "out.txt"), errors="replace").read()
    except OSError:
        out = ""
    for m in re.finditer(r"\] (test_\w+) (passed|failed \(env changed\)|failed|skipped|crashed|timed out|"
                         r"interrupted|resource denied|ran no tests)?", out):
        mods[m.group(1)] = m.group(2) or "?"
    rc = open(os.path.join(d, "rc")).read().strip() if os.path.exists(os.path.join(d, "rc")) else "?"
    wall = open(os.path.join(d, "wall")).read().strip() if os.path.exists(os.path.join(d, "wall")) else "?"
    return {k: sorted(v) for k, v in cases.items()}, mods, rc, wall, out


def module_of(case):
    m = re.match(r"test\.(test_\w+)", case)
    return m.group(1) if m else "(doctest or other: %s)" % case.split(".")[0]


def stats(name):
    d = os.path.join(work, "runs", name, "stats")
    files = procs = sites = passes = bad = 0
    for n in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if not n.endswith(".json"):
            continue
        files += 1
        try:
            j = json.load(open(os.path.join(d, n)))
        except Exception:
            bad += 1
            continue
        sp = int(j.get("sites_promoted", 0))
        procs += sp > 0
        sites += sp
        passes += int(j.get("patch_passes", 0))
    return files, procs, sites, passes, bad


ref_cases, ref_mods, ref_rc, ref_wall, _ = load("plain")
cnt = collections.Counter(o for v in ref_cases.values() for o in v)
print()
print("== check-python: CPython 3.11 regrtest, plain vs relpoline-cc (%d modules, %s)" %
      (len(tests), os.path.join(work, "runs")))
print("-- plain (reference): exit %s, %s s, %d test cases: %s" %
      (ref_rc, ref_wall, sum(cnt.values()), ", ".join("%d %s" % (n, o) for o, n in sorted(cnt.items()))))
notok = sorted(m for m, r in ref_mods.items() if r != "passed")
print("   modules not 'passed' in plain: %s" % (" ".join("%s(%s)" % (m, ref_mods[m]) for m in notok) or "none"))
missing = [t for t in tests if t not in ref_mods]
if missing:
    print("   modules with no result in plain: %s" % " ".join(missing))
passed = failed = 0
nopatch = False
for s in suites[1:]:
    cases, mods, rc, wall, out = load(s)
    diff, tolerated = [], []
    for name in sorted(set(ref_cases) | set(cases)):
        a, b = ref_cases.get(name, []), cases.get(name, [])
        if a == b:
            passed += 1
        elif name in flaky:
            passed += 1
            tolerated.append((name, a, b))
        else:
            failed += 1
            diff.append((name, a, b))
    moddiff = ["%s(%s->%s)" % (m, ref_mods.get(m, "none"), mods.get(m, "none"))
               for m in tests if ref_mods.get(m) != mods.get(m)]
    print()
    print("-- %s (%s): exit %s, %s s" % (s, aggressive if s.endswith("aggressive") else "no RELPOLINE_* tuning",
                                        rc, wall))
    print("   %d test cases compared, %d match, %d differ, %d differ but flaky" %
          (len(set(ref_cases) | set(cases)), len(set(ref_cases) | set(cases)) - len(diff) - len(tolerated),
           len(diff), len(tolerated)))
    print("   modules: %d same result as plain, %d not%s" % (len(tests) - len(moddiff), len(moddiff),
                                                         (": " + " ".join(moddiff)) if moddiff else ""))
    bymod = collections.defaultdict(list)
    for name, a, b in diff:
        bymod[module_of(name)].append((name, a, b))
    for m in sorted(bymod):
        print("   DIFFER in %s: %d cases" % (m, len(bymod[m])))
        for name, a, b in bymod[m][:8]:
            print("      %s: plain %s, relpoline %s" % (name, ",".join(a) or "missing", ",".join(b) or "missing"))
    for name, a, b in tolerated:
        print("   flaky, tolerated: %s: plain %s, relpoline %s" % (name, ",".join(a) or "missing",
                                                                   ",".join(b) or "missing"))
    sig = [w for w in ("Segmentation fault", "Fatal Python error", "core dumped") if w in out]
    if sig:
        print("   in the regrtest output: %s" % ", ".join('"%s"' % w for w in sig))
    # the runtime's own warnings, wherever a test printed or captured them
    warn = collections.Counter()
    for m in re.finditer(r"relpoline: warning: ([^\n']*?)(?:\\n|\n|')", out):
        w = re.sub(r"/\S*/", ".../", m.group(1))
        warn[re.sub(r"\d{3,}", "N", w)] += 1
    for w, n in warn.most_common(5):
        print("   relpoline warning in the output, %d times: %s" % (n, w[:200]))
    files, procs, sites, passes, bad = stats(s)
    print("   stats: %d processes wrote stats (%d unreadable), %d promoted, %d sites promoted in total, "
          "%d patch passes" % (files, bad, procs, sites, passes))
    if procs == 0 or sites == 0:
        print("   FAIL: no process promoted a call site")
        nopatch = True
print()
print("RESULT %d %d %d" % (passed, failed, 1 if nopatch else 0))
EOF
}

t=$(now)
report > "$WORK/report.txt" 2>&1
PHASE_T[compare]=$(( $(now) - t ))
read -r _ passed failed nopatch < <(grep '^RESULT ' "$WORK/report.txt")
grep -v '^RESULT ' "$WORK/report.txt" | tee "$WORK/report.txt.tmp"
mv "$WORK/report.txt.tmp" "$WORK/report.txt"
{
	printf -- "-- wall time:"
	for p in setup builds suites compare; do printf " %s %ss," "$p" "${PHASE_T[$p]}"; done
	printf " total %ss\n" $(( $(now) - T0 ))
	[ "${nopatch:-1}" = 0 ] || echo "FAIL: nothing was patched in at least one relpoline setting"
	echo "${passed:-0} passed, ${failed:-0} failed"
} | tee -a "$WORK/report.txt"
[ -n "${passed:-}" ] && [ "${failed:-1}" -eq 0 ] && [ "${nopatch:-1}" = 0 ]
