# Two set-up commands: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

EXTRACT_VENV := .venv-extract
EXTRACT_STAMP := $(EXTRACT_VENV)/.installed

.PHONY: demo test test-heavy web-deps venv extract-env web web-build clean

# The demo needs the core (jax, flax, optax, orbax, ...) and the ONNX export (the `onnx` extra and jax2onnx, without
# its dependencies: pyproject.toml says why); the tests add pytest and the PyTorch reference (the `dev` extra).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[onnx]'
	$(PY) -m pip install --quiet --no-deps 'jax2onnx==0.17.1'
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

venv: $(DEV_STAMP)

# Extraction has its own environment: mediapipe 0.10.21 (the last wheel that bundles the Holistic models)
# needs numpy < 2, the core runs on current JAX with numpy 2. It also holds torch + transformers for the
# SigLIP visual features. asl_jax is installed without its dependencies: the extraction code imports no JAX.
$(EXTRACT_STAMP): pyproject.toml
	@echo "creating $(EXTRACT_VENV): mediapipe, opencv, torch, transformers, pose-format (a few minutes; pip is quiet meanwhile)"
	test -x $(EXTRACT_VENV)/bin/python || $(PYTHON) -m venv $(EXTRACT_VENV)
	$(EXTRACT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(EXTRACT_VENV)/bin/python -m pip install --quiet 'mediapipe==0.10.21' opencv-python-headless absl-py \
	  ml-collections tqdm pytest 'torch==2.13.0' 'transformers>=4.51' safetensors huggingface_hub 'pose-format==0.15.0'
	$(EXTRACT_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(EXTRACT_STAMP)
	@echo "$(EXTRACT_VENV) is ready"

extract-env: $(EXTRACT_STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py --data_dir demo_data --workdir demo_run

# The browser page (web/): npm installs the pinned MediaPipe Holistic, onnxruntime-web and playwright-core from
# web/package-lock.json; the page is web/dist with the model exported to ONNX (the shipped WLASL100 model, or
# `make web WORKDIR=runs/x`), served on localhost.
WORKDIR ?= asl_jax/pretrained/wlasl100
PORT ?= 8000
WEB_STAMP := web/node_modules/.installed

$(WEB_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $(WEB_STAMP)

web-build: $(STAMP) $(WEB_STAMP)
	$(PY) scripts/export.py --workdir=$(WORKDIR) --format=onnx --out_dir=web/dist/model --overwrite
	node web/build.mjs

web: web-build
	@echo "serving the page on http://localhost:$(PORT)/ (Ctrl-C stops)"
	$(PY) -m http.server --directory web/dist --bind 127.0.0.1 $(PORT)

# The browser tests (tests/test_web.py) run where node, npm and Chromium are (.ci/run installs Chromium);
# without them they are skipped and say why. `make test` leaves out the tests marked heavy (slow end-to-end
# checks whose code lighter tests also reach: the page on a video or camera, the fusion learning checks, ...);
# `make test-heavy` runs them (docs/install.md).
web-deps:
	-@command -v npm >/dev/null && $(MAKE) --no-print-directory $(WEB_STAMP) || echo "note: web/ dependencies not installed; the browser tests will be skipped"

test: $(DEV_STAMP) $(EXTRACT_STAMP) web-deps
	$(PY) -m pytest -n 2 --dist loadfile -m "not heavy" tests
	$(EXTRACT_VENV)/bin/python -m pytest -p no:cacheprovider tests/test_extract.py

test-heavy: $(DEV_STAMP) $(EXTRACT_STAMP) web-deps
	$(PY) -m pytest -n 2 --dist loadfile -m heavy tests

clean:
	rm -rf demo_data demo_run web/dist
