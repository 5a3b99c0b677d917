# r1-course. Two commands do everything on a fresh machine:
#   make course   set up, then execute every notebook on the CPU profile
#   make test     set up, then run the test suite (smoke profile)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= cpu
# Tests run in 2 processes of one thread each (tests/conftest.py): tiny models gain little from a
# second thread, and two single-threaded workers keep both cores busy through imports and subprocesses.
# Each test file stays on one worker, in order (the notebooks read what earlier notebooks trained).
TEST_WORKERS ?= 2

.PHONY: help install course test test-browser lab notebooks publish-notebooks tiny-models benchmarks clean

help:
	@echo "make course      execute notebooks 00.. on the CPU profile (R1LIB_PROFILE=$(PROFILE))"
	@echo "make test        run the test suite"
	@echo "make test-browser run the course in JupyterLab in headless Chromium (needs: apt-get install chromium)"
	@echo "make lab         open JupyterLab on notebooks/"
	@echo "make notebooks   rebuild notebooks/*.ipynb from notebooks/src (outputs of unchanged cells are kept)"
	@echo "make publish-notebooks  rebuild, then execute every notebook on the CPU profile into the committed files"
	@echo "make tiny-models rebuild data/tiny-base and the two students from their seeds (about 50 min on 2 cores)"

$(STAMP): pyproject.toml scripts/install_torch.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	bash scripts/install_torch.sh $(PY)
	$(PY) -m pip install -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (r1-course)" >/dev/null
	touch $(STAMP)

install: $(STAMP)

course: install
	R1LIB_PROFILE=$(PROFILE) $(PY) scripts/run_notebooks.py --out notebooks/executed

test: install
	R1LIB_PROFILE=smoke $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

test-browser: install
	$(PY) -m pip install -q -e ".[browser]"
	R1LIB_PROFILE=smoke $(PY) -m pytest -m browser tests/browser

lab: install
	R1LIB_PROFILE=$(PROFILE) $(VENV)/bin/jupyter lab notebooks

notebooks: install
	$(PY) scripts/build_notebooks.py

publish-notebooks: notebooks
	# A fresh runs/ beside the notebooks (they run in notebooks/), so that every stage is trained by this
	# code and the outputs show the paths a learner sees, not a temporary folder.
	rm -rf notebooks/runs && R1LIB_PROFILE=cpu R1LIB_RUNS_DIR=runs $(PY) scripts/run_notebooks.py --in-place && rm -rf notebooks/runs

# Bit for bit: the same seed, PyTorch version and thread count give the same weights.
tiny-models: install
	$(PY) -m r1lib.tiny.pretrain --out data/tiny-base --steps 6000 --seed 0 --threads 2
	$(PY) -m r1lib.tiny.pretrain --out data/tiny-student-quarter --steps 6000 --seed 0 --threads 2 --hidden-size 64 --intermediate-size 192
	$(PY) -m r1lib.tiny.pretrain --out data/tiny-student-sixteenth --steps 6000 --seed 0 --threads 2 --hidden-size 32 --intermediate-size 96

benchmarks: install
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b; done

clean:
	rm -rf $(VENV) notebooks/executed runs
