"""The web process: FastAPI app (``main``), routers (``routes/pages`` for HTML, ``routes/api`` for
JSON), page view-models and live events (``views``), access control (``security``), Jinja set-up
(``templating``) and HTTP rendering of errors (``errors``). May import ``core``; never ``worker``,
torch, diffusers or peft (``tests/unit/test_boundaries.py`` proves it, lazy imports included).
"""
