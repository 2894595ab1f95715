# The two commands of the README: `make demo` (the main job on the embedded digits data) and
# `make test`. Each creates .venv and installs what it needs on first use. torch is pinned to the
# CPU build 2.13.0 first, so nothing else can pull a multi-GB CUDA build.

VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install demo test test-all test-gpu check-grad data clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/l2t demo

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m "not gpu"

check-grad: $(STAMP)
	$(VENV)/bin/l2t check-grad --method reverse
	$(VENV)/bin/l2t check-grad --method unrolled

# Real Fashion-MNIST (IDX files under /usr/share/datasets/fashion-mnist) from Debian.
data:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then echo "fashion-mnist: installed"; \
	else $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y dataset-fashion-mnist; fi

clean:
	rm -rf $(VENV) runs .pytest_cache

test-gpu: $(STAMP)
	$(PY) -m pytest -q -m gpu
