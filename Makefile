# Two entry points: `make demo` (the main job) and `make test` (the whole suite).
# Both create .venv on first use; nothing is downloaded at run time beyond the package install.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export OMP_WAIT_POLICY := PASSIVE

$(STAMP): pyproject.toml hatch_build.py curator/stats/_kernels.c
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

.PHONY: install browser demo test bench clean
install: $(STAMP)

# The report's test renders it in headless Chromium. Where it is missing and we may install system packages
# (root with apt-get, as on CI), Debian's chromium is installed; elsewhere that one test skips with a reason.
browser:
	@if ! command -v chromium >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium for the report's browser test"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
			|| echo "chromium could not be installed: the browser test will skip"; \
	fi

demo: $(STAMP)
	$(BIN)/curator demo --out demo-out

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[test,bench]'
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_shift.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache
