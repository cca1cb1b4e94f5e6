# syntax=docker/dockerfile:1.7
# AV-LoRA Studio: one image for the web process, the CPU worker and the GPU worker.
#
#   docker build -t avlora-studio .                      # CUDA build of torch (GPU worker)
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu -t avlora-studio:cpu .
#
# PyAV, soundfile, onnxruntime and psycopg come as wheels with their native libraries, so the
# runtime stage needs no ffmpeg or espeak (those are test tools only).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtualenv with CUDA torch first, then the project's dependencies ---------------
FROM ${PYTHON_IMAGE} AS build
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu130
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# A C compiler for the one dependency without wheels (webrtcvad, which Resemblyzer needs).
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch from the PyTorch index first; the project's pin (torch==2.13.0) is then already met and
# pip does not replace it with the CPU build from PyPI.
RUN pip install --upgrade pip \
 && pip install --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"
WORKDIR /srv/avlora
# Dependencies in a layer of their own (rebuilt only when pyproject.toml changes).
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['gpu']))" \
        > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && python -c "import torch; assert torch.__version__.split('+')[0] == '${TORCH_VERSION}', torch.__version__"
COPY alembic.ini ./
COPY app ./app
COPY core ./core
COPY worker ./worker
COPY avlora ./avlora
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
# Editable install: templates/ and static/ are found beside app/, as in a checkout.
RUN pip install --no-deps -e .

# --- runtime ------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --create-home --uid 1000 avlora \
 && mkdir -p /data \
 && chown avlora:avlora /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /srv/avlora /srv/avlora
WORKDIR /srv/avlora
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    AVLORA_DATA_DIR=/data \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER avlora
EXPOSE 8000
# The web process; docker-compose.yml runs the workers from the same image with other commands.
# Listening beyond the container needs AVLORA_PASSWORD (avlora serve refuses otherwise).
CMD ["avlora", "serve", "--no-worker", "--host", "0.0.0.0", "--port", "8000"]
