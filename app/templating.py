"""Jinja2 templates shared by every page route."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

from app.security import csrf_token, is_signed_in, may_browse
from core.media.findings import format_seconds
from core.presets import is_toy_model
from core.recipe.modes import mode_choices

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"


def _vendored(pattern: str) -> str | None:
    """The static path of the vendored file matching ``pattern`` (scripts/vendor_htmx.sh writes them)."""
    return next((f"vendor/{p.name}" for p in sorted((STATIC_DIR / "vendor").glob(pattern))), None)


templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.globals["htmx_js"] = _vendored("htmx-[0-9]*.min.js")
templates.env.globals["htmx_sse_js"] = _vendored("htmx-ext-sse-*.min.js")  # the run page's live rows
# CSRF: forms carry <input type="hidden" name="csrf_token" value="{{ csrf_token(request) }}">;
# htmx and fetch send the header X-CSRF-Token (see app/security.py for the contract).
templates.env.globals["csrf_token"] = csrf_token
templates.env.globals["is_signed_in"] = is_signed_in
templates.env.globals["may_browse"] = may_browse  # the login page shows no nav to a signed-out visitor
templates.env.filters["seconds"] = format_seconds  # one way to write a clip's duration (card, page, findings)
templates.env.globals["is_toy_model"] = is_toy_model  # partials/toy_notice.html: say why toy media is noise
templates.env.globals["training_modes"] = mode_choices()  # the run form's mode choice, one sentence each
