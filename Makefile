# wsal — self-documenting Makefile: `make help` lists the targets.
# Each target creates .venv and installs what it needs on a fresh machine (first run: a few minutes).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.wsal-installed
# The torch pair this machine ships on disk; override on other machines, e.g.
#   make test TORCH_SPEC="torch torchvision"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install demo results-trimmed demo-oracle demo-real proposals stil stil-study stil-study-seeds test test-full lint format bench clean

help: ## show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -c "import torch, torchvision" 2>/dev/null || $(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install wsal with its dev tools

demo: $(STAMP) ## actor attention (frozen ImageNet Lite0) on SynthActors (CPU, < 10 min), evaluate, results.json + pictures
	$(PY) train.py experiment=actor_attention_temporal_prim_synthactors_labels $(ARGS)

results-trimmed: $(STAMP) ## docs/results.md's trimmed table: actor attention on actor proposals and STIL, SynthActors seeds 0-2 (CPU ~2 h)
	$(PY) train.py -m experiment=actor_attention_actor_synthactors_labels,stil_layout_temporal_prim_synthactors_labels \
		'dataset.seed=0,1,2' 'dataset.root=$${paths.data_dir}/synthactors_s$${dataset.seed}' \
		task_name=results_trimmed hydra.sweep.dir=multirun/results_trimmed $(ARGS)
	$(PY) -m wsal.report multirun/results_trimmed --out reports/results_trimmed

demo-oracle: $(STAMP) ## localization only: Temporal Prim tubes labelled with the true class (~20 s)
	$(PY) train.py $(ARGS)

demo-real: $(STAMP) ## real clips, no downloads: track a head (carphone), HOG + linking per shot (bikes); outputs/real
	$(PY) -m wsal.app.real_footage demo --out outputs/real

proposals: $(STAMP) ## proposal recall of temporal_prim, viterbi, actor on SynthActors, untrimmed + trimmed (CPU ~25 min)
	$(PY) -m wsal.app.study --out reports/proposals --data data/synthactors_untrimmed \
		--synth preset=untrimmed --threads 1 $(ARGS)
	$(PY) -m wsal.app.study --out reports/proposals_trimmed --data data/synthactors_trimmed \
		--synth preset=trimmed --threads 1 $(ARGS)

stil: $(STAMP) ## train and evaluate STIL on SynthActors (Lite0 CNN box features with their 3x3 layout, CPU ~20 min)
	$(PY) train.py experiment=stil_layout_temporal_prim_synthactors_labels $(ARGS)

# The STIL study: every conf/study point but Fig. 5's is trained (on the STIL experiment with the
# box's layout); Fig. 5 reranks each trained STIL point with eval.py (same model and tubes).
STIL_EXP = experiment=stil_layout_temporal_prim_synthactors_labels
STIL_POINTS = stil,table1_mil,table1_gmil5,table1_gmil10,table1_gmil40,table1_stil_noprim,fig6_points_stride10,fig6_mixture,fig6_points,fig6_boxes_stride10,fig6_boxes
STIL_RERANK = for cfg in $$(grep -l '^  point: stil$$' $(1)/*/.hydra/config.yaml); do \
		for r in context negative both; do $(PY) eval.py run_dir=$$(dirname $$(dirname $$cfg)) reranking=$$r || exit 1; done; done

stil-study: $(STAMP) ## STIL paper study (Table 1, Fig. 5, Fig. 6): one Hydra multirun, Fig. 5 by eval.py, the report
	$(PY) train.py -m $(STIL_EXP) 'study=$(STIL_POINTS)' task_name=stil_study hydra.sweep.dir=multirun/stil_study $(ARGS)
	$(call STIL_RERANK,multirun/stil_study)
	$(PY) -m wsal.report stil multirun/stil_study --out reports/stil_study

stil-study-seeds: $(STAMP) ## the STIL study on two more SynthActors seeds; report over all three (run stil-study first)
	$(PY) train.py -m $(STIL_EXP) 'dataset.seed=1,2' 'dataset.root=$${paths.data_dir}/synthactors_s$${dataset.seed}' \
		'study=$(STIL_POINTS)' task_name=stil_study_seeds hydra.sweep.dir=multirun/stil_study_seeds $(ARGS)
	$(call STIL_RERANK,multirun/stil_study_seeds)
	$(PY) -m wsal.report stil multirun/stil_study multirun/stil_study_seeds --out reports/stil_study_seeds

test: $(STAMP) ## fast test suite (no slow tests)
	$(PY) -m pytest -m "not slow" -q -p no:cacheprovider $(ARGS)

test-full: $(STAMP) ## every test, slow ones included
	$(PY) -m pytest -q -p no:cacheprovider $(ARGS)

lint: $(STAMP) ## ruff (lint + format check) and mypy on the pure-logic modules
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP) ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP) ## benchmarks (figures printed, never asserted)
	$(PY) bench/bench_temporal_prim.py
	$(PY) bench/bench_evaluation.py
	$(PY) bench/bench_linkers.py
	$(PY) bench/bench_tracker.py --threads 1
	$(PY) bench/bench_features.py
	$(PY) bench/bench_tube_features.py
	$(PY) bench/bench_stil_solver.py --threads 1
	$(PY) bench/bench_detector.py
	$(PY) bench/bench_hog.py
	$(PY) bench/bench_synthactors.py
	$(PY) bench/bench_trainer_throughput.py --steps 10

clean: ## remove generated data, run folders and caches (keeps .venv)
	rm -rf data outputs multirun reports lightning_logs wandb bench/out .pytest_cache .ruff_cache .mypy_cache
