# Micro-benchmarks: `make bench-micro` (about 2-2.5 minutes) or
# `make bench-micro QUICK=1` (under a minute).  Included by the top Makefile.
# The same source, bench/micro/micro.c, is built three ways and the driver
# bench/micro/run.py runs the builds interleaved and reports medians; see
# bench/micro/README.md.  Results: stdout and build/bench/micro.json.
MICRO_B      := $(B)/bench/micro
MICRO_CC     ?= gcc
MICRO_SRC    := bench/micro/micro.c
# One dispatch jump in the VM case: gcc must not copy the computed goto
# into every handler (checked below with objdump).
MICRO_CFLAGS := -std=gnu11 -O2 -g -D_GNU_SOURCE -Wall -Wextra --param=max-goto-duplication-insns=0
MICRO_RETPOLINE_FLAGS := -mindirect-branch=thunk -mindirect-branch-register -fno-jump-tables
MICRO_RT     := $(B)/lib/librelpoline.so $(B)/lib/relpoline-module.o $(B)/bin/relpoline-cc \
                $(B)/include/relpoline.h
MICRO_NSITES := 10000

ifeq ($(QUICK),1)
MICRO_ARGS ?= --rounds 3 --sweep-rounds 1 --startup-runs 31 --warm-runs 20 --batch 500000 --batches 5
else
MICRO_ARGS ?= --rounds 15 --sweep-rounds 5 --startup-runs 201 --warm-runs 100
endif

# $(call micro_count,FUNCTION,PATTERN,N): the objdump of $@ must show N
# instructions matching PATTERN in FUNCTION (one dispatch jump per VM).
define micro_count
	@n=$$(objdump -d --no-show-raw-insn $@ | awk '/<$(1)>:/,/^$$/' | grep -c '$(2)'); \
	  [ "$$n" = $(3) ] || { echo "$(notdir $@): $(1) has $$n of '$(2)', want $(3)" >&2; exit 1; }
endef

MICRO_BINS := $(MICRO_B)/micro-plain $(MICRO_B)/micro-retpoline $(MICRO_B)/micro-relpoline \
              $(MICRO_B)/startup $(MICRO_B)/sites10k-plain $(MICRO_B)/sites10k-relpoline \
              $(MICRO_B)/sites10k-epoch $(MICRO_B)/empty-plain $(MICRO_B)/empty-relpoline \
              $(MICRO_B)/short-plain $(MICRO_B)/short-retpoline $(MICRO_B)/short-relpoline

bench-micro: $(MICRO_BINS)
	python3 bench/micro/run.py --bindir $(MICRO_B) --out $(B)/bench/micro.json $(MICRO_ARGS)

# Cases 14 and 15 only (warm start from a saved profile).
bench-micro-warm: $(MICRO_BINS)
	python3 bench/micro/run.py --bindir $(MICRO_B) --out $(B)/bench/micro-warm.json --only-warm $(MICRO_ARGS)

# Build only (used by CI-style checks and by hand).
bench-micro-build: $(MICRO_BINS)

$(MICRO_B)/micro-plain: $(MICRO_SRC)
	@mkdir -p $(dir $@)
	$(MICRO_CC) $(MICRO_CFLAGS) -DMICRO_CONFIG='"plain"' $< -o $@
	$(call micro_count,vb_run,jmp  *\*,1)
	$(call micro_count,vbc_run,call  *\*,1)

$(MICRO_B)/micro-retpoline: $(MICRO_SRC)
	@mkdir -p $(dir $@)
	$(MICRO_CC) $(MICRO_CFLAGS) $(MICRO_RETPOLINE_FLAGS) -DMICRO_CONFIG='"retpoline"' $< -o $@
	@n=$$(objdump -d --no-show-raw-insn $@ | awk '/<vm_run>:/,/^$$/' | grep -c 'jmp.*__x86_indirect_thunk'); \
	  [ "$$n" = 1 ] || { echo "micro-retpoline: vm_run has $$n dispatch jumps, want 1" >&2; exit 1; }
	$(call micro_count,vb_run,jmp.*__x86_indirect_thunk,1)
	$(call micro_count,vbc_run,call.*__x86_indirect_thunk,1)

$(MICRO_B)/micro-relpoline: $(MICRO_SRC) $(MICRO_RT)
	@mkdir -p $(dir $@)
	RELPOLINE_CC=$(MICRO_CC) $(B)/bin/relpoline-cc $(MICRO_CFLAGS) -DMICRO_RELPOLINE -DMICRO_CONFIG='"relpoline"' $< -o $@
	@n=$$(objdump -d --no-show-raw-insn $@ | awk '/<vm_run>:/,/^$$/' | grep -c 'jmp.*__x86_indirect_thunk'); \
	  [ "$$n" = 1 ] || { echo "micro-relpoline: vm_run has $$n dispatch jumps, want 1" >&2; exit 1; }
	$(call micro_count,vb_run,jmp.*__x86_indirect_thunk,1)
	$(call micro_count,vbc_run,call.*__x86_indirect_thunk,1)

$(MICRO_B)/startup: bench/micro/startup.c
	@mkdir -p $(dir $@)
	$(MICRO_CC) -O2 -Wall $< -o $@

$(MICRO_B)/sites10k.c: bench/micro/gen_sites.py
	@mkdir -p $(dir $@)
	python3 $< $(MICRO_NSITES) $@

$(MICRO_B)/sites10k-plain: $(MICRO_B)/sites10k.c
	$(MICRO_CC) -O2 $< -o $@

$(MICRO_B)/sites10k-relpoline: $(MICRO_B)/sites10k.c $(MICRO_RT)
	RELPOLINE_CC=$(MICRO_CC) $(B)/bin/relpoline-cc -O2 $< -o $@

$(MICRO_B)/sites10k-epoch: $(MICRO_B)/sites10k.c $(MICRO_RT)
	RELPOLINE_CC=$(MICRO_CC) $(B)/bin/relpoline-cc -O2 -DTIME_EPOCH $< -o $@

# Case 14 (warm start): a short program, about 20 ms of indirect calls.
$(MICRO_B)/short-plain: bench/micro/short.c
	@mkdir -p $(dir $@)
	$(MICRO_CC) $(MICRO_CFLAGS) $< -o $@

$(MICRO_B)/short-retpoline: bench/micro/short.c
	@mkdir -p $(dir $@)
	$(MICRO_CC) $(MICRO_CFLAGS) $(MICRO_RETPOLINE_FLAGS) $< -o $@

$(MICRO_B)/short-relpoline: bench/micro/short.c $(MICRO_RT)
	@mkdir -p $(dir $@)
	RELPOLINE_CC=$(MICRO_CC) $(B)/bin/relpoline-cc $(MICRO_CFLAGS) $< -o $@

$(MICRO_B)/empty.c:
	@mkdir -p $(dir $@)
	printf 'int main(void) { return 0; }\n' > $@

$(MICRO_B)/empty-plain: $(MICRO_B)/empty.c
	$(MICRO_CC) -O2 $< -o $@

$(MICRO_B)/empty-relpoline: $(MICRO_B)/empty.c $(MICRO_RT)
	RELPOLINE_CC=$(MICRO_CC) $(B)/bin/relpoline-cc -O2 $< -o $@

.PHONY: bench-micro bench-micro-build bench-micro-warm
