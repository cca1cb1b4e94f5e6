"""LoRA: adapters on the transformer through PEFT (``adapters``), LoRA files in the official and
diffusers layouts (``files``, ``names``), run checkpoints and resume state (``checkpoint``) and
the proof that a file loads (``verify``). May import ``core`` and ``worker.engine.model``."""
