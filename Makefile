# Two commands on a fresh machine: `make demo` runs the whole pipeline, `make test` the tests.
# Each does its own set-up first; `make setup` is idempotent.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# A CPU machine gets the CPU build of torch: this pin resolves to the local +cpu wheel here.
# Elsewhere pass e.g. TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu",
# or TORCH_SPEC=torch on a GPU machine.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
# dvc.yaml runs `python -m stages.<name>`: that python must be the venv's.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup dev demo readme lint test test-slow bench bench-train bench-search gpu-check bench-active bench-confidence bench-transfer params dag paper-regression

# `setup`: what running the pipeline needs; `dev`: also the test suite's extras (pytest, Ray,
# submitit, lm-eval). Both say how to put `dvc` and `regmix` on the PATH.
setup: $(VENV)/.installed .dvc/config
	@echo "set up: put dvc and regmix on your PATH with  source $(VENV)/bin/activate  (or export PATH=\"$(CURDIR)/$(BIN):\$$PATH\")"

dev: $(VENV)/.installed-dev .dvc/config

# The set-up's seconds go to $(VENV)/.setup_seconds: `make demo`'s stage table shows them.
$(VENV)/.installed: pyproject.toml
	@date +%s > .setup_started
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e .
	@echo $$(( $$(date +%s) - $$(cat .setup_started) )) > $(VENV)/.setup_seconds && rm -f .setup_started
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

.dvc/config:
	$(BIN)/dvc init -q
	$(BIN)/dvc config hydra.enabled true

# Each stage's seconds (and the set-up's) -> results/stage_seconds.csv
demo: setup
	$(BIN)/python -m regmix.timings $(BIN)/dvc repro
	$(MAKE) readme

# The results sections of README.md and docs/results.md, regenerated from the committed metrics/ and results/.
readme: setup
	$(BIN)/python -m regmix.judge.readme

# One formatter and linter (ruff, configured in pyproject.toml): CI runs it before the tests.
lint: dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

test: dev
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: dev
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

# Benchmarks (benchmarks/): speed goals live here, never in timed tests.
bench: bench-train bench-search

bench-train: setup
	$(BIN)/python -m benchmarks.bench_train

bench-search: setup
	$(BIN)/python -m benchmarks.bench_search

# What users run on GPUs (proxies, torchrun + resume, export + scoring, packing): one JSON record in
# benchmarks/results/gpu/; at most 8 minutes on one GPU, about 30 s in its tiny CPU form without one.
gpu-check: setup
	$(BIN)/python -m benchmarks.gpu_check

# Active rounds vs random growth on RegMix's released swarm (../shared/regmix_data); about 10 minutes on 2 cores.
bench-active: setup
	$(BIN)/python -m benchmarks.bench_active

# Whether the search's confidence over the prior is honest, and the fallback threshold's regret; about 10 minutes.
bench-confidence: setup
	$(BIN)/python -m benchmarks.bench_confidence

# Whether the proxies order the committed run's mixtures as its large runs do (needs `make demo`); about 20 minutes.
bench-transfer: setup
	$(BIN)/python -m benchmarks.bench_transfer --steps 32,128,512 --seeds 4 --out benchmarks/results/transfer.json

# Re-compose conf/ into params.yaml exactly as `dvc exp run` does (after editing conf/).
params: setup
	$(BIN)/python -m regmix.compose $(OVERRIDES)

dag: setup
	$(BIN)/dvc dag

# The paper's Table 2 on the released 1M proxies: the fit stage alone, outputs under $(PAPER_OUT)
# (the pipeline's own outputs stay untouched). E.g. OVERRIDES=regression=linear.
PAPER_OUT ?= results/paper
paper-regression: setup
	mkdir -p $(PAPER_OUT)
	$(BIN)/python -c 'import sys; from regmix.compose import compose; compose(sys.argv[1], sys.argv[2:])' \
		$(PAPER_OUT)/params.yaml experiment=paper_regression $(OVERRIDES)
	$(BIN)/python -m stages.fit results/proxies.csv results/proxy_replicates.csv $(PAPER_OUT)/data/regression $(PAPER_OUT)/results/fit.json \
		$(PAPER_OUT)/results/fit_predictions.csv $(PAPER_OUT)/plots/fit $(PAPER_OUT)/metrics/fit.json --params $(PAPER_OUT)/params.yaml
