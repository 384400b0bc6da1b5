# Two commands from a fresh machine with only Python and make:
#   make run    creates .venv, installs fnnet, runs `python -m fnnet verify`
#   make test   creates .venv, installs fnnet with its test extras, runs the suite
# and more:
#   make experiments   the lecture's experiments (--quick); figures go to build/figures/ (untracked)
#   make figures       redraws the committed figures in docs/figures/
#   make bench         the quick benchmarks (python -m benchmarks; benchmarks/ is not in the wheel)
#   make docs          the documentation site with its API reference, built strictly, in build/site/
#   make wheel         builds the wheel and installs it into a clean venv, then imports it
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=
# pytest-xdist workers: the suite is mostly XLA compilation, single-threaded in each process; an idle
# worker takes tests from the other's queue (--dist worksteal), so the last long tests do not run alone
JOBS ?= 2

.PHONY: run test test-slow experiments figures bench docs wheel clean device-check

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

$(VENV)/.installed-docs: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e '.[docs]'
	touch $@

run: $(VENV)/.installed
	$(PY) -m fnnet verify

# The suite compiles thousands of small XLA programs: XLA:CPU's classic emitter compiles them in about
# 60 % of the time the fusion emitters take, with the same arithmetic (docs/design.md, "test suite").
# `make test TEST_XLA_FLAGS=` compiles with XLA's defaults, as a user's program does; both pass.
# tools/test_xla_flags.py prints the flag where this jaxlib knows it (newer XLA releases dropped it).
# `echo` joins it to the caller's XLA_FLAGS without stray spaces: XLA reads an XLA_FLAGS that does not
# start with "--" as a file name and aborts the process (" " alone does that).
TEST_XLA_FLAGS ?= $(shell $(PY) tools/test_xla_flags.py)

test: $(VENV)/.installed-test
	XLA_FLAGS="$$(echo $(TEST_XLA_FLAGS) $$XLA_FLAGS)" $(PY) -m pytest -q -n $(JOBS) --dist worksteal $(PYTEST_ARGS)

test-slow: $(VENV)/.installed-test
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

experiments: $(VENV)/.installed-experiments
	$(PY) -m experiments.run_all --quick

figures: $(VENV)/.installed-experiments
	$(PY) -m experiments.run_all --quick --out docs/figures

bench: $(VENV)/.installed
	$(PY) -m benchmarks

# --strict: every warning (a broken link, an unresolved reference, a page outside the nav) is an error
docs: $(VENV)/.installed-docs
	$(PY) -m mkdocs build --strict --site-dir build/site
	@echo "docs: build/site/index.html"

# build (isolated, as pip would) into dist/, then a venv that has nothing but the wheel and its
# dependencies, run from outside the source tree
wheel: $(VENV)/.installed-test
	rm -rf dist build/wheel-venv
	$(PY) -m build --wheel --outdir dist .
	$(PYTHON) -m venv build/wheel-venv
	build/wheel-venv/bin/python -m pip install --quiet dist/fnnet-*.whl
	cd build && wheel-venv/bin/python -c "import fnnet, sys; assert 'wheel-venv' in fnnet.__file__, fnnet.__file__; print('wheel ok:', fnnet.__file__)"
	cd build && wheel-venv/bin/python -m fnnet --version

clean:
	rm -rf $(VENV) build dist *.egg-info

# on a machine with a GPU: the suite, the activation benchmarks and the accuracy table, into $$OUT
device-check:
	bash experiments/device_check.sh
