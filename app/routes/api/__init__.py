"""The JSON API v1 (``/api/v1/...``), one module per resource; a stable contract for scripts
(DESIGN.md). Thin: parse, call ``core.services``, return JSON; errors as ``core.errors`` types."""
