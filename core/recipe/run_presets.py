"""The run-config presets: what each one changes from the defaults, and one sentence each.

Data only (read by :func:`core.recipe.run_config.preset_config`, which also checks every name).
"""

from __future__ import annotations

from typing import Any

from core.names import VARIANT_AUDIO_OFF, VARIANT_BASE, VARIANT_LORA, VARIANT_V2A_BASE, VARIANT_V2A_LORA
from core.recipe.modes import MODE_AUDIO_ONLY, MODE_REFERENCE_VOICE, MODE_VOICE, default_targets

PRESET_OVERRIDES: dict[str, dict[str, Any]] = {
    "sanity": {
        "optimization": {"steps": 500},
        "checkpoints": {"interval": 100},
        # two transformer passes per denoising step instead of three: a third faster verdict
        "validation": {"variants": [VARIANT_LORA, VARIANT_BASE, VARIANT_AUDIO_OFF], "modality_guidance_scale": 1.0},
    },
    "full": {
        "optimization": {"steps": 2000},
        "checkpoints": {"interval": 250},
        "validation": {"variants": [VARIANT_LORA, VARIANT_V2A_LORA, VARIANT_V2A_BASE]},
    },
    "voice": {
        "lora": {"target_modules": default_targets(MODE_VOICE)},
        "optimization": {"steps": 2000},
        "training": {"mode": MODE_VOICE, "first_frame_conditioning_p": 0.0},
        "checkpoints": {"interval": 250},
        "validation": {"variants": [VARIANT_LORA, VARIANT_V2A_LORA, VARIANT_V2A_BASE]},
    },
    "audio-only": {
        "lora": {"target_modules": default_targets(MODE_AUDIO_ONLY)},
        "optimization": {"steps": 2000, "learning_rate": 2e-4},
        "training": {"mode": MODE_AUDIO_ONLY, "first_frame_conditioning_p": 0.0},
        "checkpoints": {"interval": 250},
        "validation": {"variants": [VARIANT_LORA, VARIANT_BASE]},
    },
    "reference-voice": {"lora": {"target_modules": default_targets(MODE_REFERENCE_VOICE)},
                        "optimization": {"steps": 2000}, "training": {"mode": MODE_REFERENCE_VOICE},
                        "checkpoints": {"interval": 250}, "validation": {"variants": [VARIANT_LORA, VARIANT_BASE]}},
    "low-vram": {
        "quantization": "int8",
        "load_text_encoder_in_8bit": True,
        "lora": {"rank": 16, "alpha": 16},
        "optimization": {"steps": 2000, "optimizer": "adamw8bit"},
        "checkpoints": {"interval": 250},
    },
}
PRESET_DESCRIPTIONS = {
    "sanity": "500 steps, a checkpoint and samples every 100: proves the data and setup learn.",
    "full": "2,000 steps, a checkpoint and samples every 250 (with the v2a voice test): the official recipe.",
    "voice": "Voice-focused, once a normal LoRA works: the clip's video given clean, only the audio learnt "
    "(audio-side LoRA), sampled with the v2a voice test.",
    "audio-only": "Sound without picture: text-to-audio on the clips' audio (audio stream only, official t2a "
    "learning rate 2e-4).",
    "reference-voice": "A reusable voice: each clip learnt beside a reference clip of the same speaker "
    "(given clean, never scored), so the LoRA speaks like the reference it is given (audio-side LoRA).",
    "low-vram": "For about 32 GB: rank 16, 8-bit AdamW, int8 transformer, 8-bit text encoder.",
}
