"""The linter's rules for training modes (:mod:`core.recipe.modes`): contradictions are errors,
settings a mode ignores are warnings. :func:`mode_issues` is called by
:func:`core.recipe.lint.lint_run_config`; :func:`moot_codes` names the general findings a mode
makes pointless (a voice LoRA reaching no video layer is the point, not a problem). The engine
refuses the same errors (``worker.engine.step.modes``). Pure Python: no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.names import VARIANT_AUDIO_OFF
from core.recipe.lint import LintIssue
from core.recipe.modes import (
    MODE_AUDIO_ONLY,
    MODE_AUDIO_VIDEO,
    MODE_REFERENCE_VOICE,
    MODE_VOICE,
    family_summary,
    narrowed_names,
    narrows_targets,
    rules_of,
    trainable_families,
)
from core.recipe.reference_pairs import REFERENCE_MIN_SPEECH_S, PairPlan, build_pairs
from core.recipe.targets import TargetError, match_targets


def moot_codes(config) -> set[str]:
    """General findings that do not apply to this run's mode."""
    training = config.training
    codes: set[str] = set()
    if narrows_targets(training):
        codes.add("targets_miss_video")
    if training.mode == MODE_AUDIO_ONLY:
        codes.add("targets_miss_cross_modal")
    return codes


def mode_issues(config, layout: Mapping[str, Any], dataset=None) -> list[LintIssue]:
    """Every mode finding of ``config`` against the transformer ``layout`` (a diffusers config)
    and, when given, the ``dataset`` (a ``DatasetSummary``: its clips' voices)."""
    training = config.training
    issues = _stream_issues(config)
    issues += _target_issues(config, layout)
    if training.mode != MODE_AUDIO_VIDEO:
        issues += _ignored_settings(config)
    if training.mode == MODE_REFERENCE_VOICE and dataset is not None and getattr(dataset, "voices", ()):
        issues += reference_issues(build_pairs(dataset.voices))
    return issues


def reference_issues(plan: PairPlan) -> list[LintIssue]:
    """reference_voice: every clip needs a reference of the same voice (two clips per speaker or more)."""
    problems = plan.problems()
    if not problems:
        return []
    return [LintIssue(
        "reference_voice_unpaired", "error",
        f"reference_voice needs another clip of the same speaker beside each clip (with {REFERENCE_MIN_SPEECH_S:g} s "
        f"of speech or more); {len(problems)} have none: " + "; ".join(problems[:5])
        + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")
        + ". Add clips of those speakers or remove those clips.",
        {"clips": sorted(plan.unpaired)},
    )]


def _stream_issues(config) -> list[LintIssue]:
    training, mode = config.training, config.training.mode
    issues: list[LintIssue] = []
    if mode != MODE_AUDIO_VIDEO and not training.with_audio:
        issues.append(LintIssue(
            "mode_needs_audio", "error",
            f"mode {mode} learns the audio, but with_audio is off: turn with_audio on or choose audio_video.",
            {"mode": mode},
        ))
    if training.video_frozen and mode == MODE_AUDIO_VIDEO and not training.with_audio:
        issues.append(LintIssue(
            "video_frozen_without_audio", "error",
            "video_frozen keeps the LoRA off the video side, and with_audio is off: nothing would learn. "
            "Turn with_audio on or video_frozen off.",
        ))
    if mode == MODE_AUDIO_ONLY and training.first_frame_conditioning_p > 0:
        issues.append(LintIssue(
            "mode_first_frame_without_video", "error",
            "audio_only trains no picture, so there is no first frame to condition on: set "
            "first_frame_conditioning_p to 0.",
            {"first_frame_conditioning_p": training.first_frame_conditioning_p},
        ))
    if mode != MODE_AUDIO_VIDEO and VARIANT_AUDIO_OFF in config.validation.variants:
        issues.append(LintIssue(
            "mode_audio_off_sample", "warning",
            f"{'An' if mode[0] in 'aeiou' else 'A'} {mode} LoRA has no video-side layers, so its "
            f"{VARIANT_AUDIO_OFF} sample is the base model's: leave that variant out.",
        ))
    return issues


def _target_issues(config, layout: Mapping[str, Any]) -> list[LintIssue]:
    training = config.training
    if not narrows_targets(training):
        return []
    try:
        matched = match_targets(config.lora.target_modules, layout).matched_names
    except TargetError:
        return []  # the general linter reports the bad setting
    if not matched:
        return []
    kept, dropped = narrowed_names(matched, training)
    families = trainable_families(training)
    what = "video_frozen" if training.mode == MODE_AUDIO_VIDEO else f"mode {training.mode}"
    detail = {"mode": training.mode, "trainable_families": list(families), "kept": len(kept), "left_out": len(dropped)}
    if not kept:
        return [LintIssue(
            "mode_targets_none", "error",
            f"{what} trains only {', '.join(families)}, and target_modules reach none of them "
            f"({family_summary(dropped)}). Use the mode's preset targets, e.g. {rules_of(_preset_mode(training)).default_targets[0]}.",
            detail,
        )]
    if dropped:
        return [LintIssue(
            "mode_targets_narrowed", "warning",
            f"{what} trains only {', '.join(families)}: {len(dropped)} matched layers get no LoRA "
            f"({family_summary(dropped)}); {len(kept)} do ({family_summary(kept)}).",
            detail,
        )]
    return []


def _preset_mode(training) -> str:
    return MODE_VOICE if training.mode == MODE_AUDIO_VIDEO else training.mode


def _ignored_settings(config) -> list[LintIssue]:
    training, mode = config.training, config.training.mode
    ignored = []
    if training.video_frozen:
        ignored.append("video_frozen (the video side never trains in this mode)")
    scores_video = rules_of(mode).scores_video
    if training.audio_loss_weight != 1.0 and not scores_video:
        ignored.append(f"audio_loss_weight {training.audio_loss_weight:g} (the audio loss is the only loss)")
    if training.independent_audio_timesteps and not scores_video:
        ignored.append("independent_audio_timesteps (only the audio has a timestep)")
    if mode == MODE_VOICE and training.first_frame_conditioning_p > 0:
        ignored.append("first_frame_conditioning_p (every video frame is already clean)")
    if not ignored:
        return []
    return [LintIssue(
        "mode_setting_ignored", "warning",
        f"mode {mode} ignores: {'; '.join(ignored)}.",
        {"mode": mode, "settings": [item.split(" ")[0] for item in ignored]},
    )]
