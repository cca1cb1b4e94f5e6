"""The workers: Celery app and its one task (``celery_app``, ``tasks``), the job lifecycle
(``jobs``: heartbeat, cancel, progress), one handler per job kind (``handlers/``), the LTX-2 engine
(``engine/``) and the speech layer (``speech/``). May import ``core``; never ``app`` (the web's
templates, password hashing and HTML errors stay out of the worker)."""
