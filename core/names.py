"""Names the web, the recipe and the engine all spell the same way, declared once here.

Each is a ``Literal`` (for pydantic fields and type checks) and the tuple of its values (for
argparse choices, loops and messages), derived from it so the two never disagree; job kinds
and queues are ``StrEnum`` members (they compare and store as their plain strings).
``tests/unit/test_names.py`` checks that the schema, the command lines and the worker use these.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

# The model presets (core/presets.py holds their facts): the tiny random-weight toys, then the real models.
ModelPreset = Literal["toy", "toy-2.0", "toy-2.5", "ltx-2.3", "ltx-2", "ltx-2.5"]
MODEL_PRESETS: tuple[str, ...] = get_args(ModelPreset)

# What activation checkpointing recomputes (worker/engine/step/checkpointing.py).
CheckpointPolicy = Literal["full", "attention", "matmul", "none"]
CHECKPOINT_POLICIES: tuple[str, ...] = get_args(CheckpointPolicy)

# What a validation sample is taken with: the base model (LoRA off), the LoRA, and the LoRA with
# its audio-side modules switched off (video side only); then the video-to-audio test (v2a): a
# training clip's own video (clean, cached latents) and caption, the audio generated with the
# LoRA off or on (worker/engine/v2a.py); then, for reference_voice runs, a prompt with a reference
# clip's voice in context (worker/engine/reference_sampling.py): the dataset's reference (``ref-``)
# or a clip of another voice (``ref-other-``), LoRA on or off.
SampleVariant = Literal["base", "lora", "lora-audio-off", "v2a-base", "v2a-lora",
                        "ref-base", "ref-lora", "ref-other-base", "ref-other-lora"]
SAMPLE_VARIANTS: tuple[str, ...] = get_args(SampleVariant)
(VARIANT_BASE, VARIANT_LORA, VARIANT_AUDIO_OFF, VARIANT_V2A_BASE, VARIANT_V2A_LORA,
 VARIANT_REF_BASE, VARIANT_REF_LORA, VARIANT_REF_OTHER_BASE, VARIANT_REF_OTHER_LORA) = SAMPLE_VARIANTS
# The v2a variants: sampled per training clip (``Sample.source_clip_id``), not per prompt.
V2A_VARIANTS: tuple[str, ...] = (VARIANT_V2A_BASE, VARIANT_V2A_LORA)
# The reference variants: per prompt, with a reference clip in context (``Sample.source_clip_id``:
# the reference clip).
REFERENCE_VARIANTS: tuple[str, ...] = (VARIANT_REF_BASE, VARIANT_REF_LORA, VARIANT_REF_OTHER_BASE,
                                       VARIANT_REF_OTHER_LORA)
# Sampled with the LoRA off: the same at every step, so sampled once per run (at step 0).
LORA_OFF_VARIANTS: tuple[str, ...] = (VARIANT_BASE, VARIANT_V2A_BASE, VARIANT_REF_BASE, VARIANT_REF_OTHER_BASE)


class JobKind(StrEnum):
    """What a job does; ``worker/handlers`` maps each kind to its handler."""

    probe_clip = "probe_clip"
    preprocess = "preprocess"
    train = "train"
    key_report = "key_report"
    sample_metrics = "sample_metrics"
    strength_samples = "strength_samples"
    transcribe = "transcribe"  # the speech layer (worker/speech/)
    split_plan = "split_plan"
    split_clip = "split_clip"


JOB_KINDS: tuple[str, ...] = tuple(kind.value for kind in JobKind)


class Queue(StrEnum):
    """The broker queues a job is sent to: light work on ``cpu``, the model on ``gpu``."""

    cpu = "cpu"
    gpu = "gpu"


QUEUES: tuple[str, ...] = tuple(queue.value for queue in Queue)

# The reference_voice mode's reference/target pairs, stored in the ``.precomputed`` folder
# (core/recipe/reference_pairs.py decides them; worker/engine/data/reference.py writes them).
REFERENCE_PAIRS_NAME = "reference_pairs.json"
