"""Routers, one module per page family, plus the JSON API under ``app/routes/api``."""

from __future__ import annotations

from app.routes import auth, clips, datasets, health, media
from app.routes.api import clips as api_clips
from app.routes.api import datasets as api_datasets
from app.routes.api import exchange as api_exchange

# api_exchange first: POST /api/v1/datasets/import must not be read as a dataset id.
ROUTERS = [health.router, auth.router, api_exchange.router, api_datasets.router, api_clips.router,
           datasets.router, clips.router, media.router]
