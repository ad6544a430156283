#!/usr/bin/env bash
# The one way to run datacon's tests: set up, lint, type-check, then the whole pytest suite
# against real servers the tests start themselves. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy --strict (datacon, tests, benchmarks)"
.venv/bin/mypy --strict datacon tests benchmarks
echo "== pytest"
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "pytest collected no tests: failing the run" >&2
  exit 1
fi
exit "$status"
