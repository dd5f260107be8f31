#!/bin/sh
# relpoline demo driver (make demo).  Runs the three builds of examples/demo.c
# interleaved, ROUNDS times, takes medians, and prints what an indirect call
# costs each way, then the runtime's own stats table for one relpoline run.
# Usage: demo.sh BUILD_DIR   (environment: DEMO_ROUNDS, default 5)
set -eu
B=${1:-build/examples}
ROUNDS=${DEMO_ROUNDS:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# Run with the runtime's defaults, whatever the caller's environment says.
for v in $(env | sed -n 's/^\(RELPOLINE_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$v"; done

echo "relpoline demo: one hot indirect call site (an ops->step() call that always"
echo "reaches the same function), built three ways from examples/demo.c."
echo "Measuring: $ROUNDS interleaved rounds x 5 batches x 2,000,000 calls each ..."
echo

r=1
while [ "$r" -le "$ROUNDS" ]; do
	"$B/demo-plain" >>"$tmp/plain"
	"$B/demo-retpoline" >>"$tmp/retpoline"
	"$B/demo-relpoline" >>"$tmp/relpoline"
	RELPOLINE_PROMOTE_MIN=4000000000 "$B/demo-relpoline" >>"$tmp/learning"
	r=$((r + 1))
done

# median FILE KEY: median of the values of "RESULT KEY v" lines
median() {
	awk -v k="$2" '$1 == "RESULT" && $2 == k && $3 != "none" { print $3 }' "$1" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# A direct call is the same instruction in every build: pool all of them.
cat "$tmp/plain" "$tmp/retpoline" "$tmp/relpoline" >"$tmp/all"
direct=$(median "$tmp/all" direct)
plain=$(median "$tmp/plain" indirect)
retpoline=$(median "$tmp/retpoline" indirect)
relpoline=$(median "$tmp/relpoline" indirect)
learning=$(median "$tmp/learning" indirect)
promo_ms=$(median "$tmp/relpoline" promoted_after_ms)
promo_calls=$(median "$tmp/relpoline" promoted_after_calls)
npromo=$(grep -c 'promoted_after_ms [0-9]' "$tmp/relpoline" || true)

row() { # label value
	awk -v l="$1" -v v="$2" -v d="$direct" 'BEGIN {
		if (v == "nan") printf "  %-50s %8s\n", l, "n/a";
		else printf "  %-50s %8.2f   %5.2fx\n", l, v, v / d }'
}

printf "  %-50s %8s   %6s\n" "call kind (median of $ROUNDS runs)" "ns/call" "vs direct"
printf "  %-50s %8s   %6s\n" "--------------------------------------------------" "-------" "------"
row "direct call            call fletcher_step" "$direct"
row "plain indirect         call *8(%reg)       (gcc -O2)" "$plain"
row "retpoline              call __x86_indirect_thunk" "$retpoline"
row "relpoline, learning    thunk + sample + retpoline" "$learning"
echo "  (learning: RELPOLINE_PROMOTE_MIN=4000000000 keeps the site from being promoted)"
row "relpoline, promoted    call stub; cmp; je target" "$relpoline"
echo
awk -v p="$plain" -v r="$retpoline" -v q="$relpoline" -v ms="$promo_ms" -v c="$promo_calls" -v n="$npromo" -v R="$ROUNDS" 'BEGIN {
	if (r > p) printf "  relpoline recovers %.0f%% of what the retpoline costs over a plain indirect call%s.\n", 100 * (r - q) / (r - p), q < p ? " (over 100%: the promoted stub beats even the plain indirect call)" : "";
	if (n > 0) printf "  The worker promoted the site %.1f ms (%d calls) after the first call (median; %d of %d runs).\n", ms, c, n, R;
	else printf "  The site was NOT promoted within 1 s in any run.\n";
}'
cat <<'EOF'

What happened:
  * A retpoline replaces "jmp *%reg" by a call/ret sequence whose return the
    CPU always mispredicts on purpose, so no indirect branch prediction (and
    no Spectre v2 branch-target injection) is possible: every indirect call
    pays a pipeline flush.
  * relpoline-cc compiles every indirect call to "call __x86_indirect_thunk_reg"
    like the compiler's retpoline, but the thunk comes from the runtime.  While
    it learns, the thunk samples (call site, target) and then runs the same
    retpoline.  The worker thread sees that this site always calls one target,
    writes a stub "cmp slot(%rip),%reg; je target; push $site; jmp slow_path"
    (slot holds the learned target) and patches the call's rel32 to the stub.
    Every branch on the way is direct, so the CPU predicts it without an
    indirect-branch predictor: the call costs what a direct call costs.
    Spectre v2 protection is kept: a target that is not in the stub goes to
    the slow path, which counts the miss and uses the retpoline.

relpoline's stats for one run of demo-relpoline (RELPOLINE_STATS=1):
EOF
RELPOLINE_STATS=1 "$B/demo-relpoline" 2>&1 >/dev/null | sed 's/^/  /'
