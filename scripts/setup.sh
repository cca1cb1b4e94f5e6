#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: system packages (a C compiler for webrtcvad; the test
# tools), a virtualenv with the CPU build of torch first, then the project. Re-runs only what
# changed, and says what it is doing (the first run downloads about 1 GB).
#   scripts/setup.sh          runtime only
#   scripts/setup.sh --test   also what the tests need (chromium, espeak-ng, ffmpeg, test extras)
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

PY=${PYTHON:-python3}
missing=()
# webrtcvad (needed by Resemblyzer, the voice embeddings) is built from source: a C compiler and
# the Python headers.
command -v cc >/dev/null || missing+=(gcc libc6-dev)
[ -f "$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ] || missing+=(python3-dev)
if [ "$want_test" = 1 ]; then
  command -v chromium >/dev/null || missing+=(chromium)
  command -v espeak-ng >/dev/null || missing+=(espeak-ng)
  command -v ffmpeg >/dev/null || missing+=(ffmpeg)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=".venv/.avlora-installed-$want_test"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first: the pinned version resolves to the CPU build on these machines; on a GPU
  # machine pip takes the CUDA build of the same version from the index.
  .venv/bin/python -m pip install -q "torch==2.13.0"
  extras=""; [ "$want_test" = 1 ] && extras="[test]"
  .venv/bin/python -m pip install -q -e ".${extras}"
  touch "$stamp"
fi
