#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: system packages (a C compiler for webrtcvad; the test
# tools), a virtualenv with the CPU build of torch first, then the project. Re-runs only what
# changed, and says what it is doing before each step that takes a while (the first run downloads
# about 1 GB and takes a few minutes). pip's chatter (progress bars, "already satisfied",
# warnings about the index) is quieted; its errors, and every failing command, still show.
#   scripts/setup.sh          runtime only
#   scripts/setup.sh --test   also what the tests need (chromium, espeak-ng, ffmpeg, test extras)
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

started=$SECONDS
step_started=$SECONDS
step() {  # announce a step (it may take a while); the next one reports how long this one took
  finish_step
  step_started=$SECONDS
  printf '==> %s\n' "$*"
}
finish_step() {
  local took=$((SECONDS - step_started))
  [ "$took" -ge 5 ] && printf '    (%d s)\n' "$took"
  return 0
}
trap 'status=$?; [ $status -ne 0 ] && printf "set-up failed (exit %d): see the error above\n" "$status" >&2' EXIT
# pip quiet to errors only (-qq), no progress bar, no version check, no questions.
PIP_QUIET=(-qq --progress-bar off --disable-pip-version-check --no-input --root-user-action=ignore)

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
  step "installing system packages with apt-get: ${missing[*]} (a minute or two)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "==> system packages: already there"
fi

if [ ! -x .venv/bin/python ]; then
  step "creating the virtualenv in .venv (with $("$PY" --version 2>&1))"
  "$PY" -m venv .venv
fi
stamp=".venv/.avlora-installed-$want_test"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  step "updating pip"
  .venv/bin/python -m pip install "${PIP_QUIET[@]}" --upgrade pip
  # torch first: the pinned version resolves to the CPU build on these machines; on a GPU
  # machine pip takes the CUDA build of the same version from the index.
  step "installing torch 2.13.0 (large: several hundred MB; a few minutes the first time)"
  .venv/bin/python -m pip install "${PIP_QUIET[@]}" "torch==2.13.0"
  extras=""; [ "$want_test" = 1 ] && extras="[test]"
  step "installing the studio and its dependencies (diffusers, transformers, FastAPI, Celery${extras:+, test tools}; a few minutes the first time)"
  .venv/bin/python -m pip install "${PIP_QUIET[@]}" -e ".${extras}"
  touch "$stamp"
  finish_step
  echo "==> set-up done in $((SECONDS - started)) s: .venv/bin/avlora is ready"
else
  echo "==> Python packages: up to date (.venv; pyproject.toml unchanged since the last set-up)"
fi
