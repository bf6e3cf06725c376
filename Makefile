# The commands behind the README. `make test` and `make demo` each create the
# environment (.venv, pip, pinned versions from pyproject.toml) when it is missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.spectdose-installed
CORES  ?= 2

.PHONY: env test test-fast test-slow test-slurm demo benchmark clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,slurm]'
	touch $@

env: $(STAMP)

# The test command (CI runs it through .ci/run): the Slurm cluster test as its
# own job (it skips itself where it cannot run), then the main suite.
test: $(STAMP)
	$(PY) -m pytest -m slurm || [ $$? -eq 5 ]
	$(PY) -m pytest -m "not slow and not slurm"

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not slurm" -x -q

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

test-slurm: $(STAMP)
	$(PY) -m pytest -m slurm

benchmark: $(STAMP)
	$(PY) -m kernels.benchmark

demo: $(STAMP)
	$(VENV)/bin/spectdose demo --cores $(CORES)

clean:
	rm -rf results .snakemake sample_data/generated
