"""Voices of a dataset: which clips share a voice, how many voices there are, who is the odd one out.

Each analysed clip with enough speech carries a voice embedding (``analysis["voice"]["embedding"]``,
unit length, computed by the worker's speech layer when the clip is checked). Clips are grouped by
average-linkage clustering on cosine distance (scipy, :func:`cluster_voices`), cut where two groups' voices are less
similar than :data:`core.recipe.speech_rules.OTHER_SPEAKER_SIMILARITY`. The largest group is the
dataset's voice; a clip outside it gets ``other_speaker`` with its similarity to that voice.
Pure numpy/scipy: the web computes it from stored embeddings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.recipe.speech_rules import OTHER_SPEAKER_SIMILARITY


def clip_voice(clip: Any) -> np.ndarray | None:
    """The clip's stored voice embedding (unit length), or None when it has none."""
    voice = ((getattr(clip, "analysis", None) or {}).get("voice") or {})
    embedding = voice.get("embedding")
    if not embedding:
        return None
    vector = np.asarray(embedding, dtype=np.float64)
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 0 else None


def cluster_voices(vectors: list[np.ndarray] | np.ndarray, threshold: float = OTHER_SPEAKER_SIMILARITY) -> list[int]:
    """A voice label per unit-length embedding: average-linkage clustering on cosine distance,
    cut where groups are less similar than ``threshold``; labels numbered by first appearance."""
    if len(vectors) == 0:
        return []
    if len(vectors) == 1:
        return [0]
    from scipy.cluster.hierarchy import fcluster, linkage

    tree = linkage(np.stack(vectors).astype(np.float64), method="average", metric="cosine")
    raw = fcluster(tree, t=1.0 - threshold, criterion="distance")
    order: dict[int, int] = {}
    return [order.setdefault(int(label), len(order)) for label in raw]


def mean_voice(vectors: Iterable[np.ndarray]) -> np.ndarray | None:
    """The unit-length mean of voice embeddings (a dataset's or a group's voice)."""
    stacked = [v for v in vectors if v is not None]
    if not stacked:
        return None
    mean = np.mean(stacked, axis=0)
    norm = np.linalg.norm(mean)
    return mean / norm if norm > 0 else None


@dataclass
class VoiceGroups:
    """Clips grouped by voice: ``groups`` lists clip ids per voice, largest first."""

    groups: list[list[int]] = field(default_factory=list)
    similarity_to_main: dict[int, float] = field(default_factory=dict)

    @property
    def main(self) -> set[int]:
        return set(self.groups[0]) if self.groups else set()

    def summary(self) -> dict[str, Any]:
        """``{"distinct", "clips_with_voice", "main_voice_clips"}`` for the dataset page and API."""
        return {"distinct": len(self.groups), "clips_with_voice": sum(len(g) for g in self.groups),
                "main_voice_clips": len(self.groups[0]) if self.groups else 0}


def group_voices(clips: Iterable[Any], threshold: float = OTHER_SPEAKER_SIMILARITY) -> VoiceGroups:
    """Group the clips that carry a voice embedding; see the module docstring."""
    ids, vectors = [], []
    for clip in clips:
        vector = clip_voice(clip)
        if vector is not None:
            ids.append(clip.id)
            vectors.append(vector)
    if not vectors:
        return VoiceGroups()
    labels = cluster_voices(vectors, threshold)
    members: dict[int, list[int]] = {}
    for clip_id, label in zip(ids, labels, strict=True):
        members.setdefault(int(label), []).append(clip_id)
    groups = sorted(members.values(), key=lambda g: (-len(g), min(g)))
    by_id = dict(zip(ids, vectors, strict=True))
    main = mean_voice(by_id[i] for i in groups[0])
    similarity = {i: float(np.dot(by_id[i], main)) for i in ids} if main is not None else {}
    return VoiceGroups(groups, similarity)
