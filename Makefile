# kubeops.etcd — one entry point for set-up, tests and the demo.
#   make test   every quality gate: sanity, lint, unit, lab, integration, molecule, compat (what CI runs)
#   make demo   lab up, load data, back up, break the cluster, restore, verify, lab down
#   make compat the oldest ansible-core meta/runtime.yml allows: unit tests, sanity, a backup/restore round trip
#   make faults the fault suite alone (tests/integration/faults, also in make test): signals, taken ports, full disks
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
# Expanded when used: on a fresh machine python3 arrives with `make install`.
PYVER = $(shell python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# The oldest ansible-core that meta/runtime.yml allows, in a venv of its own (under build/, which git
# ignores, so sanity never copies it); the newest allowed is requirements-dev.txt's, which every other target uses.
COMPAT_ANSIBLE := 2.16
COMPAT_VENV := $(REPO)/build/venv-ansible-$(COMPAT_ANSIBLE)
COMPAT_BIN := $(COMPAT_VENV)/bin
COMPAT_REQUIREMENTS := tests/compat/requirements-ansible-$(COMPAT_ANSIBLE).txt
COMPAT_SANITY_BASE := $(or $(TMPDIR),/tmp)/kubeops-etcd-sanity-ansible-$(COMPAT_ANSIBLE)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export PATH := $(BIN):$(PATH)

.PHONY: faults labs-and-molecule help system-packages install collection-link sanity sanity-bootstrap lint unit lab-test integration molecule test \
	demo bench docs clean compat compat-install compat-sanity-bootstrap compat-unit compat-sanity compat-round-trip

help:
	@grep -E '^#   make' Makefile | sed 's/^#   //'

# Debian packages (sshd for the lab, python3-venv, age, ...): installs what is missing as root, and says what
# to run when not root; nothing to do without apt-get or root when all are there.
system-packages:
	scripts/install-system-packages.sh

$(VENV)/.installed: requirements-dev.txt | system-packages
	python3 -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

install: system-packages $(VENV)/.installed collection-link ## system packages, Python tools into .venv, collection on the collections path

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
# $(call sanity-run,<base dir>,<venv bin dir>)
define sanity-run
rm -rf $(1)
mkdir -p $(1)/ansible_collections/kubeops/etcd
git ls-files -z --cached --others --exclude-standard | \
  while IFS= read -r -d '' f; do [ -e "$$f" ] && printf '%s\0' "$$f"; done | \
  rsync -a --from0 --files-from=- ./ $(1)/ansible_collections/kubeops/etcd/
cd $(1)/ansible_collections/kubeops/etcd && PATH="$(2):$$PATH" $(2)/ansible-test sanity --local --python $(PYVER) --color no
endef

sanity: sanity-bootstrap
	$(call sanity-run,$(SANITY_BASE),$(BIN))

lint: install
	$(BIN)/ansible-lint --profile production
	$(PY) docs/gen_variables.py --check

unit: install
	$(PY) -m pytest -q tests/unit bench/test_timeline.py

lab-test: install
	$(PY) -m pytest -q tests/lab

# Every integration file, the fault suite (tests/integration/faults) included, three files at a time: the fault files
# come first in collection order, so their long cases (timeouts, ten restores) start early instead of ending the run.
integration: install
	$(PY) -m pytest -q -n 3 --dist loadfile --durations=0 --durations-min=15 tests/integration

# The fault suite alone (also part of `make integration` and `make test`).
faults: install
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=20 tests/integration/faults

molecule: install
	cd $(REPO) && $(BIN)/molecule test

# CI has 2 cores: each part of `make compat` runs beside a stage that is mostly one process
# (sanity, lint, the lab's tests), so the oldest ansible-core adds minutes of wall time, not its whole run.
PAIR := $(MAKE) --no-print-directory -j2 --output-sync=target
test: install compat-install
	$(PAIR) sanity compat-sanity
	$(PAIR) lint compat-unit
	$(MAKE) --no-print-directory unit
	$(PAIR) integration labs-and-molecule

# The lab suites that are not integration files run one after the other, beside the integration suites
# (every lab on its own ip_base: lab tests 80-120 and 370-399, compat 92, molecule 32).
labs-and-molecule:
	$(MAKE) --no-print-directory lab-test compat-round-trip molecule

compat: compat-unit compat-sanity compat-round-trip

$(COMPAT_VENV)/.installed: $(COMPAT_REQUIREMENTS) | system-packages
	python3 -m venv $(COMPAT_VENV)
	$(COMPAT_BIN)/pip install --disable-pip-version-check -q -r $(COMPAT_REQUIREMENTS)
	touch $@

compat-install: install $(COMPAT_VENV)/.installed

# ansible-test 2.16 seeds pip 23.1.2, setuptools 67.7.2 and wheel 0.37.1 into its venvs (see sanity-bootstrap).
compat-sanity-bootstrap: sanity-bootstrap
	cp tests/sanity/get_pip.py $(HOME)/.ansible/test/cache/get_pip_23_1_2.py
	test -e $(HOME)/.ansible/test/cache/wheel-0.37.1-py2.py3-none-any.whl || \
	  $(BIN)/pip download --disable-pip-version-check -q --no-deps -d $(HOME)/.ansible/test/cache \
	    pip==23.1.2 setuptools==67.7.2 wheel==0.37.1

compat-unit: compat-install
	$(COMPAT_BIN)/python -m pytest -q -p no:cacheprovider tests/unit bench/test_timeline.py

compat-sanity: compat-sanity-bootstrap compat-install
	$(call sanity-run,$(COMPAT_SANITY_BASE),$(COMPAT_BIN))

# One backup/restore round trip by the playbooks on a 3-node lab (127.0.0.93-95, /tmp/kubeops-fresh-92).
compat-round-trip: compat-install
	$(COMPAT_BIN)/python -m pytest -q -p no:cacheprovider tests/compat

demo: install
	$(PY) scripts/demo.py

bench: install
	$(PY) bench/bench.py $(BENCH_ARGS)

docs: install
	$(PY) docs/gen_variables.py

clean:
	-tests/lab/labctl down
	rm -rf build tests/output
