"""The training step: rectified flow (``flow``), timestep samplers (``timesteps``), optimizer and
schedule (``optim``), and the speed and memory levers that leave results unchanged: regional
compile (``compiling``), the whole-step CUDA graph (``graphed``), activation checkpointing
(``checkpointing``), host-side levers (``levers``), int8 base (``quantize``) and the timing and
memory readings (``measure``). May import ``core``; not ``data`` or ``lora`` beyond adapters."""
