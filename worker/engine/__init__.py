"""The LTX-2 engine (torch, diffusers, peft), in rooms by concern:

- ``model/``: presets made real: loading weights from disk, single-file conversion, toy models.
- ``data/``: preprocessing into the ``.precomputed`` cache: video, audio, text, latents, dataset.
- ``step/``: one training step and what makes it fast: flow, timesteps, optimizer, compile, CUDA
  graph, checkpointing, quantisation, measurements.
- ``lora/``: adapters, LoRA files and module names, checkpoints, load verification.
- ``bench/``: benchmarks of training and preprocessing.
- ``train``, ``validate``, ``sampling``, ``v2a`` (video-to-audio samples), ``progress``: the run itself,
  composed from the rooms.
- ``commands/``: the ``avlora`` sub-commands (torch imported only inside their handlers).
May import ``core`` (settings, recipe, presets); never ``app``.
"""
