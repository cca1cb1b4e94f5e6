#!/usr/bin/env bash
# Every test: unit, integration (real Postgres, Redis, Celery worker) and browser (chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
scripts/ensure_services.sh
exec .venv/bin/python -m pytest "$@"
