# relpoline: plain GNU Make.
#   make                 runtime, module object, wrappers  -> build/
#   make check           tests (gcc and clang), see tests/tests.mk
#   make bench-micro     micro-benchmarks -> build/bench/micro.json
#   make demo            the main job: build an example with relpoline-cc and measure it
#   make install PREFIX=/usr/local DESTDIR=
CC      ?= gcc
PREFIX  ?= /usr/local
DESTDIR ?=
B       := build
VERSION := 0.1.0

WARN    := -Wall -Wextra -Wno-unused-parameter
BASE    := -DRP_VERSION=\"$(VERSION)\" -std=gnu11 -O2 -g -fPIC -fvisibility=hidden -D_GNU_SOURCE $(WARN) -Isrc -Iinclude
# The runtime is never built with thunks: it is what provides them.
RT_CFLAGS  := $(BASE) $(SAN_CFLAGS)
# The per-module part runs inside the application's indirect calls: it must
# not touch vector registers (argument registers of the call in flight) and
# must not call libc.  -mgeneral-regs-only guarantees the first by construction.
NO_IDIOMS  := $(shell $(CC) -fno-tree-loop-distribute-patterns -E -x c /dev/null >/dev/null 2>&1 \
                && echo -fno-tree-loop-distribute-patterns)
MOD_CFLAGS := $(BASE) -mgeneral-regs-only -fno-stack-protector -fno-builtin $(NO_IDIOMS) \
              -fcf-protection=none -fno-sanitize=all

# Two programs: src/module/ is linked (hidden) into every module built with
# relpoline-cc; src/runtime/ is the one process-wide runtime.  docs/design.md
# opens with the map.
RT_SRCS  := $(wildcard src/runtime/*.c)
MOD_SRCS := src/module/record.c src/module/module_ctor.c

RT_OBJS  := $(RT_SRCS:src/runtime/%.c=$(B)/obj/runtime/%.o) $(B)/obj/runtime/epoch_inline.o
MOD_OBJS := $(MOD_SRCS:src/module/%.c=$(B)/obj/module/%.o) $(B)/obj/module/thunks.o
HDRS     := $(wildcard src/*/*.h) include/relpoline.h

LIBS := -lpthread

all: $(B)/lib/librelpoline.so $(B)/lib/librelpoline.a $(B)/lib/relpoline-module.o \
     $(B)/bin/relpoline-cc $(B)/bin/relpoline-c++ $(B)/include/relpoline.h \
     $(B)/lib/pkgconfig/relpoline.pc $(B)/bin/relpoline-stubs

$(B)/obj/runtime/%.o: src/runtime/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(RT_CFLAGS) -c $< -o $@

$(B)/obj/module/%.o: src/module/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(MOD_CFLAGS) -c $< -o $@

$(B)/obj/runtime/epoch_inline.o: src/runtime/epoch_inline.S
	@mkdir -p $(dir $@)
	$(CC) -c $< -o $@

$(B)/obj/module/thunks.o: src/module/thunks.S src/module/abi.h
	@mkdir -p $(dir $@)
	$(CC) -Isrc/module -c $< -o $@

# The module object may reference nothing but the runtime's private ABI:
# a libc call from the recorder could clobber the call's vector arguments.
$(B)/lib/relpoline-module.o: $(MOD_OBJS)
	@mkdir -p $(dir $@)
	$(LD) -r $^ -o $@.tmp
	@bad=$$(nm -u $@.tmp | awk '{print $$2}' | grep -v -e '^relpoline__' -e '^_GLOBAL_OFFSET_TABLE_$$' -e '^__ehdr_start$$'); \
	 if [ -n "$$bad" ]; then echo "relpoline-module.o must not call: $$bad" >&2; rm -f $@.tmp; exit 1; fi
	mv $@.tmp $@

$(B)/lib/librelpoline.so: $(RT_OBJS) src/runtime/relpoline.map
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,--version-script=src/runtime/relpoline.map -Wl,-soname,librelpoline.so.0 \
	    -Wl,-z,now $(SAN_CFLAGS) $(RT_OBJS) -o $@ $(LIBS)
	ln -sf librelpoline.so $(B)/lib/librelpoline.so.0

$(B)/lib/librelpoline.a: $(RT_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(B)/bin/relpoline-cc: tools/relpoline-cc
	@mkdir -p $(dir $@)
	cp $< $@ && chmod +x $@

$(B)/bin/relpoline-stubs: tools/relpoline-stubs.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -Wall -Wextra $< -o $@ -lcapstone -ldw -lelf

$(B)/bin/relpoline-c++: $(B)/bin/relpoline-cc
	ln -sf relpoline-cc $@

$(B)/include/relpoline.h: include/relpoline.h
	@mkdir -p $(dir $@)
	cp $< $@

$(B)/lib/pkgconfig/relpoline.pc: tools/relpoline.pc.in Makefile
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(abspath $(B))|' -e 's|@VERSION@|$(VERSION)|' $< > $@

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 755 tools/relpoline-cc $(DESTDIR)$(PREFIX)/bin/relpoline-cc
	install -m 755 $(B)/bin/relpoline-stubs $(DESTDIR)$(PREFIX)/bin/relpoline-stubs
	ln -sf relpoline-cc $(DESTDIR)$(PREFIX)/bin/relpoline-c++
	install -m 644 $(B)/lib/librelpoline.so $(DESTDIR)$(PREFIX)/lib/librelpoline.so.0
	ln -sf librelpoline.so.0 $(DESTDIR)$(PREFIX)/lib/librelpoline.so
	install -m 644 $(B)/lib/librelpoline.a $(B)/lib/relpoline-module.o $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/relpoline.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' tools/relpoline.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/relpoline.pc

clean:
	rm -rf $(B)

.PHONY: all install clean check bench bench-quick bench-micro demo

-include tests/tests.mk
-include bench/micro/micro.mk
-include bench/real/real.mk
-include examples/demo.mk
-include tests/real/real.mk
