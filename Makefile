# One entry point for every routine job. `make test` is what CI runs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv proto docs test unit floors demo bench lint clean compose-check

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Regenerate the protobuf/gRPC code (with .pyi stubs) from proto/*.proto.
proto: $(STAMP)
	$(PY) proto/generate.py

# Regenerate docs/settings.md and config/config.yaml.example from edgeloop/core/settings.py.
docs: $(STAMP)
	$(PY) -m edgeloop.settings_doc --write

# ruff, then mypy (strict on the core and the domain services; see [tool.mypy] in pyproject.toml),
# then the layers (import-linter); both read the package laid out as installed (tools/import_root.py).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) .ci/typecheck.py
	$(PY) tools/import_root.py var/import-root
	cd var/import-root && $(abspath $(VENV))/bin/lint-imports

test: $(STAMP) lint
	$(PY) -m pytest

unit: $(STAMP) lint
	$(PY) -m pytest tests/unit

# A subset of the tests with every dependency at the lowest version pyproject.toml allows
# (docs/dependencies.md); builds its own cached venv, not .venv.
floors:
	bash .ci/floors

demo: $(STAMP)
	$(PY) -m edgeloop.demo

# Every benchmark: each runs its baseline in the same run and prints the ratio (--json: one line).
bench: $(STAMP)
	$(PY) bench/ingest.py --json
	$(PY) bench/sqlite_durability.py --json
	$(PY) bench/cache.py --json
	$(PY) bench/backtest.py --json
	$(PY) bench/ml.py --json
	$(PY) -m bench.discovery --json
	$(PY) -m bench.selection --json

# The production docker-compose.yml brought up and checked end to end (needs dockerd, run as
# root; images from deploy/compose.local.yml, cached). Not part of `make test`.
compose-check: $(STAMP)
	$(PY) deploy/compose_check.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache build dist
