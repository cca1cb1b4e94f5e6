"""Data: preprocessing a dataset into the official ``.precomputed`` layout and reading it back.
Video frames (``video``), audio and its log-mel (``audio``), caption features (``text``,
``prompt_cache``), latents (``latents``), fingerprinted entries (``cache``), the whole
preprocessing (``preprocess``) and training batches (``dataset``). May import ``core`` and
``worker.engine.model``."""
