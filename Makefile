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
# A room without network: `make wheelhouse` (with network) downloads every wheel the course needs into
# $(WHEELHOUSE); while it holds wheels, the install takes them from there only, with pip's index turned off.
WHEELHOUSE ?= wheelhouse
PIP_OFFLINE = $(if $(wildcard $(WHEELHOUSE)/*.whl),--no-index --find-links $(WHEELHOUSE))

.PHONY: help install doctor course test test-browser lab notebooks publish-notebooks tiny-models stages stages-check benchmarks clean

help:
	@echo "make doctor      check this machine: versions, cores, GPU, tiny models, widgets, time of make course"
	@echo "make course      execute notebooks 00.. on the CPU profile (R1LIB_PROFILE=$(PROFILE))"
	@echo "make test        run the test suite"
	@echo "make test-browser run the course in JupyterLab in headless Chromium (needs: apt-get install chromium)"
	@echo "make lab         open JupyterLab on notebooks/"
	@echo "make notebooks   rebuild notebooks/*.ipynb from notebooks/src (outputs of unchanged cells are kept)"
	@echo "make publish-notebooks  rebuild, then execute every notebook on the CPU profile into the committed files"
	@echo "make tiny-models rebuild data/tiny-base, its twin without reflection and the two students from their seeds (about an hour on 2 cores)"
	@echo "make stages      rebuild data/stages (the trained stages later notebooks read: 03's R1-Zero, 04's teacher, 05's cold start, 06's R1) from their seeds (about 3 minutes)"
	@echo "make stages-check rebuild them into a temporary folder and compare every file's sha256 with the shipped ones"
	@echo "make wheelhouse  download every wheel the course needs into $(WHEELHOUSE)/; make install then needs no network"

$(STAMP): pyproject.toml scripts/install_torch.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	PIP_OFFLINE="$(PIP_OFFLINE)" bash scripts/install_torch.sh $(PY)
	$(PY) -m pip install -e ".[dev]" $(PIP_OFFLINE)
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (r1-course)" >/dev/null
	touch $(STAMP)

install: $(STAMP)

doctor: install
	$(PY) -m r1lib.doctor

# For this platform (Python version, OS, GPU or not): torch by scripts/install_torch.sh's rule (a CPU build when
# there is no GPU) and pinned, this project's wheel, every dependency of .[dev], and setuptools to build the
# editable install from.
.PHONY: wheelhouse
wheelhouse:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	bash scripts/install_torch.sh $(PY) $(WHEELHOUSE)
	$(PY) -m pip wheel --no-deps -w $(WHEELHOUSE) .
	$(PY) -m pip download -d $(WHEELHOUSE) --find-links $(WHEELHOUSE) -c $(WHEELHOUSE)/torch-pin.txt ".[dev]" "setuptools>=68" wheel
	du -sh $(WHEELHOUSE)

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
	# R1LIB_RUN_SOLUTIONS=1: the worked solutions that retrain run too, so that their outputs are published;
	# make course skips them (a reader turns them on with RUN_SOLUTIONS = True).
	rm -rf notebooks/runs && R1LIB_PROFILE=cpu R1LIB_RUNS_DIR=runs R1LIB_RUN_SOLUTIONS=1 $(PY) scripts/run_notebooks.py --in-place && rm -rf notebooks/runs

# Bit for bit: the same seed, PyTorch version and thread count give the same weights.
tiny-models: install
	$(PY) -m r1lib.tiny.pretrain --out data/tiny-base --steps 6000 --seed 0 --threads 2
	$(PY) -m r1lib.tiny.pretrain --out data/tiny-student-quarter --steps 6000 --seed 0 --threads 2 --hidden-size 64 --intermediate-size 192
	$(PY) -m r1lib.tiny.pretrain --out data/tiny-student-sixteenth --steps 6000 --seed 0 --threads 2 --hidden-size 32 --intermediate-size 96
	# The shipped base's twin whose corpus never shows reflection (notebook 09): the same recipe, no diligent search.
	$(PY) -m r1lib.tiny.pretrain --out data/tiny-base-no-reflection --steps 6000 --seed 0 --threads 2 --diligent-rate 0

# The stages a notebook reads from earlier ones, shipped so that any notebook starts on its own (r1lib.shipped):
# trained by the notebooks' own code on the cpu profile, bit for bit on the same PyTorch and 2 threads.
stages: install
	$(PY) scripts/build_stages.py --threads 2

stages-check: install
	$(PY) scripts/build_stages.py --threads 2 --check

benchmarks: install
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b; done

clean:
	rm -rf $(VENV) notebooks/executed runs
