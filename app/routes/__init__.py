"""Routers, one module per page family, plus the JSON API under ``app/routes/api``."""

from __future__ import annotations

from app.routes import health

ROUTERS = [health.router]
