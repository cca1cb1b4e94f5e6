"""Routers, one module per page family, plus the JSON API under ``app/routes/api``."""

from __future__ import annotations

from app.routes import auth, clips, datasets, health, media
from app.routes.api import clips as api_clips
from app.routes.api import datasets as api_datasets
from app.routes.api import exchange as api_exchange
from app.routes.api import jobs as api_jobs
from app.routes.api import preprocess as api_preprocess
from app.routes.api import presets as api_presets
from app.routes.api import runs as api_runs

# api_exchange first: POST /api/v1/datasets/import must not be read as a dataset id.
ROUTERS = [health.router, auth.router, api_exchange.router, api_datasets.router, api_clips.router,
           datasets.router, clips.router, media.router]
# Training (issue 4): presets, preprocessing, runs, the job list, resume and live events.
ROUTERS += [api_presets.router, api_preprocess.router, api_runs.router, api_jobs.router]
# Training pages (issue 4): preprocessing, the run form, run pages and the jobs list.
from app.routes import jobs_pages, runs_pages, training  # noqa: E402

ROUTERS += [training.router, runs_pages.router, jobs_pages.router]

# Comparing checkpoints (issue 5): compare pages, blind votes, key reports, LoRA checks, exports.
from app.routes import compare as compare_pages  # noqa: E402
from app.routes import lora_check as lora_check_pages  # noqa: E402
from app.routes.api import compare as api_compare  # noqa: E402
from app.routes.api import lora as api_lora  # noqa: E402

ROUTERS += [api_compare.router, api_lora.router, compare_pages.router, lora_check_pages.router]
