# Every target sets up .venv itself when it is missing.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: emulate test test-repeat bench lint typecheck clean contracts

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

emulate: $(STAMP)  ## run the emulator on its embedded defaults (http://127.0.0.1:8787)
	$(VENV)/bin/redox-emulator serve $(ARGS)

test: $(STAMP)  ## the whole suite, in parallel
	$(PY) -m pytest -n auto $(ARGS)

test-repeat: $(STAMP)  ## the whole suite N times (default 10) under -n auto: which tests failed, in how many runs
	$(PY) tests/repeat.py $(or $(N),10) $(ARGS)

bench: $(STAMP)  ## throughput, latency and memory figures, against a bare Starlette app in the same run
	$(PY) bench/run.py $(ARGS)

contracts: $(STAMP)  ## regenerate contracts/schemas/ from the `redox` package
	$(PY) -m emulator.contracts.generate

lint: $(STAMP)
	$(VENV)/bin/ruff check emulator tests bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .emulator .pytest_cache .mypy_cache .ruff_cache
