"""Models: the presets of ``core.presets`` made real. Loading pipelines from a diffusers directory
or the official single files (``loading``, ``single_file``, ``single_file_configs``), the one entry
point every engine step uses (``pipelines``), and the toy models built from a fixed seed
(``toy``, ``toy_store``). May import ``core`` and ``worker.engine.lora.names``."""
