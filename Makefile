# Two set-up commands: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

EXTRACT_VENV := .venv-extract
EXTRACT_STAMP := $(EXTRACT_VENV)/.installed

.PHONY: demo test venv extract-env clean

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
	test -x $(EXTRACT_VENV)/bin/python || $(PYTHON) -m venv $(EXTRACT_VENV)
	$(EXTRACT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(EXTRACT_VENV)/bin/python -m pip install --quiet 'mediapipe==0.10.21' opencv-python-headless absl-py \
	  ml-collections tqdm pytest 'torch==2.13.0' 'transformers>=4.51' safetensors huggingface_hub
	$(EXTRACT_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(EXTRACT_STAMP)

extract-env: $(EXTRACT_STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py --data_dir demo_data --workdir demo_run

test: $(DEV_STAMP) $(EXTRACT_STAMP)
	$(PY) -m pytest -n 2 --dist loadfile tests
	$(EXTRACT_VENV)/bin/python -m pytest -p no:cacheprovider tests/test_extract.py

clean:
	rm -rf demo_data demo_run
