# Two commands on a fresh machine: `make repro` (the whole pipeline) and `make test` (the suite).
# Each creates .venv if missing and installs the pinned dependencies first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
BM3D := $(VENV)/.installed-bm3d
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PYTHONUNBUFFERED := 1

.PHONY: repro test install bm3d clean-venv bench-cli figure report retrain remote-demo pr-comment bench bench-real score release levers bench-scale step-time tune bench-tune tune-show tune-dashboard

$(INSTALLED): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

# BM3D is free for non-commercial use only: an optional extra, installed for the pipeline and benchmarks.
$(BM3D): $(INSTALLED) requirements-bm3d.lock
	$(BIN)/python -m pip install -q --no-deps -r requirements-bm3d.lock
	touch $@

install: $(INSTALLED)

bm3d: $(BM3D)

repro: $(BM3D)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

# The suite in parallel (pytest-xdist): one worker per CPU up to TEST_WORKERS, each test file on one worker
# (its module fixtures, e.g. a tiny repo's `dvc repro`, are built once). `make test TEST_WORKERS=1`: serial.
TEST_WORKERS ?= 4
test: $(INSTALLED)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -n auto --maxprocesses $(TEST_WORKERS) --dist loadfile

clean-venv:
	rm -rf $(VENV)

# Speed and memory of the `denoise` command on this machine (needs the trained model: make repro), per engine;
# with $(DATA)/bsd68 present, also each engine's PSNR there at σ 25.
bench-cli: $(INSTALLED)
	$(BIN)/python bench/cli_bench.py $(if $(wildcard $(DATA)/bsd68),--quality $(DATA)/bsd68)

# The README's before/after picture, made with the `denoise` command and the trained model.
figure: $(INSTALLED)
	$(BIN)/python docs/make_figure.py

# report.md: params/metrics diff, curves and comparison images against BASE (default: merge base with main).
BASE ?= $(shell git merge-base HEAD main 2>/dev/null || echo HEAD)
report: $(INSTALLED)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m denoise.report --base $(BASE) --out report.md

# What CI runs on each change: fetch the remote's cache (run-cache too, so unchanged stages are
# restored rather than recomputed), reproduce what changed, push the results back.
retrain: $(INSTALLED)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc pull --run-cache --allow-missing
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc push --run-cache

# A local-directory DVC remote beside the checkout, to try push/pull without cloud credentials.
REMOTE_DIR ?= $(CURDIR)/../denoise-dvc-remote
remote-demo: $(INSTALLED)
	mkdir -p $(REMOTE_DIR)
	$(BIN)/dvc remote add --local --force -d demo $(REMOTE_DIR)
	$(BIN)/dvc push

# CI only: post report.md on the pull request, updating the one comment CML keeps there.
pr-comment:
	cml comment update --target=pr report.md

# The DnCNN benchmark (train400 → BSD68, Set12 at σ 15/25/50) through the real pipeline; 28 min here when
# BM3D's outputs are already in bench/work's DVC cache.
# PRESET=bench/preset-gpu.yaml is the longer run for an accelerator (results in bench/results-gpu.md; docs/accelerators.md).
DATA ?= $(CURDIR)/../shared/datasets
PRESET ?= bench/preset.yaml
bench: $(BM3D)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/run_bench.py --data $(DATA) --preset $(PRESET)

# Real camera noise (PolyU-Canon: noisy crops against the mean of many shots): noisy, CBM3D (estimated σ, and the best
# single σ on the set), and the color presets' models and the released model where present -> bench/results-real.md.
bench-real: $(BM3D)
	$(BIN)/python bench/real_bench.py --data $(DATA) $(if $(MODEL),--model "$(MODEL)")

# Models side by side on clean sets with seeded Gaussian noise, as `denoise` runs them: make score MODELS="a=x.keras b=y.keras" SETS="bsd68 cbsd68"
MODELS ?= released=models/released/photo.keras
SETS ?= bsd68
score: $(INSTALLED)
	$(BIN)/python bench/score_models.py $(foreach m,$(MODELS),--model $(m)) $(foreach s,$(SETS),--set $(DATA)/$(s))

# The models `denoise` uses out of the box, with their provenance: bench/work-camera's to models/released/photo.keras,
# and with WORK=bench/work PRESET=bench/preset.yaml OUT=models/released/gray.keras the gray one.
release: $(INSTALLED)
	$(BIN)/python bench/release.py $(if $(WORK),--work $(WORK)) $(if $(filter command line,$(origin PRESET)),--preset $(PRESET)) $(if $(OUT),--out $(OUT))

# Training levers at equal training time (bench/levers.yaml → bench/levers.md), on the split `make bench` prepared; ~6 min a variant.
levers: $(INSTALLED)
	$(BIN)/python bench/levers.py $(if $(ONLY),--only "$(ONLY)")

# The pipeline on a data set larger than memory (>= 10 GB of decoded pixels, built in bench/work-scale, ~35 GB of disk):
# seconds and peak memory per stage, training speed against a small data set.
bench-scale: $(INSTALLED)
	$(BIN)/python bench/scale.py --data $(DATA) $(if $(GB),--gb $(GB))

# Seconds per training step of params.yaml's model under each Keras backend and precision.
step-time: $(INSTALLED)
	$(BIN)/python bench/step_time.py

# Hyperparameter search (Optuna): every trial a DVC experiment (dvc exp show lists them); rerun to resume.
# SPACE: search-space file; TRIALS in all; WORKERS at once; STORAGE: journal file or sqlite:///…, postgresql://… (shared)
SPACE ?= bench/tune-space.yaml
TRIALS ?= 20
WORKERS ?= 1
STORAGE ?= .optuna/journal.log
STUDY ?= tune
SEED ?= 0
tune: $(BM3D)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m denoise.tuning --space $(SPACE) --trials $(TRIALS) --workers $(WORKERS) --storage $(STORAGE) --study $(STUDY) --seed $(SEED)

# make tune over a bench preset (its own work copy; TUNE_SPACE) -> bench/tune[-NAME].md; then the best at full length by make bench
TUNE_SPACE ?= bench/tune-preset.yaml
bench-tune: $(BM3D)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/run_bench.py --data $(DATA) --preset $(PRESET) --tune $(TUNE_SPACE) --trials $(TRIALS)

# The study's trials as a markdown table (experiment, state, validation PSNR, values).
tune-show: $(INSTALLED)
	$(BIN)/python -m denoise.tuning --show --storage $(STORAGE) --study $(STUDY)

# The study's history in a browser (optuna-dashboard on the same storage).
tune-dashboard: $(INSTALLED)
	$(BIN)/optuna-dashboard $(if $(findstring ://,$(STORAGE)),$(STORAGE),$(abspath $(STORAGE)))
