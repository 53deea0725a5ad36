# Every target installs what it needs into .venv/ on first use (Python 3.11).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
LOCKS := requirements.lock requirements-dev.lock
STAMP := $(VENV)/.installed-$(shell cat $(LOCKS) pyproject.toml | cksum | cut -d' ' -f1)
export DAGSTER_HOME ?= $(CURDIR)/data/dagster
# `make dev DAGSTER_PORT=3119` for a second UI next to another one.
DAGSTER_PORT ?= 3000

.PHONY: install run test dev api lint bench clean lock

install: $(STAMP)

$(STAMP): $(LOCKS) pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (set PYTHON=/path/to/python3.11)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	# Every file checked against the hashes of the locks: a fresh install is the tested one.
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	# An editable install leaves the project's own modules uncompiled; where Python is told not
	# to write bytecode (PYTHONDONTWRITEBYTECODE), every process would compile them again.
	$(BIN)/python -m compileall -q enrichment_pipeline
	rm -f $(VENV)/.installed-*
	touch $@

# The project's instance settings (enrichment_pipeline/instance/dagster.yaml) into DAGSTER_HOME,
# for the CLI, the webserver, the daemon, the code server and every run worker alike.
.PHONY: instance
instance: $(STAMP)
	@$(BIN)/python -m enrichment_pipeline.instance

# One summary and the top of the leaderboard; dbt's log is in data/logs/dbt.log (`enrich --verbose` prints it).
run: $(STAMP) instance
	@$(BIN)/enrichment-pipeline enrich --file enrichment_pipeline/data/sample_domains.txt
	@$(BIN)/enrichment-pipeline scores --top 10

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

dev: $(STAMP) instance
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(DAGSTER_PORT)

# The read API on API_HOST:API_PORT (default 127.0.0.1:8000), over data/serving.duckdb (after
# `make run`) or the PostgreSQL WAREHOUSE_URL. Keys: `.venv/bin/enrichment-pipeline api-keys create`.
api: $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/python -m enrichment_pipeline.api

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_enrich.py

clean:
	rm -rf data/ .pytest_cache .ruff_cache

# Regenerate the hashed locks after a dependency changed in pyproject.toml (or a merge added one):
#   make lock                 keep every current pin that still fits, add or drop what changed
#   make lock UPGRADE=1       move every pin to the newest version the ranges allow
# requirements.lock is the runtime set (what a deployment installs); requirements-dev.lock adds
# only the test and lint tools, pinned against it. The resolver lives in .venv-lock/ alone.
LOCK_VENV := .venv-lock
UV := $(LOCK_VENV)/bin/uv
LOCK_FLAGS := --quiet --python-version 3.11 --generate-hashes $(if $(UPGRADE),--upgrade)

$(UV): requirements-resolver.lock
	test -x $(LOCK_VENV)/bin/python || $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --require-hashes -r requirements-resolver.lock
	@touch $@

lock: $(UV)
	$(UV) pip compile pyproject.toml $(LOCK_FLAGS) --custom-compile-command "make lock" -o requirements.lock
	$(UV) pip compile pyproject.toml --extra dev -c requirements.lock $(LOCK_FLAGS) \
		--custom-compile-command "make lock" \
		$$(sed -nE 's/^([A-Za-z0-9._-]+)==.*/--no-emit-package \1/p' requirements.lock) \
		-o requirements-dev.lock

# dbt: the manifest the Dagster code location loads (dbt_models/target/, never committed).
# Re-parsed only when a file of the dbt project changed; `run`, `test` and `dev` need it.
DBT_DIR := dbt_models
DBT_MANIFEST := $(DBT_DIR)/target/manifest.json
DBT_SOURCES := $(shell find $(DBT_DIR)/models $(DBT_DIR)/macros -type f 2>/dev/null) $(DBT_DIR)/dbt_project.yml $(DBT_DIR)/profiles.yml
# `dagster dev` re-parses the project on load (prepare_if_dev) with the `dbt` found on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: dbt-manifest
dbt-manifest: $(DBT_MANIFEST)

# Parsed with the profile `make run` builds with (target and absolute DuckDB path, as
# lib/dbt_env.py sets them), so even the first build after a parse reuses its partial-parse state.
$(DBT_MANIFEST): $(STAMP) $(DBT_SOURCES)
	DBT_TARGET=duckdb DBT_DUCKDB_PATH=$(CURDIR)/data/sandbox.duckdb \
		$(BIN)/dbt parse --quiet --project-dir $(DBT_DIR) --profiles-dir $(DBT_DIR)
	@touch $@

run test dev api: $(DBT_MANIFEST)
