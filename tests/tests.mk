# relpoline tests: included by the top-level Makefile.
#   make check        build the runtime, then build and run every test with gcc and clang
#   make check-san    the same with the tests built with -fsanitize=address,undefined
#                     (the runtime itself is built as usual; SAN_CFLAGS=... for that)
#   make check TESTS='regs stress'   only cases matching these patterns
#   make check TEST_CCS=gcc          one compiler
# See tests/run.sh for the environment knobs (STRESS_CALLS, ...).

check: all
	RP_BUILD=$(abspath $(B)) tests/run.sh $(TESTS)

check-san: all
	RP_BUILD=$(abspath $(B)) SAN=1 tests/run.sh $(TESTS)

.PHONY: check check-san
