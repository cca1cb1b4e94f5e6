"""Domain logic used by the web routes and by the worker's job handlers; no HTTP, no templates.

Each module owns one part of the studio: datasets, clips and uploads, captions, findings,
preprocessing and training runs, jobs (queue, actions, sweeper), compare, votes, exports and
LoRA checks. Errors are raised as ``core.errors`` types; the web renders them. May import
``core`` only (and the libraries ``core`` allows).
"""
