# check-real: bash 5.2 (Debian's source package) built plain and with
# relpoline-cc, bash's own test suite run on both, compared test by test.
# Included by the top-level Makefile.  See tests/real/README.md.
#
#   make check-real                          uses the runtime in $(B)
#   make check-real RP_BUILD=/other/build    test another relpoline build
#   make check-real REAL_TESTS='redir vredir'   only these run-* scripts
# Work and cache: build/real/bash (REAL_DIR=...).  Other knobs: see the
# header of tests/real/check-bash.sh.

RP_BUILD ?= $(abspath $(B))

check-real: all
	RP_BUILD=$(RP_BUILD) bash tests/real/check-bash.sh

# check-python: CPython 3.11's regrtest (76 modules), plain vs relpoline, on the
# builds of bench/real/build.sh (not part of check-real: 4-6 minutes once built).
check-python: all
	RP_BUILD=$(RP_BUILD) bash tests/real/check-python.sh

# check-gawk: gawk 5.2.1's test suite (about 600 short processes) plain, retpoline,
# relpoline and relpoline with a profile warmed by one earlier run (warm start,
# issue 9): times and the share of processes that promote.  About 15 minutes.
check-gawk: all
	RP_BUILD=$(RP_BUILD) bash tests/real/check-gawk.sh

.PHONY: check-real check-python check-gawk
