"""Prove a LoRA file loads: load it into a fresh ``LTX2Pipeline`` with diffusers' own
``load_lora_weights`` and compare every tensor in the file with what the model holds afterwards.

A key counts as loaded only if the module it names (in diffusers terms) now carries the
adapter, ``lora_A`` equals the file's tensor, and ``lora_B * scaling`` equals the file's
``lora_B * alpha/rank`` (alpha/rank from the file's diffusers metadata; 1 for official files,
whose alpha is folded into ``lora_B``). Keys are grouped by family (attn1 ... audio_ff,
connectors, other). The file fails verification if any key did not load, if its tensors no
longer match the digest written at export, or (unless allowed) if it has no audio-side keys.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from worker.engine.lora.files import (
    DIGEST_METADATA_KEY,
    LORA_METADATA_KEY,
    detect_layout,
    expected_diffusers_module,
    read_lora_file,
    split_lora_key,
    tensor_digest,
)
from worker.engine.lora.names import AUDIO_FAMILIES, FAMILIES, family_of_key, side_of_family

VERIFY_ADAPTER = "avlora_verify"
MAX_LISTED_KEYS = 20


@dataclass
class FamilyReport:
    """Keys of one family: how many the file has, how many loaded, which did not."""

    keys: int = 0
    loaded: int = 0
    not_loaded: list[str] = field(default_factory=list)


@dataclass
class VerifyReport:
    """The outcome of :func:`verify_lora_file`; ``ok`` is True only if every key loaded."""

    path: str
    layout: str
    total_keys: int
    loaded_keys: int
    families: dict[str, FamilyReport]
    problems: list[str]
    reasons: dict[str, str]
    loader_messages: list[str]

    @property
    def ok(self) -> bool:
        """True when nothing was dropped, altered or missing."""
        return not self.problems

    @property
    def sides(self) -> list[str]:
        """The sides of the model the file has keys on (``video``, ``audio``), e.g. only
        ``audio`` for a LoRA trained in the ``voice`` or ``audio_only`` mode."""
        touched = {side_of_family(name) for name, family in self.families.items() if family.keys}
        return [side for side in ("video", "audio") if side in touched]

    def to_dict(self) -> dict:
        """JSON-ready form (the key report the API serves)."""
        data = asdict(self)
        data["ok"] = self.ok
        data["sides"] = self.sides
        return data

    def format_text(self) -> str:
        """A human-readable report, one line per family."""
        lines = [f"{self.path} ({self.layout} layout): {self.loaded_keys}/{self.total_keys} keys loaded",
                 f"  sides touched: {', '.join(self.sides) or 'none'}"]
        for name, family in self.families.items():
            if family.keys == 0:
                continue
            mark = "ok" if family.loaded == family.keys else "DROPPED"
            lines.append(f"  {name:22s} {family.loaded:5d}/{family.keys:<5d} {mark}")
            for key in family.not_loaded[:MAX_LISTED_KEYS]:
                lines.append(f"      not loaded: {key} ({self.reasons.get(key, '')})")
        for problem in self.problems:
            lines.append(f"PROBLEM: {problem}")
        lines.append("VERIFIED" if self.ok else "FAILED")
        return "\n".join(lines)


class _LogCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _file_scale(metadata: dict[str, str], rank: int) -> float:
    """alpha/rank the file asks for (diffusers metadata), else 1 (no alpha: loaders use B @ A)."""
    raw = metadata.get(LORA_METADATA_KEY)
    if not raw:
        return 1.0
    peft_meta = json.loads(raw)
    alpha = peft_meta.get("transformer.lora_alpha", peft_meta.get("lora_alpha"))
    r = peft_meta.get("transformer.r", peft_meta.get("r", rank))
    return float(alpha) / float(r) if alpha is not None else 1.0


def _held_module(pipe, qualified: str):
    component, _, name = qualified.partition(".")
    model = getattr(pipe, component, None)
    if model is None:
        return None
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


def _check_key(pipe, key: str, tensor: torch.Tensor, file_scale: float, atol: float) -> str | None:
    """None if ``key`` is held by the model with the file's value; else the reason it is not."""
    try:
        _, suffix = split_lora_key(key)
    except ValueError:
        return "not a lora_A/lora_B weight"
    target = expected_diffusers_module(key)
    if target is None:
        return "prefix unknown to the LTX-2 loaders (dropped)"
    module = _held_module(pipe, target)
    if module is None:
        return f"the model has no module {target}"
    part = "lora_A" if suffix.startswith("lora_A") else "lora_B"
    layers = getattr(module, part, None)
    if layers is None or VERIFY_ADAPTER not in layers:
        return f"{target} holds no LoRA after loading (dropped)"
    held = layers[VERIFY_ADAPTER].weight.detach().float().cpu()
    value = tensor.detach().float()
    if held.shape != value.shape:
        return f"shape {tuple(value.shape)} in file, {tuple(held.shape)} in model"
    if part == "lora_B":
        held = held * float(module.scaling[VERIFY_ADAPTER])
        value = value * file_scale
    if not torch.allclose(held, value, rtol=1e-3, atol=atol):
        diff = (held - value).abs().max().item()
        return f"value differs from the file (max abs difference {diff:.3g}, scale applied)"
    return None


def _file_problems(tensors: dict, metadata: dict) -> list[str]:
    """What is wrong with the file itself: no tensors, or values that differ from its export digest."""
    problems: list[str] = []
    if not tensors:
        problems.append("the file holds no tensors")
    digest = metadata.get(DIGEST_METADATA_KEY)
    if digest and digest != tensor_digest(tensors):
        problems.append(
            "tensor values differ from the digest written at export: the file was altered or corrupted"
        )
    return problems


def _load_adapter(pipe, path: str | Path) -> tuple[str | None, list]:
    """Load the file as the verify adapter; returns the refusal (or ``None``) and diffusers' log messages."""
    collector = _LogCollector()
    diffusers_logger = logging.getLogger("diffusers")
    diffusers_logger.addHandler(collector)
    try:
        pipe.load_lora_weights(str(path), adapter_name=VERIFY_ADAPTER)
    except (ValueError, KeyError, RuntimeError, TypeError) as exc:
        return f"load_lora_weights refused the file: {exc}", collector.messages
    finally:
        diffusers_logger.removeHandler(collector)
    return None, collector.messages


def _check_keys(pipe, tensors: dict, file_scale: float, atol: float,
                load_error: str | None) -> tuple[dict[str, FamilyReport], dict[str, str]]:
    """Every key's family report and, for each key that did not load, why."""
    families = {name: FamilyReport() for name in FAMILIES}
    reasons: dict[str, str] = {}
    for key, tensor in sorted(tensors.items()):
        family = families[family_of_key(key)]
        family.keys += 1
        reason = load_error or _check_key(pipe, key, tensor, file_scale, atol)
        if reason is None:
            family.loaded += 1
        else:
            family.not_loaded.append(key)
            reasons[key] = reason
    return families, reasons


def verify_lora_file(
    path: str | Path,
    pipeline_factory: Callable[[], object],
    *,
    require_audio: bool = True,
    atol: float = 1e-6,
) -> VerifyReport:
    """Load ``path`` into ``pipeline_factory()`` (a FRESH pipeline) and check every tensor.

    ``require_audio``: fail a file that has no key in the audio-side families (an
    audio-video LoRA whose audio branch would never change anything).
    """
    tensors, metadata = read_lora_file(path)
    layout = detect_layout(list(tensors))
    problems = _file_problems(tensors, metadata)
    ranks = [t.shape[0] for k, t in tensors.items() if k.endswith("lora_A.weight")]
    file_scale = _file_scale(metadata, ranks[0] if ranks else 1)

    pipe = pipeline_factory()
    load_error, loader_messages = _load_adapter(pipe, path)
    if load_error:
        problems.append(load_error)
    families, reasons = _check_keys(pipe, tensors, file_scale, atol, load_error)
    loaded_total = sum(family.loaded for family in families.values())
    dropped = len(tensors) - loaded_total
    if dropped and not load_error:
        problems.append(f"{dropped} of {len(tensors)} keys did not load")
    if require_audio and tensors and not any(families[f].keys for f in AUDIO_FAMILIES):
        problems.append(
            "no audio-side keys (audio_attn1, audio_attn2, audio_ff, video_to_audio_attn): this LoRA "
            "cannot change the audio; train with target_modules that reach the audio branch"
        )
    return VerifyReport(
        path=str(path),
        layout=layout,
        total_keys=len(tensors),
        loaded_keys=loaded_total,
        families=families,
        problems=problems,
        reasons=reasons,
        loader_messages=loader_messages,
    )
