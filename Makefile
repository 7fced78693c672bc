# Human entry point. The two commands that matter: `make run` and `make test`.
# Both install what is missing from Debian's packages first.

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
# The generator is chosen when a build folder is first configured (after the
# dependencies are installed), and never changed for an existing folder.
CONFIGURE = cmake -S . -B $(1) $$(command -v ninja >/dev/null 2>&1 && echo "-G Ninja") $(2) >/dev/null

.PHONY: all deps test-deps build run test test-asan fuzz bench clean

all: build

deps:
	@sh scripts/install-deps.sh

test-deps:
	@sh scripts/install-deps.sh --test

build: deps
	@sh scripts/dev-cert.sh
	@test -f $(BUILD)/CMakeCache.txt || $(call CONFIGURE,$(BUILD),-DCMAKE_BUILD_TYPE=Release)
	@cmake --build $(BUILD) -j $(JOBS)

# Runs the gateway on conf/sluice.toml in the foreground, with the demo
# upstreams behind it (demo/backend.py and demo/chat_server.js). Ctrl-C
# stops all three.
run: build
	@sh scripts/run-demo.sh $(BUILD)/sluice conf/sluice.toml

test: test-deps build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The whole suite once more under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: test-deps
	@sh scripts/dev-cert.sh
	@test -f $(ASAN_BUILD)/CMakeCache.txt || $(call CONFIGURE,$(ASAN_BUILD),-DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=ON)
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

# Every tests/fuzz/*_fuzz.cpp target under libFuzzer (clang, ASan+UBSan),
# each for FUZZ_SECONDS (default 60). Crashes land in build-fuzz/ as crash-*.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = $(basename $(notdir $(wildcard tests/fuzz/*_fuzz.cpp)))
fuzz: deps
	@sh scripts/install-deps.sh --fuzz
	@test -f build-fuzz/CMakeCache.txt || CC=clang CXX=clang++ $(call CONFIGURE,build-fuzz,-DCMAKE_BUILD_TYPE=Debug -DSLUICE_FUZZ=ON -DSLUICE_TESTS=OFF)
	@cmake --build build-fuzz -j $(JOBS)
	@set -e; cd build-fuzz; for t in $(FUZZ_TARGETS); do \
	  echo "fuzz: $$t for $(FUZZ_SECONDS)s"; \
	  mkdir -p corpus-$$t; \
	  ./$$t corpus-$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 \
	    > fuzz-$$t.log 2>&1 || { tail -40 fuzz-$$t.log; exit 1; }; \
	  grep -E '^Done|number_of_executed_units' fuzz-$$t.log; \
	done

bench: build
	@sh scripts/install-deps.sh --bench
	@sh bench/run.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
