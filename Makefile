# npnet: `make train` sets everything up and runs the main job; `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
OUT    ?= runs/default
# A second `make train` starts the run afresh; ARGS=--resume continues the last one instead.
ARGS   ?= --overwrite

.PHONY: test train data bench reference notebooks clean help

help:
	@echo "make train   - venv, install, Fashion-MNIST, then npnet train (OUT=runs/x, ARGS='--overwrite --epochs 5', ARGS=--resume)"
	@echo "make test    - venv, install with test extras, Fashion-MNIST (as make train), run the whole suite"
	@echo "make bench   - benchmarks against PyTorch; writes benchmarks/results/latest.{json,md,png}"
	@echo "make reference - the table of every npnet gradient against torch"
	@echo "make notebooks - re-run the course's notebooks (notebooks/*.ipynb) in place at full size"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# The test extras hold everything the train and bench extras do (tests/test_makefile.py
# checks it), so one install serves all three and a later `make train` installs nothing.
$(VENV)/.installed-test: setup.cfg pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[test]'
	touch $@ $(VENV)/.installed-train $(VENV)/.installed-bench

$(VENV)/.installed-train: setup.cfg pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[train]'
	touch $@

$(VENV)/.installed-bench: setup.cfg pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[bench]'
	touch $@

# Find the data (local folders, cache, Debian's package, then the official download);
# failing that, install Debian's dataset-fashion-mnist package where apt-get exists.
# One line per step; the full report (every place searched, every download attempt,
# every way to provide the files) only when every way failed. `npnet data` exits 1
# only when the data is nowhere and the download failed; 2 (a corrupt file) stops here.
data: $(VENV)/.installed-train
	@$(PY) -m npnet data --quiet 2>/dev/null; status=$$?; \
	if [ $$status -eq 1 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Fashion-MNIST not found locally; installing Debian's dataset-fashion-mnist package..."; \
	  if { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; } >/dev/null 2>&1; then \
	    $(PY) -m npnet data --quiet --no-download 2>/dev/null && exit 0; \
	  else echo "apt-get install dataset-fashion-mnist failed (run it as root to see why)" >&2; fi; \
	fi; \
	[ $$status -eq 0 ] || $(PY) -m npnet data

train: data
	$(VENV)/bin/npnet train --out $(OUT) $(ARGS)

# The data comes first, as for `make train` (the data target, on the install made here);
# where it cannot be had, the suite still runs and the real-data tests skip with one reason.
test: $(VENV)/.installed-test
	@$(MAKE) --no-print-directory data || \
	  echo "make test: Fashion-MNIST could not be obtained; the real-data tests will skip."
	$(PY) -m pytest
	NPNET_KERNELS=plain $(PY) -m pytest -q tests/test_functional.py tests/test_layers.py tests/test_losses.py \
	  tests/test_gradcheck.py tests/test_fast.py tests/test_normalization.py tests/test_pooling.py tests/test_gelu.py tests/test_conv.py

# Jupyter, an executor and torch (for the notebooks' torch comparisons), so that a re-run
# reproduces the committed outputs; then every notebook is rebuilt from notebooks/src/ and
# executed in place at full size (NPNET_NOTEBOOK_SIZE=quick for seconds instead of minutes).
$(VENV)/.installed-notebooks: setup.cfg pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[notebooks,reference]'
	touch $@

notebooks: $(VENV)/.installed-notebooks data
	$(PY) notebooks/build.py --execute --size $${NPNET_NOTEBOOK_SIZE:-full}

reference: $(VENV)/.installed-test
	$(PY) -m reference

bench: $(VENV)/.installed-test $(VENV)/.installed-bench data
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
