# Every target sets up its own environment from the lock file: a fresh machine needs only python3 (3.11+).
#   make demo    set up, start a local Prefect server, import 1,000 companies from a CSV, run generate_embeddings
#   make test    set up, lint, type-check and run the whole test suite (real Prefect server, SQLite, PostgreSQL)
#   make bench   set up and run the benchmarks (writes bench/results/latest.json)
#   make bench-scale   the million-company scale and export benchmarks (long; merge their keys into latest.json)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := $(CURDIR)/.tools
UV := $(TOOLS)/bin/uv
VENV := $(CURDIR)/.venv
RUN := $(VENV)/bin/python

export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_LINK_MODE := copy
# Compile bytecode at install: this machine sets PYTHONDONTWRITEBYTECODE, and without .pyc files every Prefect
# process (server, CLI, worker, flow run) recompiles the library on start (~1.7 s each).
export UV_COMPILE_BYTECODE := 1
export HF_HUB_OFFLINE := 1
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PYTHONPATH := $(CURDIR)
# A bulk action's story is told by its flow run (progress, summary, warnings); a line per batch for every
# "Finished in state Completed()" is thousands of lines per action, each shipped to the server.  Batches'
# warnings and errors still appear.  (Prefect's logging.yml override for the prefect.task_runs logger.)
export PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL ?= WARNING
# Everything the demo and a local server keep stays inside the checkout (override to share a server).
export BULKAI_HOME ?= $(CURDIR)/.data
export PREFECT_HOME ?= $(CURDIR)/.data/prefect
export PREFECT_RESULTS_LOCAL_STORAGE_PATH ?= $(CURDIR)/.data/results
export PREFECT_API_URL ?= http://127.0.0.1:4200/api
# Where workers find the code (prefect.yaml's pull step).
export BULKAI_REPO ?= $(CURDIR)
WORK_POOL := bulkai-process
PREFECT := $(VENV)/bin/prefect

.PHONY: help setup demo test lint typecheck pytest bench bench-scale server server-stop blocks limits sandbox deploy worker serve clean

help:
	@sed -n '1,6p' Makefile

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: uv.lock pyproject.toml Makefile | $(UV)
	$(UV) sync --frozen
	@touch $@

# Prefect creates its home without parents and warns on a fresh checkout otherwise.
setup: $(VENV)/.synced
	@mkdir -p "$(PREFECT_HOME)"

demo: setup
	$(RUN) -m deployments.demo

test: setup lint typecheck pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy core blocks tasks flows deployments providers sandbox

# The tests need PostgreSQL on 127.0.0.1:5432: scripts/ensure-postgres starts the local cluster when it is down.
pytest: setup
	scripts/ensure-postgres
	env -u PREFECT_API_URL $(VENV)/bin/pytest

bench: setup
	env -u PREFECT_API_URL $(RUN) -m bench

# Not part of `make bench`: 100,000 and 1,000,000 companies on SQLite and 100,000 on PostgreSQL, and the export of
# a million scored companies, take a while
# (BENCH_SCALE_SIZES=10000,20000 for a quick run; BENCH_SCALE_POSTGRES_1M=1 adds a million on PostgreSQL).
bench-scale: setup
	scripts/ensure-postgres
	env -u PREFECT_API_URL $(RUN) -m bench scale export

server: setup
	$(RUN) -m deployments.local_server start

server-stop: setup
	$(RUN) -m deployments.local_server stop

blocks: setup
	$(RUN) -m deployments.register_blocks

limits: setup
	$(RUN) -m deployments.provision_limits

# Deploy every deployment of prefect.yaml to the server at PREFECT_API_URL (work pool and limits first), then the
# alert automations and their notification block (BULKAI_ALERT_WEBHOOK_URL, else the sandbox's /alerts receiver).
deploy: setup blocks limits
	$(PREFECT) work-pool inspect $(WORK_POOL) >/dev/null 2>&1 || $(PREFECT) work-pool create $(WORK_POOL) --type process
	$(RUN) -m deployments.work_queues --pool $(WORK_POOL)
	$(PREFECT) --no-prompt deploy --all
	$(RUN) -m deployments.automations

# A process worker on the pool; start as many as you like, on as many machines as share the server.
worker: setup
	$(PREFECT) worker start --pool $(WORK_POOL)

# Every deployment served from this one process, schedules included, no work pool or worker needed.
serve: setup
	$(RUN) -m deployments.serve

sandbox: setup
	$(RUN) -m sandbox --host 127.0.0.1 --port 8765

clean:
	rm -rf .data .mypy_cache .ruff_cache .pytest_cache
