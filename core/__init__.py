"""The shared layer: what the web (``app``) and the workers (``worker``) both import.

Pure Python: settings (``config``), the database (``db``, ``models``, ``migrate``), the job queue
(``queue``), the names every layer spells the same way (``names``), error types (``errors``: HTTP
rendering lives in ``app.errors``), files written atomically (``files``), the model presets table
and the weights on disk (``presets``, ``model_files``), the recipe's rules (``recipe/``), clip media
analysis without torch (``media/``) and the domain services both sides call (``services/``).
It may import the standard library, pydantic, SQLAlchemy, Celery, PyAV, numpy/scipy and
onnxruntime; never torch, diffusers, peft, FastAPI/Starlette, Jinja, argon2, ``app`` or ``worker``
(``tests/unit/test_boundaries.py`` proves it).
"""
