#!/usr/bin/env bash
# Every test: the linter (ruff), unit, integration (real Postgres, Redis, Celery worker) and browser
# (chromium). With arguments, pytest runs just those ("scripts/test.sh tests/unit/test_db.py -x").
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
scripts/ensure_services.sh
echo "ruff: checking the code base"
.venv/bin/python -m ruff check .
if [ "$#" -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
# Unit tests in two processes (pytest-xdist): most are single-threaded Python (compiles, the web app,
# SQLite), so two run side by side on two cores in about 60% of the time. The integration and
# browser tests then run one at a time: they start their own workers, studios and chromium, and
# time how quickly a cancel or a restart happens.
status=0
.venv/bin/python -m pytest -n 2 tests --ignore=tests/integration --ignore=tests/e2e || status=$?
.venv/bin/python -m pytest tests/integration tests/e2e || status=$?
exit "$status"
