# Every target installs what it needs into .venv/ on first use (Python 3.11).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
export DAGSTER_HOME ?= $(CURDIR)/data/dagster

.PHONY: install run test dev api lint bench clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (set PYTHON=/path/to/python3.11)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/enrichment-pipeline enrich --file enrichment_pipeline/data/sample_domains.txt
	$(BIN)/enrichment-pipeline scores --top 100

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

dev: $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster dev -w workspace.yaml

# The read API on API_HOST:API_PORT (default 127.0.0.1:8000), over data/serving.duckdb (after
# `make run`) or the PostgreSQL WAREHOUSE_URL. Keys: `.venv/bin/enrichment-pipeline api-keys create`.
api: $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/python -m enrichment_pipeline.api

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_enrich.py

clean:
	rm -rf data/ .pytest_cache .ruff_cache

# dbt: the manifest the Dagster code location loads (dbt_models/target/, never committed).
# Re-parsed only when a file of the dbt project changed; `run`, `test` and `dev` need it.
DBT_DIR := dbt_models
DBT_MANIFEST := $(DBT_DIR)/target/manifest.json
DBT_SOURCES := $(shell find $(DBT_DIR)/models $(DBT_DIR)/macros -type f 2>/dev/null) $(DBT_DIR)/dbt_project.yml $(DBT_DIR)/profiles.yml
# `dagster dev` re-parses the project on load (prepare_if_dev) with the `dbt` found on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: dbt-manifest
dbt-manifest: $(DBT_MANIFEST)

$(DBT_MANIFEST): $(STAMP) $(DBT_SOURCES)
	$(BIN)/dbt parse --quiet --project-dir $(DBT_DIR) --profiles-dir $(DBT_DIR)
	@touch $@

run test dev api: $(DBT_MANIFEST)
