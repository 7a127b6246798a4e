# kubeops.etcd — one entry point for set-up, tests and the demo.
#   make test   every quality gate: sanity, lint, unit, lab, integration, molecule (what CI runs)
#   make demo   lab up, load data, back up, break the cluster, restore, verify, lab down
#   make bench  the benchmark (BENCH_ARGS="--quick", or --sizes 10M,200M,1G --nodes 3,5 --rounds 3)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

REPO := $(abspath .)
VENV ?= $(REPO)/.venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
COLLECTIONS := $(REPO)/build/collections
# Outside the repository: inside it, git would report the copy as ignored and ansible-test would skip it.
SANITY_BASE := $(or $(TMPDIR),/tmp)/kubeops-etcd-sanity
SANITY_ROOT := $(SANITY_BASE)/ansible_collections/kubeops/etcd
PYVER := $(shell python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export PATH := $(BIN):$(PATH)

.PHONY: help install collection-link sanity sanity-bootstrap lint unit lab-test integration molecule test demo bench docs clean

help:
	@grep -E '^#   make' Makefile | sed 's/^#   //'

$(VENV)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed collection-link ## Python tools into .venv, collection on the collections path

collection-link:
	mkdir -p $(COLLECTIONS)/ansible_collections/kubeops
	ln -sfn $(REPO) $(COLLECTIONS)/ansible_collections/kubeops/etcd

# ansible-test seeds pip into its sanity venvs with a script from a host CI cannot reach;
# tests/sanity/get_pip.py does the same job from the pip wheel on PyPI.
sanity-bootstrap: install
	mkdir -p $(HOME)/.ansible/test/cache
	cp tests/sanity/get_pip.py $(HOME)/.ansible/test/cache/get_pip_24_2.py
	test -e $(HOME)/.ansible/test/cache/pip-24.2-py3-none-any.whl || \
	  $(BIN)/pip download --disable-pip-version-check -q --no-deps -d $(HOME)/.ansible/test/cache pip==24.2

# ansible-test must run from ansible_collections/<ns>/<name>: sanity checks a copy of the
# files git would ship (tracked plus untracked-but-not-ignored).
sanity: sanity-bootstrap
	rm -rf $(SANITY_BASE)
	mkdir -p $(SANITY_ROOT)
	git ls-files -z --cached --others --exclude-standard | \
	  while IFS= read -r -d '' f; do [ -e "$$f" ] && printf '%s\0' "$$f"; done | \
	  rsync -a --from0 --files-from=- ./ $(SANITY_ROOT)/
	cd $(SANITY_ROOT) && $(BIN)/ansible-test sanity --local --python $(PYVER) --color no

lint: install
	$(BIN)/ansible-lint --profile production
	$(PY) docs/gen_variables.py --check

unit: install
	$(PY) -m pytest -q tests/unit bench/test_timeline.py

lab-test: install
	$(PY) -m pytest -q tests/lab

integration: install
	$(PY) -m pytest -q -n 2 --dist loadfile tests/integration

molecule: install
	cd $(REPO) && $(BIN)/molecule test

test: sanity lint unit lab-test integration molecule

demo: install
	$(PY) scripts/demo.py

bench: install
	$(PY) bench/bench.py $(BENCH_ARGS)

docs: install
	$(PY) docs/gen_variables.py

clean:
	-tests/lab/labctl down
	rm -rf build tests/output
