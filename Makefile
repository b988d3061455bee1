# Developer tasks for ComfyUI-UniAVGen.
#
# The .venv built here is for development and tests only. torch/torchaudio are
# pinned in this file and nowhere else: inside ComfyUI the pack uses whatever
# torch ComfyUI already has.
#
# The golden vectors ship as test data in tests/data/golden (UNIAVGEN_GOLDEN=/path/to/golden points
# elsewhere). The release's vocab.txt is not shipped: the tests of its exact ids run when
# UNIAVGEN_VOCAB names it (or ../shared/reference/vocab.txt exists) and skip with the reason otherwise.

VENV        ?= .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.setup-stamp
TORCH_PINS  := torch==2.11.0 torchaudio==2.11.0
DEV_DEPS    := safetensors numpy transformers pypinyin jieba pytest hypothesis==6.140.2 ruff==0.14.6
# the demo, the synthetic training data and the small model's training
DEMO_DEPS   := espeakng-loader==0.2.4 av matplotlib tqdm
PYTEST_ARGS ?=

.PHONY: setup test golden demo train-demo evaluate-mini clean distclean host-test workflows gpu-check gpu-bundle \
	gpu-rehearsal smoothness-mini sampling-table-mini demo-long long-talks-mini

setup: $(STAMP)

# Create the venv only if it is missing; an existing one is reused as is.
$(PY):
	python3 -m venv $(VENV)

# Reinstall only when the dependency declarations change.
$(STAMP): Makefile pyproject.toml requirements.txt | $(PY)
	$(PY) -m pip install $(TORCH_PINS)
	$(PY) -m pip install $(DEV_DEPS) $(DEMO_DEPS)
	touch $@

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q -rs tests $(PYTEST_ARGS)

# The GPU check (docs/DEVELOPMENT.md): the CUDA tests and the official-shape benchmark in about 5
# minutes. gpu-bundle prepares what one call on the GPU machine carries (build/gpu-bundle: wheels of
# what the machine lacks, vocab.txt); gpu-rehearsal runs the same call on the CPU in a fresh Python 3.12
# stand-in of that machine (PY312=/path/to/python3.12 when it is not on PATH) and checks that it gets
# as far as "no CUDA GPU" with every CUDA test collected. gpu-check runs the call on this machine.
GPU_PY ?= $(if $(wildcard $(PY)),$(PY),python3)

gpu-check:
	PYTHON=$(GPU_PY) bash benchmarks/gpu_run.sh

gpu-bundle: setup
	$(PY) benchmarks/gpu_bundle.py

gpu-rehearsal: gpu-bundle
	$(PY) benchmarks/gpu_rehearsal.py

GOLDEN      ?= tests/data/golden/public
VOCAB       ?= ../shared/reference/vocab.txt

golden: setup
	$(PY) -m uniavgen_core.cli.golden $(GOLDEN) --out build/golden $(if $(wildcard $(VOCAB)),--vocab $(VOCAB))

# The main job on the shipped small model: three clips and a contact sheet in build/demo.
# make demo TEXT="..." speaks another transcript (letters, spaces and ',.?!'-; capitals are lower-cased, numbers as words).
ifeq ($(origin TEXT),undefined)
DEMO_TEXT :=
else
DEMO_TEXT := --text "$$TEXT"
endif

demo: setup
	$(PY) -m uniavgen_core.demo --out build/demo $(DEMO_TEXT)

# Long talks on the shipped small model: build/demo/long_a2v.mp4 (a 46 s synthetic recording drives the face),
# long_avg.mp4 (a 32 s transcript) and long_contact_sheet.png; about 2 minutes on 2 cores.
# Any recording: python -m uniavgen_core.demo --task a2v --audio FILE --out DIR (--help for the rest).
demo-long: setup
	$(PY) -m uniavgen_core.demo --task long --out build/demo

# Reproduce the small model from scratch (synthetic data -> codec fit -> training -> export, then its lip
# sync): about 3.5 hours on 2 CPU cores (docs/mini_model.md says how it was measured). An interrupted run
# resumes where it stopped, bit for bit.
MINI        := build/mini/v2d
MINI_MODEL  := $(MINI)/export/UniAVGen-mini.safetensors
MINI_CODEC  := $(MINI)/export/UniAVGen-mini-video-codec.safetensors
# The shipped small model and its codec, or MODEL= and CODEC= given on the command line.
SHIPPED_MINI = $(or $(MODEL),models_builtin/uniavgen/UniAVGen-mini.safetensors) \
	$(or $(CODEC),models_builtin/uniavgen_codecs/UniAVGen-mini-video-codec.safetensors)

train-demo: setup
	$(PY) -m uniavgen_core.cli.train configs/uniavgen_mini_v2d.toml $(if $(wildcard $(MINI)/last.safetensors),--resume)
	$(PY) -m uniavgen_core.cli.evaluate $(MINI_MODEL) $(MINI_CODEC) --no-ablations --out build/mini/results.json

# The full evaluation of a small model with ablations (the numbers in docs/mini_model.md).
evaluate-mini: setup
	$(PY) -m uniavgen_core.cli.evaluate $(SHIPPED_MINI) \
		--out build/mini/evaluation.json

clean:
	rm -rf build .pytest_cache
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

# Real-host test (a session's machine, not CI): a real ComfyUI from a fetched snapshot runs every
# API workflow end to end on tiny assets. MIRROR: the bare git repo `fetch` gave for Comfy-Org/ComfyUI.
COMFY       ?= /tmp/comfyui-host
MIRROR      ?= /work/.mirror/Comfy-Org+ComfyUI/repo
HOST_PORT   ?= 8199

# It only ever writes into a ComfyUI it created (marked with .uniavgen-host-test), never a user's.
host-test: setup
	@if [ -e $(COMFY) ] && [ ! -e $(COMFY)/.uniavgen-host-test ]; then \
		echo "$(COMFY) exists and was not made by make host-test: give a new folder, e.g. COMFY=/tmp/uniavgen-host"; \
		exit 1; fi
	mkdir -p $(COMFY) && touch $(COMFY)/.uniavgen-host-test
	bash ../shared/tools/comfyui-host.sh setup $(MIRROR) $(COMFY)
	bash ../shared/tools/comfyui-host.sh link $(COMFY) .
	$(COMFY)/.venv/bin/python tests/host/run_host.py --comfy $(COMFY) --repo . --golden $(GOLDEN) \
		--vocab $(VOCAB) --port $(HOST_PORT) --out build/host-test

# The small model as an instrument for sampling (docs/mini_model.md): roughness of its guided velocity
# in the timestep and the gain of a second-order solver over Euler, on held-out clips.
# Long talks measured at their joins (continuation at several overlaps, the last-picture chain, one long
# generation) on 8 held-out faces and voices, 24 s each (docs/long_talks.md).
long-talks-mini: setup
	$(PY) -m uniavgen_core.cli.long_talks $(SHIPPED_MINI) \
		--out build/mini/long_talks.json

smoothness-mini: setup
	$(PY) -m uniavgen_core.cli.smoothness $(SHIPPED_MINI) \
		--out build/mini/smoothness.json

# Quality against model evaluations of every solver x steps x schedule x step-cache setting and the presets
# (docs/sampling.md): distance to the converged solution, lip sync and wall time on held-out clips (about 1 h 10 min
# on 2 cores; RESUME=1 continues an interrupted run), then the presets' wall time against the release's in turns.
sampling-table-mini: setup
	$(PY) -m uniavgen_core.cli.sampling_table $(SHIPPED_MINI) \
		--clips $(or $(CLIPS),16) --out build/mini/sampling-table.json --plot build/mini/sampling-table.png \
		$(if $(RESUME),--resume)
	$(PY) benchmarks/preset_timing.py $(SHIPPED_MINI) --clips $(or $(CLIPS),16)
