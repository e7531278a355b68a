#!/usr/bin/env bash
# Sets everything up (system packages, venv, install) and runs the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh --test
exec .venv/bin/python -m pytest tests "$@"
