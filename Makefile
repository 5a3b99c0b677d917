# r1-course. Two commands do everything on a fresh machine:
#   make course   set up, then execute every notebook on the CPU profile
#   make test     set up, then run the test suite (smoke profile)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= cpu

.PHONY: help install course test lab notebooks tiny-base benchmarks clean

help:
	@echo "make course      execute notebooks 00.. on the CPU profile (R1LIB_PROFILE=$(PROFILE))"
	@echo "make test        run the test suite"
	@echo "make lab         open JupyterLab on notebooks/"
	@echo "make tiny-base   rebuild data/tiny-base from its seed (about 30 min on one core)"

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
	R1LIB_PROFILE=smoke $(PY) -m pytest

lab: install
	R1LIB_PROFILE=$(PROFILE) $(VENV)/bin/jupyter lab notebooks

notebooks: install
	$(PY) scripts/build_notebooks.py

tiny-base: install
	$(PY) -m r1lib.tiny.pretrain --out data/tiny-base --steps 4000 --seed 0 --threads 1

benchmarks: install
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b; done

clean:
	rm -rf $(VENV) notebooks/executed runs
