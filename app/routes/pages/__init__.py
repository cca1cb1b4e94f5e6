"""HTML page routers, one module per page family (datasets, clips, training, runs, jobs, compare,
LoRA check, sign-in) plus the media files those pages show. Thin: parse, call ``core.services``
or ``app.views``, render a template."""
