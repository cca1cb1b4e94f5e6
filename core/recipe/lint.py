"""The recipe linter: findings about a run config (and optionally its dataset) before training.

Each finding is a :class:`LintIssue` ``(code, severity, message, detail)``; ``error`` means the
run would train the wrong thing or fail, ``warning`` is advice. Target modules are matched
against the model's module list with PEFT's rule (:mod:`core.recipe.targets`), so the web form
can show per-family counts without torch. Pure Python: no torch.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from core.names import MODEL_PRESETS, V2A_VARIANTS
from core.presets import full_size_of
from core.recipe.architecture import AUDIO_FAMILIES, CROSS_MODAL_FAMILIES, MODEL_CONFIGS, VIDEO_FAMILIES
from core.recipe.buckets import SPATIAL_MULTIPLE, TEMPORAL_MULTIPLE, fitting_buckets
from core.recipe.config_yaml import ConfigFileError
from core.recipe.run_config import RunConfig, parse_run_config
from core.recipe.targets import TargetError, match_targets

Severity = Literal["error", "warning"]
# Which full-size layout stands in for a model when no transformer config is given.
LAYOUT_OF_MODEL = {model: full_size_of(model) for model in MODEL_PRESETS}
AUDIO_WORDS = re.compile(
    r"\b(speech|speaks?|speaking|spoke|voices?|voiced|says?|said|saying|talks?|talking|sounds?|audio|"
    r"sings?|singing|sang|song|music|noise|noisy|whispers?|whispering|shouts?|shouting|laughs?|laughing|"
    r"narrates?|narration|dialogue|tone|hums?|humming)\b",
    re.IGNORECASE,
)
HIGH_LEARNING_RATE = 5e-4


@dataclass(frozen=True)
class LintIssue:
    """One finding: a stable ``code``, ``error`` or ``warning``, a message saying what to do."""

    code: str
    severity: Severity
    message: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, the shape of clip findings (``code, severity, message, detail``)."""
        return {"code": self.code, "severity": self.severity, "message": self.message, "detail": self.detail}


@dataclass(frozen=True)
class ClipShape:
    """What the linter needs to know about one clip."""

    name: str
    width: int
    height: int
    frames: int
    has_audio: bool = True


@dataclass(frozen=True)
class DatasetSummary:
    """A dataset as the linter sees it. ``findings`` are clip QA findings as dicts."""

    clip_count: int
    has_audio: bool
    clips_without_audio: int = 0
    clips: Sequence[ClipShape] = ()
    findings: Sequence[Mapping[str, Any]] = ()
    voices: Sequence[Any] = ()  # ClipVoice per clip (core.recipe.reference_pairs), for reference_voice


def lint_run_config(
    config: RunConfig,
    dataset: DatasetSummary | None = None,
    transformer_config: Mapping[str, Any] | None = None,
) -> list[LintIssue]:
    """All findings for a valid config, errors first.

    ``transformer_config`` is the model's diffusers config; without it the full-size layout of
    the model's version is used (the family checks do not depend on size).
    """
    issues: list[LintIssue] = []
    issues += _target_issues(config, transformer_config)
    issues += _trigger_and_prompt_issues(config)
    issues += _bucket_and_batch_issues(config)
    issues += _training_issues(config)
    issues += _v2a_issues(config, dataset)
    if dataset is not None:
        issues += _dataset_issues(config, dataset)
    from core.recipe.lint_modes import mode_issues, moot_codes  # it imports LintIssue from here

    layout = transformer_config if transformer_config is not None else MODEL_CONFIGS[LAYOUT_OF_MODEL[config.model]]
    issues = [i for i in issues if i.code not in moot_codes(config)] + mode_issues(config, layout, dataset)
    from core.recipe.lint_versions import version_issues  # it imports LintIssue from here

    issues += version_issues(config, layout)
    return sorted(issues, key=lambda issue: issue.severity != "error")


def lint_run_config_data(
    data: Mapping[str, Any],
    dataset: DatasetSummary | None = None,
    transformer_config: Mapping[str, Any] | None = None,
) -> list[LintIssue]:
    """Lint raw form/YAML data: schema problems become ``invalid_setting`` errors first.

    Bucket strings get their own codes (``bucket_frames``, ``bucket_size``) so the form can
    point at the rule that is broken.
    """
    issues = _raw_bucket_issues(data)
    try:
        config = parse_run_config(dict(data), source="config")
    except ConfigFileError as exc:
        bucket_codes_given = bool(issues)
        for problem in exc.problems:
            location = problem.removeprefix("config: ").split(":", 1)[0]
            if bucket_codes_given and location == "data.buckets":
                continue
            issues.append(LintIssue("invalid_setting", "error", problem.removeprefix("config: "), {"field": location}))
        return issues
    return issues + lint_run_config(config, dataset, transformer_config)


# --- target modules ---------------------------------------------------------------------------


def _target_issues(config: RunConfig, transformer_config: Mapping[str, Any] | None) -> list[LintIssue]:
    layout = transformer_config if transformer_config is not None else MODEL_CONFIGS[LAYOUT_OF_MODEL[config.model]]
    targets = config.lora.target_modules
    try:
        match = match_targets(targets, layout)
    except TargetError as exc:
        return [LintIssue("targets_invalid", "error", str(exc), {"target_modules": targets})]
    detail = {"per_family": match.per_family, "family_totals": match.family_totals, "summary": match.summary()}
    issues: list[LintIssue] = []
    if match.unsupported:
        names = sorted({m.name.split(".")[-1] for m in match.unsupported})
        issues.append(LintIssue(
            "targets_unsupported", "error",
            f"target_modules reach {len(match.unsupported)} modules that are not Linear layers "
            f"({', '.join(names)}); PEFT refuses them. Use e.g. 'to_out.0' instead of 'to_out'.",
            {**detail, "modules": [m.name for m in match.unsupported[:20]]},
        ))
    if not match.matched:
        hint = (" A single string is a regular expression over the whole name: write a list such as "
                "[to_k, to_q, to_v, to_out.0] instead." if isinstance(targets, str) else "")
        issues.append(LintIssue(
            "targets_match_nothing", "error", f"target_modules {targets!r} match no Linear layer.{hint}", detail
        ))
        return issues
    if match.unused_targets:
        issues.append(LintIssue(
            "targets_unused", "warning",
            f"target_modules entries match nothing: {', '.join(match.unused_targets)}",
            {**detail, "unused": match.unused_targets},
        ))
    per_family = match.per_family
    audio_hit = [f for f in AUDIO_FAMILIES if per_family[f]]
    if config.training.with_audio and not audio_hit:
        issues.append(LintIssue(
            "targets_miss_audio", "error",
            "target_modules reach no audio layer (audio_attn1, audio_attn2, audio_ff, video_to_audio_attn): "
            "the voice would never train. Use short names such as to_k, to_q, to_v, to_out.0. "
            f"Matched: {match.summary()}",
            detail,
        ))
    elif config.training.with_audio and (missed := [f for f in ("audio_attn1", "audio_attn2") if not per_family[f]]):
        issues.append(LintIssue(
            "targets_miss_audio_attention", "warning",
            f"target_modules miss {', '.join(missed)}: part of the audio stream stays frozen. Matched: {match.summary()}",
            detail,
        ))
    if config.training.with_audio and not any(per_family[f] for f in CROSS_MODAL_FAMILIES):
        issues.append(LintIssue(
            "targets_miss_cross_modal", "warning",
            "target_modules reach neither audio_to_video_attn nor video_to_audio_attn: lip sync and "
            f"voice-to-face links stay frozen. Matched: {match.summary()}",
            detail,
        ))
    if not any(per_family[f] for f in VIDEO_FAMILIES):
        issues.append(LintIssue(
            "targets_miss_video", "warning",
            f"target_modules reach no video layer: the look would not change. Matched: {match.summary()}",
            detail,
        ))
    return issues


# --- trigger and validation prompts -----------------------------------------------------------


def _trigger_and_prompt_issues(config: RunConfig) -> list[LintIssue]:
    issues: list[LintIssue] = []
    trigger = config.data.trigger
    if not trigger:
        issues.append(LintIssue(
            "trigger_empty", "error",
            "The trigger word is empty: choose one unique word (e.g. ema_voice) so prompts can call the LoRA.",
        ))
    validation = config.validation
    if not validation.prompts:
        issues.append(LintIssue("no_validation_prompts", "warning", "No validation prompts: no samples to judge."))
    elif not validation.at_checkpoints and validation.interval is None:
        issues.append(LintIssue(
            "validation_disabled", "warning",
            "Validation is off (at_checkpoints false, no interval): checkpoints will have no samples.",
        ))
    for index, prompt in enumerate(config.validation_prompts(), start=1):
        if trigger and not _has_word(prompt, trigger):
            issues.append(LintIssue(
                "prompt_missing_trigger", "warning",
                f"Validation prompt {index} does not contain the trigger '{trigger}': it samples the base model.",
                {"prompt_index": index},
            ))
        if config.training.with_audio and not AUDIO_WORDS.search(prompt) and '"' not in prompt:
            issues.append(LintIssue(
                "prompt_missing_audio", "warning",
                f"Validation prompt {index} describes no sound: say who speaks, what is said "
                '(Speech: "...") and the sounds.',
                {"prompt_index": index},
            ))
    return issues


def _has_word(text: str, word: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_-]){re.escape(word)}(?![A-Za-z0-9_-])", text) is not None


# --- buckets, batch, training -----------------------------------------------------------------


def _bucket_and_batch_issues(config: RunConfig) -> list[LintIssue]:
    buckets = config.data.bucket_list
    issues: list[LintIssue] = []
    if len(buckets) > 1 and config.optimization.batch_size > 1:
        issues.append(LintIssue(
            "several_buckets_batch", "error",
            f"{len(buckets)} buckets with batch_size {config.optimization.batch_size}: clips of different "
            "shapes cannot share a batch. Use batch_size 1 (raise gradient_accumulation_steps instead).",
            {"buckets": config.data.buckets},
        ))
    return issues


def _training_issues(config: RunConfig) -> list[LintIssue]:
    issues: list[LintIssue] = []
    lora, opt = config.lora, config.optimization
    if lora.alpha != lora.rank:
        issues.append(LintIssue(
            "alpha_not_rank", "warning",
            f"alpha ({lora.alpha}) differs from rank ({lora.rank}). Our exports fold alpha/rank into the "
            "weights, but the official trainer's files and tools that ignore alpha apply the LoRA at the "
            "wrong strength. Keep alpha == rank unless you mean it.",
            {"rank": lora.rank, "alpha": lora.alpha},
        ))
    if config.checkpoints.interval > opt.steps:
        issues.append(LintIssue(
            "checkpoint_after_end", "warning",
            f"checkpoints.interval ({config.checkpoints.interval}) exceeds steps ({opt.steps}): only the final "
            "checkpoint will be written.",
        ))
    if opt.learning_rate > HIGH_LEARNING_RATE:
        issues.append(LintIssue(
            "learning_rate_high", "warning",
            f"learning_rate {opt.learning_rate:g} is high for a LoRA (official 1e-4); audio often turns to noise.",
        ))
    if config.training.with_audio and config.training.audio_loss_weight == 0:
        issues.append(LintIssue(
            "audio_loss_weight_zero", "warning",
            "with_audio is on but audio_loss_weight is 0: the audio branch gets no gradient.",
        ))
    return issues


def _v2a_issues(config: RunConfig, dataset: DatasetSummary | None) -> list[LintIssue]:
    """The v2a voice test generates the audio of training clips from their cached video latents."""
    validation = config.validation
    variants = [v for v in validation.variants if v in V2A_VARIANTS]
    if not variants:
        return []
    issues: list[LintIssue] = []
    if not config.training.with_audio:
        issues.append(LintIssue(
            "v2a_needs_audio", "warning",
            f"{', '.join(variants)} generate the voice of training clips from their own cached video latents: that needs "
            "with_audio on (the audio is what they test, beside the clips' real audio). Turn with_audio on or "
            "leave the v2a variants out.",
            {"variants": variants},
        ))
    if dataset is not None and 0 < dataset.clip_count < validation.v2a_clips:
        issues.append(LintIssue(
            "v2a_few_clips", "warning",
            f"v2a_clips is {validation.v2a_clips} but only {dataset.clip_count} clips will have cached video "
            f"latents: the v2a variants sample {dataset.clip_count}.",
            {"v2a_clips": validation.v2a_clips, "clip_count": dataset.clip_count},
        ))
    return issues


# --- dataset ----------------------------------------------------------------------------------


def _dataset_issues(config: RunConfig, dataset: DatasetSummary) -> list[LintIssue]:
    issues: list[LintIssue] = []
    with_audio = config.training.with_audio
    if dataset.clip_count == 0:
        issues.append(LintIssue("no_clips", "error", "The dataset has no trainable clips."))
    if with_audio and not dataset.has_audio:
        issues.append(LintIssue(
            "no_audio_in_dataset", "error",
            "with_audio is on but no clip has an audio track: add clips with sound or turn with_audio off.",
        ))
    elif with_audio and dataset.clips_without_audio:
        issues.append(LintIssue(
            "clips_without_audio", "error",
            f"{dataset.clips_without_audio} clips have no audio track: they would train silence or be dropped. "
            "Remove them or add their audio.",
            {"count": dataset.clips_without_audio},
        ))
    if not with_audio and dataset.has_audio:
        issues.append(LintIssue(
            "with_audio_off", "warning",
            "The clips have audio but with_audio is off: only the video is trained and the voice is ignored.",
        ))
    short = _too_short_clips(config, dataset.clips)
    if short:
        issues.append(LintIssue(
            "clips_too_short", "error",
            f"{len(short)} clips are shorter than every bucket and would be skipped "
            f"({short[0][0]}: {short[0][1]}). Add a shorter bucket or remove them.",
            {"clips": [{"name": name, "reason": reason} for name, reason in short[:50]]},
        ))
    blocked = Counter(f.get("code", "unknown") for f in dataset.findings if f.get("severity") == "error")
    if blocked:
        issues.append(LintIssue(
            "clips_blocked", "warning",
            f"{sum(blocked.values())} clip findings are errors ({', '.join(sorted(blocked))}): those clips will not train.",
            {"by_code": dict(blocked)},
        ))
    return issues


def _too_short_clips(config: RunConfig, clips: Sequence[ClipShape]) -> list[tuple[str, str]]:
    buckets = config.data.bucket_list
    short = []
    for clip in clips:
        fitting, reason = fitting_buckets(clip.width, clip.height, clip.frames, buckets)
        if not fitting:
            short.append((clip.name, reason or "too short"))
    return short


def _raw_bucket_issues(data: Mapping[str, Any]) -> list[LintIssue]:
    """Specific codes for bucket strings in raw data (the schema would only say 'invalid')."""
    section = data.get("data")
    text = section.get("buckets") if isinstance(section, Mapping) else None
    if not isinstance(text, str):
        return []
    issues = []
    for piece in re.split(r"[;,\s]+", text.strip()):
        parts = piece.lower().split("x")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            continue
        width, height, frames = (int(p) for p in parts)
        if width % SPATIAL_MULTIPLE or height % SPATIAL_MULTIPLE or not width or not height:
            issues.append(LintIssue(
                "bucket_size", "error",
                f"Bucket {piece}: width and height must be multiples of {SPATIAL_MULTIPLE}.",
                {"bucket": piece, "field": "data.buckets"},
            ))
        if frames == 1:
            issues.append(LintIssue(
                "bucket_frames", "error",
                f"Bucket {piece}: 1 frame is an image, a talking clip needs e.g. 49 frames.",
                {"bucket": piece, "field": "data.buckets"},
            ))
        elif frames % TEMPORAL_MULTIPLE != 1:
            issues.append(LintIssue(
                "bucket_frames", "error",
                f"Bucket {piece}: frames must be 8k+1 (e.g. 49, 89, 121).",
                {"bucket": piece, "field": "data.buckets"},
            ))
    return issues
