"""Training modes (:mod:`core.recipe.modes`) in the official ltx-trainer YAML, both ways.

The official trainer's ``flexible`` strategy (``training_strategies/flexible.py``) says per
modality whether it is generated (noised, scored) or conditioning (clean, timestep 0, no loss),
or leaves it out; its ``configs/v2a_lora.yaml`` and ``configs/t2a_lora.yaml`` are the two
voice-focused recipes:

- ``audio_video`` <-> ``video: {is_generated: true}``, ``audio: {is_generated: true}`` (or the
  legacy ``text_to_video`` with audio), as :mod:`core.recipe.official_yaml` already writes;
- ``voice`` <-> ``video: {is_generated: false}``, ``audio: {is_generated: true}`` (v2a);
- ``audio_only`` <-> no ``video`` section, ``audio: {is_generated: true}`` (t2a, validated with
  ``generate_video: false``);
- ``video_frozen`` has no strategy there: the official trainer freezes a side by leaving its
  layers out of ``target_modules``, so the export writes the targets narrowed to the audio side.

Official validation samples of v2a carry ``conditions: [{type: video_to_audio, video: PATH}]``;
ours sample the run's own training clips (the v2a variants), so those conditions are read as
"sample v2a" and their paths noted. Pure Python: no torch.
"""

from __future__ import annotations

from typing import Any

from core.recipe.modes import MODE_AUDIO_ONLY, MODE_AUDIO_VIDEO, MODE_VOICE, narrowed_names, narrows_targets
from core.recipe.targets import TargetError, match_targets

LATENTS_DIR = "latents"
AUDIO_LATENTS_DIR = "audio_latents"
V2A_CONDITION = "video_to_audio"


def export_problem(config, form: str) -> str | None:
    """Why ``config`` cannot be written in ``form`` (None: it can)."""
    if config.training.mode != MODE_AUDIO_VIDEO and form != "flexible":
        return (f"training mode {config.training.mode} needs the flexible strategy form "
                "(text_to_video always generates the video)")
    return None


def mode_strategy(config) -> dict[str, Any] | None:
    """The official ``training_strategy`` of a ``voice`` or ``audio_only`` run (None otherwise)."""
    audio = {"is_generated": True, "latents_dir": AUDIO_LATENTS_DIR}
    if config.training.mode == MODE_VOICE:
        return {"name": "flexible", "video": {"is_generated": False, "latents_dir": LATENTS_DIR}, "audio": audio}
    if config.training.mode == MODE_AUDIO_ONLY:
        return {"name": "flexible", "audio": audio}
    return None


def export_targets(config, layout) -> list[str]:
    """``target_modules`` for the official file: ours, or where the mode keeps layers from the LoRA,
    the layers it does train as ``family.layer`` names (``audio_attn1.to_k``, ``audio_ff.net.2``)."""
    targets = config.lora.target_modules
    if not narrows_targets(config.training) or isinstance(targets, str):
        return list(targets) if not isinstance(targets, str) else [targets]
    try:
        matched = match_targets(targets, layout).matched_names
    except TargetError:
        return list(targets)
    kept, _ = narrowed_names(matched, config.training)
    return sorted({name.split(".", 2)[2] for name in kept})


def mode_validation(config) -> dict[str, Any]:
    """Official ``validation`` keys a mode sets (an audio-only run generates no video)."""
    return {"generate_video": False} if config.training.mode == MODE_AUDIO_ONLY else {}


def mode_notes(config) -> list[str]:
    """What the official file does not carry of the run's mode."""
    training, notes = config.training, []
    if training.mode == MODE_VOICE:
        notes.append("voice mode: to validate as video-to-audio officially, give each validation sample "
                     "conditions: [{type: video_to_audio, video: <a clip>}] (ours sample the training clips)")
    if training.mode == MODE_AUDIO_ONLY:
        notes.append("audio_only: the official trainer runs the audio stream with no video stream; we run the same "
                     "audio blocks with the cross-modal attentions off")
    if training.mode == MODE_AUDIO_VIDEO and training.video_frozen:
        notes.append("video_frozen has no official setting: target_modules are written narrowed to the audio side")
    return notes


def export_mode(config, form: str, data: dict[str, Any], notes: list[str]) -> tuple[dict[str, Any], list[str]]:
    """An official export (``data``, ``notes``) with the run's mode written in: the strategy, the
    narrowed targets, the validation keys and the notes. Raises ``OfficialConfigError`` when the
    form cannot hold the mode."""
    from core.recipe.architecture import MODEL_CONFIGS
    from core.recipe.lint import LAYOUT_OF_MODEL
    from core.recipe.official_yaml import OfficialConfigError

    if problem := export_problem(config, form):
        raise OfficialConfigError(problem)
    if (strategy := mode_strategy(config)) is not None:
        data["training_strategy"] = strategy
    data["lora"]["target_modules"] = export_targets(config, MODEL_CONFIGS[LAYOUT_OF_MODEL[config.model]])
    data["validation"].update(mode_validation(config))
    return data, notes + mode_notes(config)


def read_mode(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """``(data, training settings, notes)`` for an import: a v2a or t2a ``flexible`` strategy is
    handed on as a plain audio-video one (so its conditions are checked as usual) and comes back
    as our ``voice`` / ``audio_only`` settings; the samples' ``video_to_audio`` conditions are
    taken out (ours are the v2a variants)."""
    data, notes = dict(data), []
    if isinstance(data.get("validation"), dict):
        data["validation"], notes = take_v2a_conditions(data["validation"])
    strategy = data.get("training_strategy")
    training: dict[str, Any] = {"mode": MODE_AUDIO_VIDEO, "video_frozen": False}
    if not isinstance(strategy, dict) or strategy.get("name") != "flexible":
        return data, training, notes
    video, audio = strategy.get("video"), strategy.get("audio")
    if not isinstance(audio, dict) or not audio.get("is_generated"):
        return data, training, notes
    if isinstance(video, dict) and video.get("is_generated"):
        return data, training, notes
    plain_video = {**(video if isinstance(video, dict) else {"latents_dir": LATENTS_DIR}), "is_generated": True}
    data["training_strategy"] = {**strategy, "video": plain_video}
    training.update(mode=MODE_VOICE if isinstance(video, dict) else MODE_AUDIO_ONLY, with_audio=True,
                    first_frame_conditioning_p=0.0, independent_audio_timesteps=False)
    return data, training, notes


def take_v2a_conditions(validation: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``validation`` without the samples' ``video_to_audio`` conditions, and a note naming their
    videos (ours are the run's training clips)."""
    samples = validation.get("samples")
    if not isinstance(samples, list):
        return validation, []
    videos, kept = [], []
    for sample in samples:
        if not isinstance(sample, dict):
            kept.append(sample)
            continue
        conditions = sample.get("conditions") or []
        v2a = [c for c in conditions if isinstance(c, dict) and c.get("type") == V2A_CONDITION]
        videos += [str(c.get("video")) for c in v2a]
        rest = [c for c in conditions if c not in v2a]
        kept.append({**{k: v for k, v in sample.items() if k != "conditions"}, **({"conditions": rest} if rest else {})})
    if not videos:
        return validation, []
    note = (f"validation video_to_audio conditions ({', '.join(videos)}): the studio's v2a samples use the "
            "run's own training clips instead")
    return {**validation, "samples": kept}, [note]
