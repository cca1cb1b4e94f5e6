"""Findings that depend on more than one clip's file: recomputed from stored analyses.

A clip's findings follow from its stored analysis (:mod:`core.media.pipeline`), the dataset's
buckets, the other clips' content hashes (``duplicate_clip``) and its caption's transcript
(``missing_transcript``). Whenever one of those changes, :func:`refresh_dataset_findings`
recomputes every clip of the dataset cheaply (no decoding) and sets ready/rejected.
"""

from __future__ import annotations

from collections import defaultdict

from core.media.findings import ClipFinding, clip_status, compute_findings
from core.models import Clip, ClipStatus, Dataset

ANALYSED_STATES = (ClipStatus.ready.value, ClipStatus.rejected.value)


def _other_hashes(clip: Clip, by_hash: dict[str, list[Clip]]) -> dict[str, str]:
    others = [c for c in by_hash.get(clip.content_hash, []) if c is not clip]
    return {clip.content_hash: f"'{others[0].original_name}' (clip #{others[0].id})"} if others else {}


def clip_findings(clip: Clip, other_hashes: dict[str, str]) -> list[dict]:
    """Findings of one clip; before analysis only ``duplicate_clip`` can be known."""
    if clip.analysis:
        transcript = clip.caption.transcript if clip.caption is not None else None
        return compute_findings(clip.analysis, clip.dataset.buckets, other_hashes, transcript)
    if other_hashes:
        other = other_hashes[clip.content_hash]
        return [ClipFinding(
            "duplicate_clip",
            f"This file is byte-for-byte the same as {other} in this dataset; it would be trained "
            "twice as often. Delete one of them.",
            {"content_hash": clip.content_hash, "duplicate_of": other},
        ).to_dict()]
    return []


def refresh_dataset_findings(dataset: Dataset) -> None:
    """Recompute findings (and ready/rejected) of every clip in ``dataset``; the caller commits."""
    by_hash: dict[str, list[Clip]] = defaultdict(list)
    for clip in dataset.clips:
        by_hash[clip.content_hash].append(clip)
    for clip in dataset.clips:
        findings = clip_findings(clip, _other_hashes(clip, by_hash))
        clip.findings = findings
        if clip.status in ANALYSED_STATES:
            clip.status = clip_status(findings)
