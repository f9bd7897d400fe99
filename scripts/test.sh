#!/usr/bin/env bash
# The project's one test command: lint, format check, strict typing, then the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check src tests benchmarks
ruff format --check src tests benchmarks
mypy
python -m pytest "$@"
