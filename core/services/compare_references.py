"""Which training clip the compare grid plays as a validation prompt's reference, and why.

A person comparing checkpoints with "the training clip" wants to hear what the LoRA should sound
like: a clean clip, saying the prompt's words when one does. So a reference is never a clip with
an error finding or an audio-quality finding (:data:`DISQUALIFYING_CODES`: clipped, too quiet,
noisy, little speech, another voice), as of the clip's findings now. Among the clean clips, one
whose transcript says the prompt's ``Speech: "..."`` words comes first; otherwise the clean clips
take turns, prompt by prompt. Each choice carries the sentence the page shows under the cell.

The references' measures (loudness, buzz, speech, voice) are taken by the ``sample_metrics`` job
like the samples' and stored on the preprocess run's ``clip_results`` item as ``metrics``
(:func:`references_to_measure`, :func:`record_reference_metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from core.models import PreprocessRun, TrainingRun
from core.recipe.captions import spoken_words
from core.recipe.transcripts import normalise_text

# Findings that make a clip a bad example of the voice, besides every error.
DISQUALIFYING_CODES = frozenset({"clipping", "low_loudness", "noisy_audio", "low_speech", "other_speaker",
                                 "several_speakers"})
USABLE_STATES = ("ok", "cached")
CLEAN = "no error or audio-quality finding"


@dataclass(frozen=True)
class Reference:
    """The chosen clip (its ``clip_results`` item; None when no clip qualifies) and why."""

    item: dict[str, Any] | None
    why: str


def _words(text: str | None) -> str:
    return normalise_text(text) if text else ""


def _turned_down(findings: list[dict]) -> list[str]:
    """The codes that rule a clip out as a reference."""
    return [f["code"] for f in findings if f.get("severity") == "error" or f.get("code") in DISQUALIFYING_CODES]


def candidates(prep: PreprocessRun | None) -> tuple[list[tuple[dict, bool]], list[str]]:
    """The clean clips with decoded audio, in snapshot order, each with whether its findings are
    known (a clip deleted since the run has none to check); and ``name (codes)`` of those ruled out."""
    if prep is None:
        return [], []
    clips = {clip.id: clip for clip in prep.dataset.clips} if prep.dataset is not None else {}
    clean, ruled_out = [], []
    for item in prep.clip_results or []:
        if not item.get("decoded_audio") or item.get("status") not in USABLE_STATES:
            continue
        clip = clips.get(item.get("clip_id"))
        codes = _turned_down(list(clip.findings or [])) if clip is not None else []
        if codes:
            ruled_out.append(f"{item.get('name', item['clip_id'])} ({', '.join(codes)})")
        else:
            clean.append((item, clip is not None))
    clean.sort(key=lambda pair: not pair[1])  # clips known to be clean before unknown ones
    return clean, ruled_out


def choose(prompt: str, index: int, clean: list[tuple[dict, bool]], ruled_out: list[str]) -> Reference:
    """The reference of the ``index``-th prompt (see the module docstring)."""
    if not clean:
        if not ruled_out:
            return Reference(None, "No training clip has decoded audio to compare with.")
        return Reference(None, "No clean training clip to compare with: " + "; ".join(ruled_out) + ".")
    wanted = _words(spoken_words(prompt))
    same = [pair for pair in clean if wanted and _words(spoken_words(pair[0].get("caption"))) == wanted]
    item, known = same[0] if same else clean[index % len(clean)]
    if same:
        why = f"Says the prompt's words; {CLEAN}."
    elif wanted:
        why = f"No clean clip says the prompt's words: a clip with {CLEAN}, for the voice."
    else:
        why = f"A clip with {CLEAN}, for the voice."
    if not known:
        why = why.rstrip(".") + " (its findings are unknown: the clip was deleted since)."
    return Reference(item, why)


def references_for(prep: PreprocessRun | None, prompts: list[str]) -> list[Reference]:
    """One :class:`Reference` per prompt."""
    clean, ruled_out = candidates(prep)
    return [choose(prompt, index, clean, ruled_out) for index, prompt in enumerate(prompts)]


def references_to_measure(run: TrainingRun, prompts: list[str]) -> list[tuple[int, str, str | None]]:
    """``(clip id, decoded audio path under DATA_DIR, caption)`` of the run's references (those of
    ``prompts`` and of its v2a clips) that have no ``metrics`` yet."""
    prep = run.preprocess_run
    if prep is None:
        return []
    chosen = {ref.item["clip_id"] for ref in references_for(prep, prompts) if ref.item is not None}
    chosen |= {s.source_clip_id for s in run.samples if s.source_clip_id is not None}
    return [(item["clip_id"], item["decoded_audio"], item.get("caption")) for item in prep.clip_results or []
            if item.get("clip_id") in chosen and item.get("decoded_audio") and not item.get("metrics")]


def record_reference_metrics(session: Session, preprocess_run_id: int, clip_id: int, metrics: dict[str, Any]) -> None:
    """Store a reference clip's measures on its ``clip_results`` item (the MFCC profile left out)."""
    prep = session.get(PreprocessRun, preprocess_run_id, with_for_update=True)
    if prep is None:
        return
    kept = {k: v for k, v in metrics.items() if k != "mfcc"}
    prep.clip_results = [{**item, "metrics": kept} if item.get("clip_id") == clip_id else item
                         for item in prep.clip_results or []]
