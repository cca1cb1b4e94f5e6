"""Which transformer layers a LoRA ``target_modules`` setting reaches, by PEFT's rule (no torch).

PEFT 0.21 (``peft.tuners.tuners_utils.check_target_module_exists``) matches a module name
``key`` against ``target_modules`` like this:

* a single string is a regular expression that must match the *whole* name
  (``re.fullmatch``); so ``"to_k"`` alone matches nothing here, while
  ``".*\\.to_k"`` matches every ``to_k``. The string ``"all-linear"`` (any case) means every
  ``nn.Linear`` (a diffusers model has no output head to leave out);
* a list (or set) of strings matches a name equal to an entry or ending with ``"." + entry``:
  ``"to_k"`` reaches all six attention families, ``"attn1.to_k"`` only video self-attention
  (not ``audio_attn1``), ``"ff.net.0.proj"`` only ``ff`` (not ``audio_ff``).

``exclude_modules`` uses the same two rules and wins over a target. A matched module that is
not an ``nn.Linear`` (``to_out``, ``norm_q``, a whole ``attn1``) makes PEFT refuse the config,
so it is reported in :attr:`TargetMatch.unsupported`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.recipe.architecture import (
    FAMILIES,
    ModuleInfo,
    family_linear_counts,
    transformer_modules,
)

ALL_LINEAR = "all-linear"
TargetSpec = str | Iterable[str]


class TargetError(ValueError):
    """A ``target_modules`` value PEFT cannot use (for example an invalid regex)."""


def normalize_targets(target_modules: TargetSpec) -> str | list[str]:
    """A single string stays a string (regex); any other iterable becomes a list of strings."""
    if isinstance(target_modules, str):
        return target_modules
    targets = list(target_modules)
    for target in targets:
        if not isinstance(target, str) or not target:
            raise TargetError(f"target_modules entries must be non-empty strings, got {target!r}")
    return targets


def name_matches(targets: str | list[str], name: str) -> bool:
    """PEFT's rule for one module name (see the module docstring); ``all-linear`` not included."""
    if isinstance(targets, str):
        try:
            return re.fullmatch(targets, name) is not None
        except re.error as exc:
            raise TargetError(f"target_modules {targets!r} is not a valid regular expression: {exc}") from exc
    return name in targets or any(name.endswith(f".{target}") for target in targets)


@dataclass
class TargetMatch:
    """What a ``target_modules`` (and ``exclude_modules``) setting reaches in one model."""

    targets: str | list[str]
    matched: list[ModuleInfo] = field(default_factory=list)
    unsupported: list[ModuleInfo] = field(default_factory=list)
    family_totals: dict[str, int] = field(default_factory=dict)
    unused_targets: list[str] = field(default_factory=list)

    @property
    def matched_names(self) -> list[str]:
        """Names of the ``nn.Linear`` modules that get a LoRA, in model order."""
        return [m.name for m in self.matched]

    @property
    def per_family(self) -> dict[str, int]:
        """Matched ``nn.Linear`` count for every family (zeros included)."""
        counts = dict.fromkeys(FAMILIES, 0)
        for module in self.matched:
            counts[module.family] += 1
        return counts

    @property
    def per_side(self) -> dict[str, int]:
        """Matched count on the ``video`` and ``audio`` sides (``other`` not counted)."""
        counts = {"video": 0, "audio": 0}
        for module in self.matched:
            if module.side:
                counts[module.side] += 1
        return counts

    @property
    def missed_families(self) -> list[str]:
        """Block families with layers but no matched layer."""
        per_family = self.per_family
        return [f for f in FAMILIES if f != "other" and self.family_totals.get(f, 0) and not per_family[f]]

    def lora_parameters(self, rank: int) -> int:
        """Trainable LoRA parameters at ``rank``: ``rank * (in + out)`` per matched layer."""
        return sum(rank * (m.in_features + m.out_features) for m in self.matched)

    def summary(self) -> str:
        """One line such as ``attn1 48/48, audio_attn1 0/48, ...`` for messages."""
        per_family = self.per_family
        return ", ".join(f"{f} {per_family[f]}/{self.family_totals.get(f, 0)}" for f in FAMILIES)


def match_targets(
    target_modules: TargetSpec,
    config: Mapping[str, Any] | str,
    exclude_modules: TargetSpec | None = None,
) -> TargetMatch:
    """Apply PEFT's matching rule to the transformer built from ``config``."""
    targets = normalize_targets(target_modules)
    excludes = normalize_targets(exclude_modules) if exclude_modules else None
    modules = transformer_modules(config)
    all_linear = isinstance(targets, str) and targets.lower() == ALL_LINEAR
    result = TargetMatch(targets=targets, family_totals=family_linear_counts(config))
    used: set[str] = set()
    for module in modules:
        if excludes is not None and name_matches(excludes, module.name):
            continue
        if all_linear:
            hit = module.is_linear
        else:
            hit = name_matches(targets, module.name)
        if not hit:
            continue
        if isinstance(targets, list):
            used.update(t for t in targets if module.name == t or module.name.endswith(f".{t}"))
        (result.matched if module.is_linear else result.unsupported).append(module)
    if isinstance(targets, list):
        result.unused_targets = [t for t in targets if t not in used]
    return result
