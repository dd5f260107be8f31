# `make demo`: build examples/demo.c plain, with the compiler's retpolines
# and with relpoline-cc, measure them on the spot (examples/demo.sh) and show
# what relpoline did.  Takes about 10-20 seconds.  Included by the top Makefile.
DEMO_B      := $(B)/examples
DEMO_CC     ?= gcc
DEMO_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra
DEMO_RT     := $(B)/lib/librelpoline.so $(B)/lib/relpoline-module.o $(B)/bin/relpoline-cc \
               $(B)/include/relpoline.h

demo: $(DEMO_B)/demo-plain $(DEMO_B)/demo-retpoline $(DEMO_B)/demo-relpoline
	@sh examples/demo.sh $(DEMO_B)

$(DEMO_B)/demo-plain: examples/demo.c
	@mkdir -p $(dir $@)
	$(DEMO_CC) $(DEMO_CFLAGS) $< -o $@

$(DEMO_B)/demo-retpoline: examples/demo.c
	@mkdir -p $(dir $@)
	$(DEMO_CC) $(DEMO_CFLAGS) -mindirect-branch=thunk -mindirect-branch-register -fno-jump-tables $< -o $@

$(DEMO_B)/demo-relpoline: examples/demo.c $(DEMO_RT)
	@mkdir -p $(dir $@)
	RELPOLINE_CC=$(DEMO_CC) $(B)/bin/relpoline-cc $(DEMO_CFLAGS) -DDEMO_RELPOLINE $< -o $@

.PHONY: demo
