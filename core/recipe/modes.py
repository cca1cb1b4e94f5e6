"""Training modes: what a run denoises, scores and may put a LoRA on (pure Python, no torch).

The recipe's last step: once a normal audio-video LoRA works, make the training voice-focused.
One place holds each mode's rules; the run form, the linter (:mod:`core.recipe.lint_modes`) and
the engine (``worker.engine.step.modes``) all read them here.

- ``audio_video`` (default): both streams are noised and denoised together, both losses count.
  Advanced: ``video_frozen`` (no LoRA on the video side), ``audio_loss_weight``,
  ``independent_audio_timesteps``.
- ``voice`` (video-to-audio): the clip's video latents go in clean as conditioning (timestep 0
  on every video token, as the official flexible strategy's ``is_generated: false`` modality),
  only the audio is noised and scored. The LoRA may reach the audio side only (``audio_attn1``,
  ``audio_attn2``, ``audio_ff`` and ``video_to_audio_attn``, the cross-attention through which
  the audio reads the picture), so it cannot drift the picture.
- ``audio_only`` (text-to-audio): the audio stream alone, without the cross-modal attentions
  (the official ``LTXModelType.AudioOnly`` runs the audio blocks with no video stream; diffusers'
  transformer always takes a video input, so the engine passes a one-token stand-in and
  ``isolate_modalities=True``, which skips both cross-modal attentions: the audio then computes
  exactly what the audio-only model computes). The LoRA may reach ``audio_attn1``,
  ``audio_attn2`` and ``audio_ff``.
- ``reference_voice`` (a reusable voice, ID-LoRA style): each clip (the target) is noised and
  scored as in ``audio_video``; the audio latents of another clip of the same speaker (the
  reference, :mod:`core.recipe.reference_pairs`) go in front of the target's audio tokens, clean
  (timestep 0), at positions before the target's start, and are never scored
  (``worker.engine.step.reference``). The LoRA may reach the audio side as in ``voice``: it
  learns to speak in the voice of whatever reference it is given.

Targets that reach layers outside a mode's trainable families are narrowed: those layers get
no LoRA (the linter says so as a warning); targets that reach none of them are an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from core.recipe.architecture import AUDIO_FAMILIES, BLOCK_FAMILIES, module_family

TrainingMode = Literal["audio_video", "voice", "audio_only", "reference_voice"]
TRAINING_MODES: tuple[str, ...] = get_args(TrainingMode)
MODE_AUDIO_VIDEO, MODE_VOICE, MODE_AUDIO_ONLY, MODE_REFERENCE_VOICE = TRAINING_MODES
VideoRole = Literal["denoised", "clean", "absent"]
AUDIO_STREAM_FAMILIES = ("audio_attn1", "audio_attn2", "audio_ff")


@dataclass(frozen=True)
class ModeRules:
    """One mode: a sentence for the form, what the video stream is, what is scored, what may train."""

    name: str
    title: str
    sentence: str
    video_role: VideoRole  # denoised (noised, scored), clean (conditioning), absent (a stand-in, isolated)
    scores_video: bool
    families: tuple[str, ...]  # block families a LoRA may reach
    default_targets: tuple[str, ...]
    preset: str  # the run-config preset that starts a run in this mode

    @property
    def cross_modal(self) -> bool:
        """Whether the cross-modal attentions run (off when the video stream is a stand-in)."""
        return self.video_role != "absent"


_LINEARS = ("to_k", "to_q", "to_v", "to_out.0")
_FF = ("net.0.proj", "net.2")
MODES: dict[str, ModeRules] = {
    MODE_AUDIO_VIDEO: ModeRules(
        MODE_AUDIO_VIDEO, "Audio and video",
        "Picture and sound are noised and learnt together: the normal LoRA, the one to get working first.",
        "denoised", True, BLOCK_FAMILIES, _LINEARS, "full",
    ),
    MODE_VOICE: ModeRules(
        MODE_VOICE, "Voice (video-to-audio)",
        "The clip's real video is given clean and only its audio is learnt: how this person sounds given how "
        "they move, without touching the picture.",
        "clean", False, AUDIO_FAMILIES,
        tuple(f"{family}.{name}" for family in ("audio_attn1", "audio_attn2", "video_to_audio_attn") for name in _LINEARS)
        + tuple(f"audio_ff.{name}" for name in _FF),
        "voice",
    ),
    MODE_AUDIO_ONLY: ModeRules(
        MODE_AUDIO_ONLY, "Audio only (text-to-audio)",
        "Only the clips' sound is learnt, from the caption alone, with no picture at all: a voice or sound "
        "LoRA for audio without video.",
        "absent", False, AUDIO_STREAM_FAMILIES,
        tuple(f"{family}.{name}" for family in ("audio_attn1", "audio_attn2") for name in _LINEARS)
        + tuple(f"audio_ff.{name}" for name in _FF),
        "audio-only",
    ),
    MODE_REFERENCE_VOICE: ModeRules(
        MODE_REFERENCE_VOICE, "Reference voice (speak like a given clip)",
        "A short clip of the voice is given beside each training clip and the LoRA learns to speak like it: "
        "choose it for one reusable voice you give as a reference clip when you generate (ComfyUI's reference "
        "audio); needs at least two clips per speaker.",
        "denoised", True, AUDIO_FAMILIES,
        tuple(f"{family}.{name}" for family in ("audio_attn1", "audio_attn2", "video_to_audio_attn") for name in _LINEARS)
        + tuple(f"audio_ff.{name}" for name in _FF),
        "reference-voice",
    ),
}


def rules_of(mode: str) -> ModeRules:
    """The rules of ``mode`` (one of :data:`TRAINING_MODES`)."""
    if mode not in MODES:
        raise ValueError(f"unknown training mode '{mode}': choose one of {', '.join(TRAINING_MODES)}")
    return MODES[mode]


def trainable_families(training) -> tuple[str, ...]:
    """The block families a LoRA may reach for ``training`` (a ``TrainingSettings``): the mode's,
    less the video side when ``audio_video`` runs with ``video_frozen``."""
    rules = rules_of(training.mode)
    if rules.name == MODE_AUDIO_VIDEO and getattr(training, "video_frozen", False):
        return AUDIO_FAMILIES
    return rules.families


def narrows_targets(training) -> bool:
    """Whether the mode keeps some layers from the LoRA whatever the targets say."""
    return trainable_families(training) != BLOCK_FAMILIES


def allowed_module(name: str, training) -> bool:
    """Whether the layer ``name`` (a transformer module name) may get a LoRA in this mode.
    Layers outside the blocks (``proj_out``, ``audio_proj_out``, ...) may only when nothing is narrowed."""
    if not narrows_targets(training):
        return True
    return module_family(name) in trainable_families(training)


def narrowed_names(names: Iterable[str], training) -> tuple[list[str], list[str]]:
    """Split the layer names a ``target_modules`` setting matched into (kept, left out by the mode)."""
    kept, dropped = [], []
    for name in names:
        (kept if allowed_module(name, training) else dropped).append(name)
    return kept, dropped


def scored_sides(training) -> tuple[str, ...]:
    """The losses a step of this mode computes: ``("video", "audio")`` or ``("audio",)``
    (``("video",)`` for an ``audio_video`` run without audio)."""
    rules = rules_of(training.mode)
    if not rules.scores_video:
        return ("audio",)
    return ("video", "audio") if training.with_audio else ("video",)


def default_targets(mode: str) -> list[str]:
    """The LoRA targets a run of ``mode`` starts with (the preset's)."""
    return list(rules_of(mode).default_targets)


def family_summary(names: Iterable[str]) -> str:
    """``audio_attn1 4, audio_ff 2`` for a list of layer names (for messages)."""
    counts: dict[str, int] = {}
    for name in names:
        family = module_family(name)
        counts[family] = counts.get(family, 0) + 1
    return ", ".join(f"{family} {count}" for family, count in counts.items())



def mode_choices() -> list[dict[str, str]]:
    """The form's choices: ``{value, title, sentence, preset}`` per mode, in order."""
    return [{"value": r.name, "title": r.title, "sentence": r.sentence, "preset": r.preset} for r in MODES.values()]
