"""Jinja2 templates shared by every page route."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.globals["htmx_js"] = next(
    (f"vendor/{p.name}" for p in sorted((STATIC_DIR / "vendor").glob("htmx-*.min.js"))), None
)
