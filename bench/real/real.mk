# Real-program benchmarks (issue 3): redis, nginx, sqlite from Debian's
# source packages, plus the phase-change program in bench/real/phase/.
# Included by the top-level Makefile.
#
#   make bench          micro-benchmarks (if bench/micro is there) and the
#                       whole real-program suite (7 interleaved runs per
#                       configuration); refreshes bench/results/latest.json,
#                       bench/results/*.png and bench/RESULTS.md
#   make bench-quick    representative subset: 3 runs, shorter loads;
#                       writes build/bench/results.json and
#                       build/bench/RESULTS-quick.md only
#   make bench-real     the real-program suite alone (full)
#   make bench-report   regenerate bench/RESULTS.md from build/bench/results.json
#   make bench-setup    deb-src entry, Debian packages, apt-get source
#   make bench-build    build every program in every configuration (cached)
#
# Knobs: BENCH_ARGS (passed to run.py, e.g. --programs redis,sqlite --runs 5)
# Everything is built and cached under build/real/; results go to build/bench/.

BENCH_PY     ?= python3
BENCH_ARGS   ?=
BENCH_REAL   := bench/real
BENCH_OUT    := $(B)/bench

bench-setup:
	bash $(BENCH_REAL)/setup.sh

bench-build: all
	$(BENCH_PY) $(BENCH_REAL)/run.py --build-only $(BENCH_ARGS)

bench-real: all
	@mkdir -p $(BENCH_OUT)
	$(BENCH_PY) $(BENCH_REAL)/run.py --out $(BENCH_OUT)/results.json $(BENCH_ARGS)

# The real-program run may record failed runs (exit 1) and still write its
# results: publish them with the failures listed, then fail.
bench: all
	@mkdir -p $(BENCH_OUT) bench/results
	-$(MAKE) bench-micro
	rc=0; $(BENCH_PY) $(BENCH_REAL)/run.py --out $(BENCH_OUT)/results.json $(BENCH_ARGS) || rc=$$?; \
	if [ -f $(BENCH_OUT)/results.json ]; then \
	    cp $(BENCH_OUT)/results.json bench/results/latest.json && \
	    $(BENCH_PY) $(BENCH_REAL)/report.py $(BENCH_OUT)/results.json --micro $(BENCH_OUT)/micro.json \
	        --md bench/RESULTS.md --charts bench/results || rc=1; \
	fi; exit $$rc

bench-quick: all
	@mkdir -p $(BENCH_OUT)
	rc=0; $(BENCH_PY) $(BENCH_REAL)/run.py --quick --out $(BENCH_OUT)/results.json $(BENCH_ARGS) || rc=$$?; \
	if [ -f $(BENCH_OUT)/results.json ]; then \
	    $(BENCH_PY) $(BENCH_REAL)/report.py $(BENCH_OUT)/results.json --micro $(BENCH_OUT)/micro.json \
	        --md $(BENCH_OUT)/RESULTS-quick.md --charts $(BENCH_OUT)/charts || rc=1; \
	fi; exit $$rc

bench-report:
	$(BENCH_PY) $(BENCH_REAL)/report.py $(BENCH_OUT)/results.json --micro $(BENCH_OUT)/micro.json \
	    --md bench/RESULTS.md --charts bench/results

.PHONY: bench bench-quick bench-real bench-report bench-setup bench-build
