# Developer and CI targets for onexone's tests (the package itself builds with pip).
#
#   make test        the test suite (what CI runs; slow tests deselected)
#   make slow        the slow tests: outputs of more than 2**31 elements (~10 GB of memory)
#   make fuzz        the fuzz tests at SCALE times the CI case count (make fuzz SCALE=10)
#   make sanitize    build the extension with -fsanitize=address,undefined (ONEXONE_SANITIZE=1)
#                    into $(SAN_DIR) and run the whole test suite on it, ASan's runtime preloaded;
#                    fails on any test failure or sanitizer report
#   make valgrind    memcheck over a subset (every guard-page case on every ISA valgrind can
#                    run, the bad-input catalog) on the installed (optimized) build
#
# PYTHON is the interpreter whose environment has onexone's test extras (and, for sanitize,
# pip to build the sanitized wheel: its build dependencies come from the index as usual).

SHELL := /bin/bash
PYTHON ?= python3
CC ?= cc
SCALE ?= 10
SAN_DIR ?= build/sanitize
SAN_ABS = $(abspath $(SAN_DIR))
LIBASAN = $(shell $(CC) -print-file-name=libasan.so)
# detect_leaks=0: the interpreter's own allocations live until exit;
# allocator_may_return_null=1: a request too large for memory is a MemoryError, as without ASan
SAN_ENV = LD_PRELOAD=$(LIBASAN) \
	ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1:halt_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	PYTHONPATH=$(SAN_ABS)/site

.PHONY: test slow fuzz sanitize sanitize-build valgrind

test:
	$(PYTHON) -m pytest

slow:
	$(PYTHON) -m pytest -m slow

fuzz:
	ONEXONE_FUZZ_SCALE=$(SCALE) $(PYTHON) -m pytest tests/test_fuzz.py

# A copy of the checkout (tracked and untracked files, not ignored build outputs), built in a
# fresh directory so no object file of a normal build can slip in.
sanitize-build:
	@test -f "$(LIBASAN)" || { echo "no libasan.so for $(CC)"; exit 1; }
	rm -rf $(SAN_DIR) && mkdir -p $(SAN_DIR)/src $(SAN_DIR)/site
	git ls-files -z -co --exclude-standard | xargs -0 cp --parents -t $(SAN_DIR)/src
	ONEXONE_SANITIZE=1 $(PYTHON) -m pip wheel -q --no-deps -w $(SAN_DIR)/wheel $(SAN_DIR)/src
	$(PYTHON) -m pip install -q --no-deps --target $(SAN_DIR)/site $(SAN_DIR)/wheel/onexone-*.whl
	$(SAN_ENV) $(PYTHON) -c "import onexone, onexone._core as c; \
	    assert c.__file__.startswith('$(SAN_ABS)'), c.__file__; print('sanitized build:', c.__file__)"
	ldd $(SAN_DIR)/site/onexone/_core*.so | grep -q libasan

# pytest's --capture=sys leaves file descriptor 2 alone: a sanitizer report reaches the log
# even when it ends the process. The log is also searched, for reports of child processes.
sanitize: sanitize-build
	set -o pipefail; $(SAN_ENV) $(PYTHON) -m pytest -p no:cacheprovider --capture=sys -q 2>&1 \
	    | tee $(SAN_DIR)/pytest.log
	@if grep -E "ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer" $(SAN_DIR)/pytest.log; then \
	    echo "sanitizer reports above"; exit 1; fi
	@echo "sanitize: the test suite passed with ASan and UBSan, no reports"

valgrind:
	$(PYTHON) tests/valgrind_check.py $(PYTHON) tests/test_memory.py guard all
	$(PYTHON) tests/valgrind_check.py $(PYTHON) tests/test_bad_input.py
