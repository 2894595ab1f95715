# The two commands of the README: `make demo` (the main job on the embedded digits data) and
# `make test`. Each creates .venv and installs what it needs on first use. torch is pinned to the
# CPU build 2.13.0 first, so nothing else can pull a multi-GB CUDA build.

VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install demo test test-all test-slow test-gpu check-grad bench bench-compile bench-nmt bench-long bench-gpu bench-distributed data clean

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

test-slow: $(STAMP)
	$(PY) -m pytest -q -m "slow and not gpu"

check-grad: $(STAMP)
	for m in reverse unrolled checkpoint reversible; do $(VENV)/bin/l2t check-grad --method $$m || exit 1; done

# Hypergradient engines vs plain training, higher and torchopt (about an hour on 2 cores),
# then the 10,000-step LeNet runs of the memory-bounded methods.
bench: $(STAMP)
	$(PY) -m pip install -q "$(TORCH)" -e ".[bench]"
	$(PY) benchmarks/hypergrad.py --json benchmarks/results/hypergrad.json

# The methods side by side in one process (the +compile ones too), and one step's products four
# ways (docs/engines.md "Compiled products"; about 45 minutes on 2 cores).
bench-compile: $(STAMP)
	$(PY) -m pip install -q "$(TORCH)" -e ".[bench]"
	$(PY) benchmarks/step_products.py --json benchmarks/results/step_products.json
	$(PY) benchmarks/hypergrad_interleaved.py --steps 200 --repeats 3 --json benchmarks/results/hypergrad_interleaved_200.json
	$(PY) benchmarks/hypergrad_interleaved.py --steps 1000 --repeats 2 --methods reverse checkpoint reverse+compile \
		checkpoint+compile unrolled torchopt --json benchmarks/results/hypergrad_interleaved_1000.json

# The Transformer student (docs/engines.md "A Transformer student"): T = 200 against torchopt
# (higher is left out: its graph would outgrow a 24 GB machine), then T = 1000 for the l2t methods
# (the graph-based ones would need ~110 GB); about 45 minutes on 2 cores (T = 1000: about 11
# minutes a method).
bench-nmt: $(STAMP)
	$(PY) -m pip install -q "$(TORCH)" -e ".[bench]"
	$(PY) benchmarks/hypergrad.py --students transformer --steps 200 --no-precision-floor \
		--methods reverse checkpoint reversible torchopt --json benchmarks/results/hypergrad_transformer.json
	$(PY) benchmarks/hypergrad.py --students transformer --steps 1000 --no-precision-floor \
		--methods reverse checkpoint reversible --json benchmarks/results/hypergrad_transformer_1000.json

bench-long: $(STAMP)
	$(PY) benchmarks/hypergrad.py --students lenet --steps 10000 --methods checkpoint reversible \
		--no-precision-floor --json benchmarks/results/hypergrad_lenet_10k.json

# The l2t methods on a CUDA GPU (a few minutes on an H100; README "On a GPU").
bench-gpu: $(STAMP)
	$(PY) benchmarks/hypergrad.py --device cuda --students mlp lenet --steps 200 1000 \
		--methods reverse checkpoint reversible unrolled --json benchmarks/results/hypergrad_cuda.json

# Teacher steps per second: 1 process x N threads against N processes x 1 thread (torchrun, gloo;
# about 3 minutes on 2 cores). docs/distributed.md has the table.
bench-distributed: $(STAMP)
	$(PY) benchmarks/distributed.py --json benchmarks/results/distributed.json

# Real data from Debian: Fashion-MNIST (IDX files under /usr/share/datasets/fashion-mnist) and the
# German-English dictionary the trans-de-en sentence pairs come from (/usr/share/trans/de-en).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
data:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then echo "fashion-mnist: installed"; \
	else $(SUDO) apt-get install -y dataset-fashion-mnist; fi
	@if [ -f /usr/share/trans/de-en ]; then echo "trans-de-en: installed"; \
	else $(SUDO) apt-get install -y trans-de-en; fi

clean:
	rm -rf $(VENV) runs .pytest_cache

test-gpu: $(STAMP)
	$(PY) -m pytest -q -m gpu
