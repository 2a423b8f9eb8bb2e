# Two entry points: `make demo` (the main job) and `make test` (the whole suite).
# Both create .venv on first use; nothing is downloaded at run time beyond the package install.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export OMP_WAIT_POLICY := PASSIVE

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

.PHONY: install demo test bench clean
install: $(STAMP)

demo: $(STAMP)
	$(BIN)/curator demo --out demo-out

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[test,bench]'
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_shift.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache
