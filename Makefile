# Two commands on a fresh clone (only Python 3.11 and make needed):
#   make demo   -> builds .venv, installs sciml, runs the demo
#   make test   -> builds .venv, installs sciml[dev], runs the default test suite
PYTHON ?= python3.11
VENV   ?= .venv
# CPU installs take the pinned wheel; a GPU user sets TORCH= (empty) and brings their own CUDA torch,
# e.g. `make demo TORCH= VENV_FLAGS=--system-site-packages`.
TORCH  ?= torch==2.13.0
VENV_FLAGS ?=
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: demo test test-slow bench venv clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@if [ -n "$(TORCH)" ]; then $(PY) -m pip install --quiet "$(TORCH)"; fi
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sciml demo

# -n auto: one pytest worker per core, one torch thread each (tests/conftest.py); --dist loadfile keeps a
# file's tests (and its module fixtures, built once) on one worker
test: $(STAMP)
	$(PY) -m pytest -q -n auto --dist loadfile

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) experiments/bench_laplacian.py

clean:
	rm -rf $(VENV) build *.egg-info
