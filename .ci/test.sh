#!/usr/bin/env bash
# Sets everything up (system packages, venv, install), checks lint and types (ruff, mypy; settings
# in pyproject.toml) and runs the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh --test
# Lint and types first: a failure there fails the run, as a failing test does.
.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/python -m pytest tests "$@"
