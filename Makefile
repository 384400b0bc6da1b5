# Two commands from a fresh machine with only Python and make:
#   make run    creates .venv, installs fnnet, runs `python -m fnnet verify`
#   make test   creates .venv, installs fnnet with its test extras, runs the suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=
# pytest-xdist workers: the suite is mostly XLA compilation, single-threaded in each process
JOBS ?= 2

.PHONY: run test test-slow experiments bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

$(VENV)/.installed-experiments: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e '.[experiments]'
	touch $@

run: $(VENV)/.installed
	$(PY) -m fnnet verify

test: $(VENV)/.installed-test
	$(PY) -m pytest -q -n $(JOBS) $(PYTEST_ARGS)

test-slow: $(VENV)/.installed-test
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

experiments: $(VENV)/.installed-experiments
	$(PY) experiments/run_all.py --quick

bench: $(VENV)/.installed
	$(PY) -m fnnet bench

clean:
	rm -rf $(VENV) build *.egg-info

device-check:
	bash experiments/device_check.sh
