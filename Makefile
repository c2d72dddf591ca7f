# Every target does its own set-up (scripts/setup.sh is idempotent and fast when already done).
VENV   := .venv
PY     := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MPLBACKEND := Agg
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test test-fast lint format site quick-site clean

setup:
	@bash scripts/setup.sh

# The guided tour: notebooks whose full mode takes under ~1.5 minutes each on 2 CPU cores.
GUIDED := A01 A02 F01 F02 F04 F08 F09 T04 T10 T17

## make demo: set up, execute the guided notebooks headless (full mode), build the site (build/site/index.html)
demo: setup
	$(PY) -m bestiary.cli notebooks build $(GUIDED) --jobs 2
	@echo "Site: file://$(CURDIR)/build/site/index.html"

## make site: every notebook, full mode (slow); make quick-site: every notebook in quick mode
site: setup
	$(PY) -m bestiary.cli notebooks build --jobs 2
	@echo "Site: file://$(CURDIR)/build/site/index.html"

quick-site: setup
	$(PY) -m bestiary.cli notebooks build --quick --jobs 2
	@echo "Site: file://$(CURDIR)/build/site/index.html"

## make test: set up, lint, then the whole suite (notebooks in quick mode) on both cores; ends with the
## time table (slowest tests, every notebook, every architecture's sweep) also in build/test-times.json
test: setup lint
	OMP_NUM_THREADS=1 BESTIARY_QUICK=1 $(PY) -m pytest -n 2 -q

## make test-fast: the edit-test loop: unit tests and the registry sweep, no notebooks
test-fast: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 -q --ignore=tests/test_notebooks.py

lint: setup
	$(VENV)/bin/ruff check src tests notebooks benchmarks
	$(VENV)/bin/ruff format --check src tests notebooks benchmarks

format: setup
	$(VENV)/bin/ruff format src tests notebooks benchmarks
	$(VENV)/bin/ruff check --fix src tests notebooks benchmarks

clean:
	rm -rf build .pytest_cache .ruff_cache
