"""Linter rules where the model version matters (LTX-2, LTX-2.3, LTX-2.5).

What a person prepares is the same for the three: the video VAE compresses 8 frames and 32x32
pixels into one latent cell (LTX-2.5 RC checkpoints keep this default layout; the official
trainer reads it from the checkpoint since 1.2.0), so buckets stay ``WxHxF`` with W, H multiples
of 32 and F = 8k+1 (:data:`VAE_SCALE_FACTORS` pins this against :mod:`core.recipe.buckets`), the
audio VAE reads the same 16 kHz log-mel, and captions are cut at the same 1,024 Gemma tokens.

What differs is the transformer, so LoRA ``target_modules``: LTX-2 has no gated attention and no
prompt modulation (``prompt_adaln`` / ``audio_prompt_adaln``) and keeps the caption projection in
the transformer. LTX-2.5 has every Linear of LTX-2.3 (its video feed-forward only lost its bias, which
a LoRA does not train, and its keyframe embedding is a parameter, not a layer), so a target reaches
the same layers in both. A target that reaches layers in another version but none in this one gets
``targets_other_version`` with the reason. (A cache preprocessed for another version is refused where a run is queued: the
text conditions come from another Gemma; see ``app/views/training_pages.py``.) Pure Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.presets import PRESETS, get_preset
from core.recipe.architecture import MODEL_CONFIGS, linear_module_names
from core.recipe.buckets import SPATIAL_MULTIPLE, TEMPORAL_MULTIPLE
from core.recipe.lint import LintIssue
from core.recipe.run_config import RunConfig
from core.recipe.targets import ALL_LINEAR, TargetError, name_matches, normalize_targets

VERSION_LABELS = {"2.0": "LTX-2", "2.3": "LTX-2.3", "2.5": "LTX-2.5"}
# The video VAE's compression (frames, height, width) by version; the bucket rules assume it.
VAE_SCALE_FACTORS = {"2.0": (8, 32, 32), "2.3": (8, 32, 32), "2.5": (8, 32, 32)}
assert {p.version for p in PRESETS.values()} <= set(VAE_SCALE_FACTORS), "every preset version needs its VAE factors"
assert set(VAE_SCALE_FACTORS.values()) == {(TEMPORAL_MULTIPLE, SPATIAL_MULTIPLE, SPATIAL_MULTIPLE)}, (
    "a version with another VAE compression needs model-aware bucket rules (core/recipe/buckets.py)")
# Why a module a LoRA may name exists in one version and not another, by its top-level name.
WHY_ABSENT = {
    "prompt_adaln": "the timestep-dependent prompt modulation (prompt_adaln) came with LTX-2.3, and LTX-2.5 keeps it; "
                    "LTX-2 has no prompt modulation",
    "to_gate_logits": "gated attention (to_gate_logits) came with LTX-2.3",
    "caption_projection": "only LTX-2 projects the caption inside the transformer; LTX-2.3 and 2.5 do it in the "
                          "text connectors",
}
_ALIASES = {"audio_prompt_adaln": "prompt_adaln", "audio_caption_projection": "caption_projection"}


def version_issues(config: RunConfig, layout: Mapping[str, Any]) -> list[LintIssue]:
    """The version-specific findings for ``config`` whose transformer is ``layout``."""
    return _targets_of_other_versions(config, layout)


def version_label(model: str) -> str:
    """``LTX-2.5`` for ``ltx-2.5`` and ``toy-2.5``."""
    version = get_preset(model).version
    return VERSION_LABELS.get(version, f"LTX-{version}")


def _targets_of_other_versions(config: RunConfig, layout: Mapping[str, Any]) -> list[LintIssue]:
    targets = config.lora.target_modules
    if isinstance(targets, str) and targets.lower() == ALL_LINEAR:
        return []
    try:
        targets = normalize_targets(targets)
        here = linear_module_names(layout)
        entries = [targets] if isinstance(targets, str) else targets
        missing = [entry for entry in entries if not _reaches(entry, here, isinstance(targets, str))]
    except TargetError:
        return []  # the target rules report it
    version = get_preset(config.model).version
    issues = []
    for entry in missing:
        found = {other: names for other, names in _other_versions(version).items()
                 if _reaches(entry, names, isinstance(targets, str))}
        if not found:
            continue
        where = ", ".join(VERSION_LABELS[v] for v in sorted(found))
        reached = sorted({_top_name(n) for names in found.values() for n in names
                          if name_matches(entry if isinstance(targets, str) else [entry], n)})
        why = "; ".join(dict.fromkeys(WHY_ABSENT[r] for r in reached if r in WHY_ABSENT)) or "its layers differ"
        issues.append(LintIssue(
            "targets_other_version", "warning",
            f"target_modules entry {entry!r} reaches no layer of {version_label(config.model)} ({config.model}) but "
            f"does in {where}: {why}. A LoRA trains the layers of the model it is trained on, and its file loads "
            "only into that version.",
            {"entry": entry, "model": config.model, "versions": sorted(found), "modules": reached},
        ))
    return issues


def _reaches(entry: str, names: list[str], regex: bool) -> bool:
    targets: str | list[str] = entry if regex else [entry]
    return any(name_matches(targets, name) for name in names)


def _other_versions(version: str) -> dict[str, list[str]]:
    """The Linear names of the full-size model of every other version."""
    by_version = {get_preset(name).version: name for name in MODEL_CONFIGS}
    return {other: linear_module_names(name) for other, name in by_version.items() if other != version}


def _top_name(name: str) -> str:
    """The module a Linear sits in, as :data:`WHY_ABSENT` names it (``to_gate_logits`` inside a block)."""
    parts = name.split(".")
    if parts[0] == "transformer_blocks":
        return parts[-1] if parts[-1] == "to_gate_logits" else parts[2]
    return _ALIASES.get(parts[0], parts[0])
