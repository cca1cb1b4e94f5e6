"""Every router of the web app, registered from one flat list (``ROUTERS``): the JSON API under
``api/``, the HTML pages under ``pages/``."""

from __future__ import annotations

from app.routes.api import clips as api_clips
from app.routes.api import compare as api_compare
from app.routes.api import datasets as api_datasets
from app.routes.api import exchange as api_exchange
from app.routes.api import health as api_health
from app.routes.api import jobs as api_jobs
from app.routes.api import lora as api_lora
from app.routes.api import preprocess as api_preprocess
from app.routes.api import presets as api_presets
from app.routes.api import runs as api_runs
from app.routes.api import speech as api_speech
from app.routes.pages import auth, clips, compare, datasets, jobs, lora_check, media, runs, training

# api_exchange before api_datasets: POST /api/v1/datasets/import must not be read as a dataset id.
ROUTERS = [
    api_health.router,
    api_exchange.router,
    api_datasets.router,
    api_clips.router,
    api_presets.router,
    api_preprocess.router,
    api_runs.router,
    api_jobs.router,
    api_compare.router,
    api_lora.router,
    api_speech.router,
    auth.router,
    datasets.router,
    clips.router,
    media.router,
    training.router,
    runs.router,
    jobs.router,
    compare.router,
    lora_check.router,
]
