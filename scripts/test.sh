#!/usr/bin/env bash
# Every test: the linter (ruff), unit, integration (real Postgres, Redis, Celery worker) and browser
# (chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
scripts/ensure_services.sh
echo "ruff: checking the code base"
.venv/bin/python -m ruff check .
exec .venv/bin/python -m pytest "$@"
