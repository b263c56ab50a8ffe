# glowlib: `make reproduce` regenerates every figure and table into results/ and builds the book;
# `make test` runs the test suite (CI: .ci/run). Both create .venv first if it is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# Each stage of `make test` and `make reproduce` (set-up, plan, models, each notebook, book, pytest) ends with one
# line, "== STAGE: done in D (T since the start)", so that a long run says what it has done and how far along it is.
# The start is the first make's (set before anything below runs); its sub-makes inherit it through the environment.
ifndef GLOWLIB_STARTED
export GLOWLIB_STARTED := $(shell date +%s)
endif
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# gpu on a CUDA machine (a day on one H100-class GPU), cpu otherwise; PROFILE=smoke|cpu|gpu|paper overrides
# (computed once: importing torch is slow). paper is the official settings: weeks of GPU time (make plan says how long)
ifeq ($(origin PROFILE),undefined)
PROFILE := $(shell $(PY) -c "import torch; print('gpu' if torch.cuda.is_available() else 'cpu')" 2>/dev/null || echo cpu)
endif
PROFILES := smoke cpu gpu paper
# worker processes for the trainings (default: one per visible GPU, else one per core with its share of the cores
# as threads: glowlib/runtime.py, bench/workers.py); e.g. make models WORKERS=1
WORKERS ?=
# every study, one per paper figure or table (notebooks/<name>.py, glowlib/studies/<name>.py), in the book's order
# from the registry (plain Python, read before .venv exists); `make notebook NB=...` runs any of them
STUDIES := $(shell python3 glowlib/studies/registry.py)
RESULTS := results/$(PROFILE)
# a notebook reruns when its source or the library changes; training is cached by config hash, so a rerun
# only retrains a model whose config changed (a plot-only edit never retrains)
LIB := $(wildcard glowlib/*.py glowlib/*/*.py) glowlib/published_bpd.csv glowlib/published_speed.csv
# trained models are shared by every notebook and every rerun
export GLOWLIB_CACHE ?= $(CURDIR)/checkpoints
ifeq ($(PROFILE),smoke)
# smoke models are too small for a second thread to pay; on a busy 2-core machine it costs 10x
export OMP_NUM_THREADS ?= 1
endif
# Notebooks `make results` runs side by side: smoke's run on one thread each (above), so one per core (nproc, which
# would answer OMP_NUM_THREADS instead where it is set); a larger profile's notebook uses every core itself, so they
# run one at a time. NOTEBOOK_JOBS=1 runs them one by one.
NOTEBOOK_JOBS ?= $(if $(filter smoke,$(PROFILE)),$(shell env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || echo 1),1)

# shell: `took T0` prints the time since epoch second T0 as "42 s" or "3 min 5 s"
TOOK = took() { t=$$(( $$(date +%s) - $$1 )); if [ $$t -ge 60 ]; then echo "$$((t / 60)) min $$((t % 60)) s"; else echo "$$t s"; fi; }
# $(call stage_done,STAGE): the line that ends STAGE, begun at epoch second $$s (set by the recipe line)
stage_done = $(TOOK); echo "== $(1): done in $$(took $$s) ($$(took $$GLOWLIB_STARTED) since the start)"
# $(call position,WORD,LIST): " (3 of 15)" for WORD third of LIST's 15 words; empty when WORD is not in LIST
position = $(if $(filter $(1),$(2)), ($(words $(call upto,$(1),$(2))) of $(words $(2))))
upto = $(if $(filter $(1),$(firstword $(2))),$(1),$(firstword $(2)) $(call upto,$(1),$(wordlist 2,$(words $(2)),$(2))))
# $(call stage_failed,STAGE): the line that ends a failed STAGE, which is also written to $(FAILED_STAGE) when make
# test names that file, so that its last line can say which stage failed; the recipe line then fails
stage_failed = $(TOOK); echo "== $(1): FAILED after $$(took $$s) ($$(took $$GLOWLIB_STARTED) since the start)" >&2; \
  $(if $(FAILED_STAGE),echo "$(1)" >> $(FAILED_STAGE);) exit 1

# stop early, naming the bad value, for a PROFILE or NB that does not exist
ifneq ($(filter reproduce reproduce-steps plan models results notebook book,$(MAKECMDGOALS)),)
ifeq ($(filter $(PROFILE),$(PROFILES)),)
$(error PROFILE=$(PROFILE) is not a profile; choose one of: $(PROFILES))
endif
endif
ifneq ($(filter notebook,$(MAKECMDGOALS)),)
ifeq ($(words $(NB)),0)
$(error NB is not set; choose one of: $(STUDIES) (e.g. make notebook NB=temperature PARAMS="-p temperature 0.5"))
endif
ifneq ($(words $(NB)),1)
$(error NB=$(NB) names several notebooks; run one at a time (e.g. make notebook NB=$(firstword $(NB))))
endif
ifeq ($(filter $(NB),$(STUDIES)),)
$(error NB=$(NB) is not a notebook; choose one of: $(STUDIES))
endif
endif

# The notebooks `make results` (and so reproduce) runs: PROFILE's, in the book's order, less the studies it leaves
# out (`make notebook NB=...` still runs one); claims reads the others' results, so it comes last. Listing them
# asks the profile, which needs .venv's Python (glowlib and torch), so only the goal that uses them does.
ifneq ($(filter results,$(MAKECMDGOALS)),)
NOTEBOOKS := $(shell $(PY) -m glowlib.studies $(PROFILE))
ifeq ($(NOTEBOOKS),)
$(error could not list the notebooks of PROFILE=$(PROFILE) with $(PY) (the message is above); run make env first)
endif
endif
EXECUTED := $(foreach nb,$(NOTEBOOKS),$(RESULTS)/$(nb)/$(nb).ipynb)

.PHONY: help env test system-packages data plan reproduce reproduce-steps models results notebook book

help:
	@echo "make reproduce [PROFILE=smoke|cpu|gpu|paper]  print the plan, check the data, train (cached), run every"
	@echo "                                           notebook into results/PROFILE/, build the book"
	@echo "make plan [PROFILE=...]                    every training: size, measured cost here, cached or not, the"
	@echo "                                           total, missing data"
	@echo "make models [WORKERS=N]                    train every model of PROFILE (N processes; default: one per GPU,"
	@echo "                                           else one per core)"
	@echo "make notebook NB=name [PARAMS=\"-p k v\"]    rerun one notebook into its results folder, e.g."
	@echo "                                           make notebook NB=temperature PARAMS=\"-p temperature 0.5\""
	@echo "make results                               rerun only the notebooks whose source (or glowlib) changed"
	@echo "make book                                  build the book from results/PROFILE/ (no training, no execution)"
	@echo "make test                                  make reproduce PROFILE=smoke, then the tests (what CI runs)"
	@echo "make env                                   create .venv with everything installed"
	@echo "make data                                  download MNIST, Fashion-MNIST and CIFAR-10 into \$$GLOWLIB_DATA"
	@echo "                                           (checksums checked; files already there are kept)"
	@echo "notebooks (make notebook NB=...; make results runs PROFILE's): $(STUDIES); PROFILE now: $(PROFILE)"

env: $(STAMP)

# pip compiles every module it installs to bytecode: where PYTHONDONTWRITEBYTECODE is set, as in many containers,
# Python would otherwise compile torch's modules from source in every process that imports them (6.4 s of CPU
# instead of 2.6 s to import torch, pandas and matplotlib, on the 2-core Xeon of the README)
$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@$(MAKE) --no-print-directory system-packages
	@touch $@

# Fashion-MNIST (real data for the cpu profile's bits/dim table) and Chromium (the book's page checks) come from
# Debian. Nothing here stops make env, test or reproduce: what is installed already is left as it is (apt-get is not
# run), and what is missing is tried with apt-get as root; a failed `apt-get update` (no network, a broken mirror)
# only means installing from the package lists already here. Whatever is still missing then is one line each,
# saying why and how to install it, and the target goes on: the plan stops `make reproduce` where a profile needs
# Fashion-MNIST (MISSING DATA), and tests/test_book.py skips the browser tests without Chromium. A Chromium that
# is on PATH but does not start (Ubuntu's `chromium` is a shim that installs a snap, which a container cannot run)
# counts as missing. Fashion-MNIST counts as here in any folder glowlib.data reads it from.
FASHION_MNIST_DIR ?= /usr/share/datasets/fashion-mnist
FASHION_HOW := the cpu profile's bits/dim table trains on it; install it as root with apt-get install \
  dataset-fashion-mnist, or run make data (downloads it into \$$GLOWLIB_DATA/fashion_mnist/, checksums checked)
CHROMIUM_HOW := only the book's browser tests need it (tests/test_book.py skips them without it); install it as \
  root with apt-get install chromium, or put any Chromium or Google Chrome on PATH as chromium
system-packages:
	@data=$${GLOWLIB_DATA:-$$HOME/.glowlib/data}; \
	fashion() { [ -d $(FASHION_MNIST_DIR) ] || [ -d "$$data/fashion_mnist" ] || [ -d "$$data/fashion-mnist" ]; }; \
	if fashion && command -v chromium >/dev/null; then exit 0; fi; \
	why=" (not root, or no apt-get here)"; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  why=" (apt-get install failed)"; \
	  apt-get update -qq >/dev/null 2>&1 || \
	    why=" (apt-get update failed: no network or a broken mirror?; installing from the lists already here failed)"; \
	  fashion || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; \
	  command -v chromium >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; \
	fi; \
	fashion || echo "note: Fashion-MNIST is missing$$why; $(FASHION_HOW)"; \
	{ command -v chromium >/dev/null && chromium --version >/dev/null 2>&1; } || \
	  echo "note: Chromium is missing or does not start$$why; $(CHROMIUM_HOW)"; \
	exit 0

# MNIST, Fashion-MNIST and CIFAR-10 (python -m glowlib.download all: glowlib/download.py), each file verified by
# its SHA-256 and kept when it is already in place; MNIST and CIFAR-10 are the paper-scale profiles' datasets and
# the optional rows of the bits/dim table, Fashion-MNIST the cpu profile's (which reads Debian's package too).
# CelebA(-HQ) is named, not fetched. Nothing else downloads: every other target reads local files.
data: $(STAMP)
	$(PY) -m glowlib.download all

# The whole pipeline at smoke scale (book included), then every test, the book's page checks among them. Each stage
# ends with its line (above); the last line is "make test: passed in ..." or "make test: FAILED (stage) after ...".
# The set-up is a stage of its own (make env), so that its time is counted; nothing else depends on it here. Each
# sub-make is given its PROFILE, so that none imports torch to pick one.
test_failed = $(TOOK); echo "make test: FAILED ($(1)) after $$(took $$GLOWLIB_STARTED)" >&2; exit 1
# test processes (pytest-xdist), one per core; each takes the next test as it finishes one (worksteal), since the
# tests' times range from milliseconds to minutes. TEST_JOBS=1 runs them in one worker process
TEST_JOBS ?= $(shell env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || echo 1)
test:
	@echo "== set-up: .venv with glowlib and its packages (make env; nothing to do when pyproject.toml is unchanged)"
	@s=$$(date +%s); $(MAKE) --no-print-directory env PROFILE=smoke || { $(call test_failed,set-up: make env); }; \
	$(call stage_done,set-up)
	@failed=$$(mktemp); $(MAKE) --no-print-directory reproduce PROFILE=smoke FAILED_STAGE=$$failed || \
	  { stage=$$(head -n 1 $$failed); rm -f $$failed; \
	    $(call test_failed,make reproduce PROFILE=smoke$${stage:+ at $$stage}); }; rm -f $$failed
	@echo "== pytest: every test, the book's page checks among them"
	@s=$$(date +%s); $(PY) -m pytest -q -n $(TEST_JOBS) --dist worksteal --durations=30 || { $(call test_failed,pytest); }; \
	$(call stage_done,pytest)
	@$(TOOK); echo "make test: passed in $$(took $$GLOWLIB_STARTED)"

# A sub-make after $(STAMP), so that the default PROFILE is computed with the environment in place; it hands that
# PROFILE to each step, so that every step and the last line name the profile that ran. The plan comes first: it
# says what will train and what it costs, and missing data stops everything within seconds, before any training.
# Each step is a sub-make, so that `make -n reproduce` only prints what would run (make runs a line that names
# $(MAKE) even under -n, and everything else on that line with it).
reproduce: $(STAMP)
	@$(MAKE) --no-print-directory reproduce-steps REPRODUCE_STARTED=$$(date +%s)

reproduce-steps:
	@s=$$(date +%s); $(MAKE) --no-print-directory plan PROFILE=$(PROFILE) CHECK_DATA=1 || { $(call stage_failed,plan); }; \
	$(call stage_done,plan)
	@s=$$(date +%s); $(MAKE) --no-print-directory models PROFILE=$(PROFILE) || { $(call stage_failed,models); }; \
	$(call stage_done,models)
	@$(MAKE) --no-print-directory results PROFILE=$(PROFILE) -j $(NOTEBOOK_JOBS)
	@s=$$(date +%s); $(MAKE) --no-print-directory book PROFILE=$(PROFILE) || { $(call stage_failed,book); }; \
	$(call stage_done,book)
	@$(TOOK); echo "reproduce (PROFILE=$(PROFILE)) took $$(took $(or $(REPRODUCE_STARTED),$$GLOWLIB_STARTED)); the book: book/_build/html/index.html"

# the plan of PROFILE: one line per training (dataset, model, parameters, steps, batch, FLOPs, operations and host
# syncs per step, the step's time measured on this machine's device, the time left, cached or not), the total,
# and every missing data file with how to get it (CHECK_DATA=1: missing data is an error, as reproduce wants it).
# Where this machine lacks the device PROFILE is sized for (gpu or paper without a GPU) the steps are counted on
# the meta device, each distinct one once, and not timed (under a minute for gpu on a 2-core CPU); the H100
# figures come from those counts. Measurements and counts are kept in $(GLOWLIB_CACHE)/plan/.
plan: $(STAMP)
	$(PY) -m glowlib plan --profile $(PROFILE) $(if $(CHECK_DATA),--check-data) $(if $(WORKERS),--workers $(WORKERS))

# every model the notebooks use, trained once into $(GLOWLIB_CACHE) (a finished one is only looked up): one line
# per run with its estimate, and its progress (a line per evaluation when the output is not a terminal); with
# several GPUs one worker per GPU, each claiming runs through the cache's locks
models: $(STAMP)
	$(PY) -m glowlib models --profile $(PROFILE) $(if $(WORKERS),--workers $(WORKERS))

results: $(EXECUTED)

# Run notebook $(1) with papermill and extra arguments $(2) into $(RESULTS)/$(1)/, after checking every parameter in
# $(2). The run writes into a staging folder beside it, .$(1).staging ($$GLOWLIB_STAGE, which glowlib.results.Recorder
# writes into), while the notebook's out_dir, and so every path it records, names $(RESULTS)/$(1)/, which keeps the
# previous run, whole, until this one has succeeded. Then the staging folder, with the executed notebook, takes its
# place by two renames (in between the previous folder is .$(1).previous, which a run started after a kill there
# puts back first). A failed run removes its staging folder; a killed run's is removed by the next run, so neither
# leaves anything that blocks a rerun. Only these three names under $(RESULTS)/ are ever moved or removed.
# The kernel is notebooks/jupyter's python3: ipykernel's own, its log cut to CRITICAL.
# Its log held two lines a run: a warning that the local connection is TCP, and at random an ERROR
# "KeyboardInterrupt caught in kernel": papermill asks for kernel_info after the last cell and shuts the kernel
# down at once, and jupyter_client's shutdown interrupts it (SIGINT) while it may still be in that request's
# handler. Errors in the notebook itself still fail the run with their traceback.
define execute
	@$(if $(strip $(2)),$(PY) -m glowlib check-params --profile $(PROFILE) $(1) $(2))
	@s=$$(date +%s) && final=$(RESULTS)/$(1) && stage=$(abspath $(RESULTS))/.$(1).staging && previous=$(RESULTS)/.$(1).previous && \
	if [ ! -e $$final ] && [ -d $$previous ]; then mv $$previous $$final; fi && \
	for d in $(RESULTS) $$final; do \
	  if [ -e $$d ] && [ ! -w $$d ]; then \
	    echo "error: $$d is not writable, so its results could not be replaced; make it writable (chmod u+w $$d) and rerun (nothing was changed)" >&2; \
	    exit 1; \
	  fi; \
	done && \
	rm -rf $$stage $$previous && mkdir -p $$stage && \
	tmp=$$(mktemp -d) && export JUPYTER_PATH=$(CURDIR)/notebooks/jupyter && \
	$(PY) -m jupytext --quiet --to ipynb --set-kernel python3 -o $$tmp/$(1).ipynb notebooks/$(1).py && \
	echo "running notebooks/$(1).py (PROFILE=$(PROFILE) $(strip $(2))) -> $$final/" && \
	if GLOWLIB_STAGE=$$stage $(PY) -m papermill --no-progress-bar --log-level WARNING --cwd . -p profile $(PROFILE) \
	     -p out_dir $$final $(2) $$tmp/$(1).ipynb $$tmp/$(1).out.ipynb; then \
	  if [ ! -f $$stage/provenance.json ]; then \
	    rm -rf $$stage; \
	    echo "error: notebook $(1) ran but wrote no provenance.json (its Recorder's finish() was not called); the previous results in $$final/ are kept" >&2; \
	    $(call stage_failed,notebook $(1)); \
	  fi; \
	  cp $$tmp/$(1).out.ipynb $$stage/$(1).ipynb && \
	  { [ ! -e $$final ] || mv $$final $$previous; } && mv $$stage $$final && rm -rf $$previous $$tmp && \
	  { $(call stage_done,notebook $(1)$(call position,$(1),$(NOTEBOOKS))); }; \
	else \
	  rm -rf $$stage; \
	  echo "error: notebook $(1) failed (the exception is above); the previous results in $$final/ are kept, and the partly executed notebook is $$tmp/$(1).out.ipynb" >&2; \
	  $(call stage_failed,notebook $(1)); \
	fi
endef

define notebook_rule
$(RESULTS)/$(1)/$(1).ipynb: notebooks/$(1).py $(LIB) | $(STAMP)
	$$(call execute,$(1),)
endef
$(foreach nb,$(NOTEBOOKS),$(eval $(call notebook_rule,$(nb))))
# the Cost page reads the benchmark records
$(RESULTS)/cost/cost.ipynb: $(wildcard results/bench/*.json)
# the what-makes-Glow-work page compares the ablation's recorded runs at equal training time
$(RESULTS)/what_works/what_works.ipynb: $(RESULTS)/ablation/ablation.ipynb
# the claims page computes its verdicts from the other notebooks' results
$(RESULTS)/claims/claims.ipynb: $(filter-out $(RESULTS)/claims/claims.ipynb,$(EXECUTED))

notebook: $(STAMP)
	$(call execute,$(NB),$(PARAMS))

# The book only reads results/$(PROFILE): it copies the executed notebooks into book/generated/, writes the intro
# page from their provenance and _toc.yml from the registry; Jupyter Book executes nothing (execute_notebooks: off).
book: $(STAMP)
	$(PY) book/build.py --profile $(PROFILE)
	$(VENV)/bin/jupyter-book build book --all --quiet
	@echo "book of results/$(PROFILE): book/_build/html/index.html"
