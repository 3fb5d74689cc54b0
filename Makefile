# canary: progressive-deployment controller.
#   make            build build/canary
#   make test       unit + integration tests, then again under ASan/UBSan
#   make demo       build and run the demo
#   make valgrind   unit tests and CLI paths under valgrind, leaks are errors
#   make bench      benchmarks (figures, not assertions)
#   make deps       install missing Debian packages (as root)
#   make e2e        the nginx + Prometheus example end to end (tests/e2e)
# User CFLAGS/LDFLAGS add to the defaults: make CFLAGS=-O0, make CC=clang.

PKG_CONFIG ?= pkg-config
CC ?= cc
BUILD ?= build
SANITIZE ?=

PKGS := libuv libcurl yaml-0.1 jansson sqlite3 libcrypto gsl
TEST_PKGS := cmocka
DEB_PACKAGES := build-essential pkg-config git valgrind libuv1-dev \
	libcurl4-openssl-dev libyaml-dev libjansson-dev libsqlite3-dev \
	libcmocka-dev libhttp-parser-dev libssl-dev libgsl-dev

WARNINGS := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wvla -Wwrite-strings -Wformat=2 -Wundef \
	-Wpointer-arith -Wold-style-definition -Wmissing-declarations \
	-Wno-format-nonliteral -fno-common
OPT := -O2 -g
STD := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
ifneq ($(SANITIZE),)
OPT := -O1 -g -fno-omit-frame-pointer
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all
endif

PKG_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null) -lhttp_parser -lm
TEST_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(TEST_PKGS) 2>/dev/null)
TEST_LIBS = $(shell $(PKG_CONFIG) --libs $(TEST_PKGS) 2>/dev/null)

ALL_CFLAGS = $(STD) $(WARNINGS) $(OPT) $(SANFLAGS) -MMD -MP -Iinclude \
	$(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SANFLAGS) $(LDFLAGS)

SRCS := $(wildcard controller/*.c)
OBJS := $(SRCS:controller/%.c=$(BUILD)/obj/%.o)
LIB_OBJS := $(filter-out $(BUILD)/obj/main.o,$(OBJS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
INTEG_SRCS := $(wildcard tests/integration/test_*.c)
INTEG_BINS := $(INTEG_SRCS:tests/integration/%.c=$(BUILD)/tests/%)
TEST_HELPERS := $(wildcard tests/support/*.c)
TEST_HELPER_OBJS := $(TEST_HELPERS:tests/support/%.c=$(BUILD)/support/%.o)
# Servers the integration tests and benchmarks start (e.g. the fake metrics server).
FAKE_SRCS := $(wildcard tests/fake/*.c)
FAKE_BINS := $(FAKE_SRCS:tests/fake/%.c=$(BUILD)/fake/%)
BENCH_SRCS := $(wildcard tests/bench/*.c)
BENCH_BINS := $(BENCH_SRCS:tests/bench/%.c=$(BUILD)/bench/%)
# The nginx + Prometheus example's service and load generator, and the
# end-to-end test's helpers (tests/e2e/README.md).
EXAMPLE_BINS := $(BUILD)/examples/service $(BUILD)/examples/loadgen
E2E_BINS := $(BUILD)/e2e/freeport
# Debian packages make e2e runs against (curl for its shell), each named as
# its command; `nginx` is the server itself (nginx-light only adds a module).
E2E_PACKAGES := nginx prometheus curl

.PHONY: all deps test check unit integration demo valgrind bench clean examples e2e e2e-deps
.DEFAULT_GOAL := all

all: $(BUILD)/canary

$(BUILD)/canary: $(BUILD)/obj/main.o $(BUILD)/libcanary.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

# Tests link the archive, so each pulls in only the modules it uses.
$(BUILD)/libcanary.a: $(LIB_OBJS)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/obj/%.o: controller/%.c | $(BUILD)/obj
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/support/%.o: tests/support/%.c | $(BUILD)/support
	$(CC) $(ALL_CFLAGS) $(TEST_CFLAGS) -Itests/support -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(TEST_HELPER_OBJS) $(BUILD)/libcanary.a | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) $(TEST_CFLAGS) -Itests/support $(ALL_LDFLAGS) -o $@ $^ \
		$(PKG_LIBS) $(TEST_LIBS)

# Integration tests may also prepare a state database through the library.
$(BUILD)/tests/%: tests/integration/%.c $(TEST_HELPER_OBJS) $(BUILD)/libcanary.a | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) $(TEST_CFLAGS) -Itests/support $(ALL_LDFLAGS) -o $@ $^ \
		$(PKG_LIBS) $(TEST_LIBS)

# Benchmarks may start the fake servers (tests/support/server.h).
$(BUILD)/bench/%: tests/bench/%.c $(BUILD)/support/server.o $(BUILD)/libcanary.a | $(BUILD)/bench
	$(CC) $(ALL_CFLAGS) -Itests/support $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/fake/%: tests/fake/%.c $(BUILD)/libcanary.a | $(BUILD)/fake
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/examples/service: examples/nginx-prometheus/service.c | $(BUILD)/examples
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(PKG_LIBS)

# The load generator drives libcurl from the loop through the library's cn_http.
# (Its .d file adds the headers to $^: link only the source and the archive.)
$(BUILD)/examples/loadgen: examples/nginx-prometheus/loadgen.c $(BUILD)/libcanary.a | $(BUILD)/examples
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $(filter %.c %.a,$^) $(PKG_LIBS)

$(BUILD)/e2e/%: tests/e2e/%.c | $(BUILD)/e2e
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $<

examples: $(EXAMPLE_BINS)

$(BUILD)/obj $(BUILD)/tests $(BUILD)/support $(BUILD)/bench $(BUILD)/fake $(BUILD)/examples $(BUILD)/e2e:
	mkdir -p $@

# Runs every suite even when one fails, then fails if any did.
TEST_ENV = CANARY_BIN=$(CURDIR)/$(BUILD)/canary CANARY_SRC=$(CURDIR) \
	CANARY_FAKE_DIR=$(CURDIR)/$(BUILD)/fake CANARY_EXAMPLES_DIR=$(CURDIR)/$(BUILD)/examples
check: $(BUILD)/canary $(UNIT_BINS) $(INTEG_BINS) $(FAKE_BINS) $(EXAMPLE_BINS)
	@failed=0; for t in $(UNIT_BINS) $(INTEG_BINS); do \
		echo "== $$t"; \
		$(TEST_ENV) $$t || failed=1; \
	done; \
	if [ $$failed = 0 ]; then echo "all suites passed ($(BUILD))"; \
	else echo "some suites FAILED ($(BUILD))"; exit 1; fi

test: deps
	$(MAKE) check
	$(MAKE) check BUILD=build/san SANITIZE=1

demo: deps
	$(MAKE) all
	./$(BUILD)/canary demo

VALGRIND := valgrind --quiet --error-exitcode=99 --leak-check=full \
	--show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible
valgrind: $(BUILD)/canary $(UNIT_BINS) $(INTEG_BINS) $(FAKE_BINS) $(EXAMPLE_BINS)
	@failed=0; for t in $(UNIT_BINS); do \
		echo "== valgrind $$t"; $(TEST_ENV) $(VALGRIND) $$t || failed=1; \
	done; \
	for t in $(INTEG_BINS); do \
		echo "== $$t (binary under valgrind)"; \
		$(TEST_ENV) CANARY_WRAPPER="$(VALGRIND)" $$t || failed=1; \
	done; exit $$failed

bench: $(BUILD)/canary $(BENCH_BINS) $(FAKE_BINS)
	@for b in $(BENCH_BINS); do $(TEST_ENV) $$b; done

# Real nginx and Prometheus on free 127.0.0.1 ports, in a temporary
# directory; fails (never skips) when they are missing and cannot be installed.
e2e: deps e2e-deps
	$(MAKE) $(BUILD)/canary $(EXAMPLE_BINS) $(E2E_BINS)
	$(TEST_ENV) CANARY_E2E_DIR=$(CURDIR)/$(BUILD)/e2e tests/e2e/run.sh

# As root, installs nginx, prometheus and curl without starting their system
# services (a policy-rc.d that says no, while apt runs): e2e starts its own.
e2e-deps:
	@missing=""; for p in $(E2E_PACKAGES); do \
		command -v $$p >/dev/null 2>&1 || [ -x /usr/sbin/$$p ] || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
		echo "make e2e: cannot run: missing$$missing, and not root on a Debian system to install them"; \
		echo "run: sudo apt-get update && sudo apt-get install -y --no-install-recommends$$missing"; \
		exit 1; fi; \
	echo "make e2e: installing$$missing (their system services are not started)"; \
	made=""; if [ ! -e /usr/sbin/policy-rc.d ]; then \
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made=1; fi; \
	rc=0; { apt-get update && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends $$missing; } || rc=$$?; \
	if [ -n "$$made" ]; then rm -f /usr/sbin/policy-rc.d; fi; exit $$rc

# Installs what is missing, as root; otherwise prints the command to run.
deps:
	@if ! command -v dpkg-query >/dev/null 2>&1; then \
		echo "make deps: not a Debian system; install by hand: $(DEB_PACKAGES)"; exit 0; fi; \
	missing=""; for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "make deps: installing$$missing"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	else \
		echo "make deps: missing packages:$$missing"; \
		echo "run: sudo apt-get update && sudo apt-get install -y$$missing"; exit 1; \
	fi

clean:
	rm -rf build

# Keep test support objects between links instead of rebuilding them.
.SECONDARY: $(TEST_HELPER_OBJS)

-include $(OBJS:.o=.d) $(TEST_HELPER_OBJS:.o=.d) $(EXAMPLE_BINS:=.d) $(E2E_BINS:=.d)
