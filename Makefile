# Every target bootstraps .venv first; re-running is cheap (a stamp tracks pyproject.toml).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Some environments set PYTHONDONTWRITEBYTECODE=1: then the workflow sandbox recompiles our
# workflow modules for every new workflow, and pytest re-parses every test module each run.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: venv demo dev worker test docs lint typecheck check bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,dev-server,docs,gateway,codex,claude-code]'
	touch $(STAMP)

demo: venv  ## run a multi-turn session end to end on the embedded server
	$(BIN)/asm demo

dev: venv  ## embedded Temporal dev server + worker, until Ctrl-C
	$(BIN)/asm dev

worker: venv  ## a worker against ASM_TEMPORAL_ADDRESS
	$(BIN)/asm worker

test: venv  ## the whole suite: lint, types, then pytest against a real dev server
	$(BIN)/ruff check .
	$(BIN)/mypy -p agent_session_manager
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

docs: venv  ## the guides and API reference into site/; any warning fails the build
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: venv
	$(BIN)/python bench/event_store.py
	$(BIN)/python bench/runs.py

clean:
	rm -rf $(VENV) .asm .pytest_cache .mypy_cache .ruff_cache site
