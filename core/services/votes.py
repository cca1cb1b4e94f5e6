"""Blind A/B listening: two samples of one prompt under hidden labels, the listener picks.

A trial (:func:`new_trial`) pairs two contenders (the base model or a checkpoint's LoRA sample)
for the same prompt, choosing the pair with the fewest votes so far and shuffling which is A.
The page plays them through URLs that name only the trial and the letter, so nothing gives the
labels away. :func:`cast_vote` stores ``a``, ``b`` or ``same``; :func:`vote_summary` counts wins,
losses and ties per contender.
"""

from __future__ import annotations

import random
from itertools import combinations
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import get_settings
from core.db import get_or_404
from core.errors import Conflict, InvalidInput, NotFound
from core.models import Sample, TrainingRun, Vote, utcnow
from core.names import VARIANT_BASE, VARIANT_LORA

CHOICES = ("a", "b", "same")
BLIND_VARIANTS = (VARIANT_BASE, VARIANT_LORA)


def contender(sample: Sample) -> str:
    """What a sample stands for in the summary: ``base`` or ``step N``."""
    return "base" if sample.variant == VARIANT_BASE else f"step {sample.step}"


def _pairs(run: TrainingRun) -> list[tuple[Sample, Sample]]:
    by_prompt: dict[int, list[Sample]] = {}
    for sample in run.samples:
        if sample.variant in BLIND_VARIANTS:
            by_prompt.setdefault(sample.prompt_index, []).append(sample)
    return [pair for samples in by_prompt.values() for pair in combinations(samples, 2)]


def new_trial(session: Session, run: TrainingRun, rng: random.Random | None = None) -> Vote:
    """Open a blind trial between two samples of one prompt (the least-voted pair first)."""
    rng = rng or random.Random()
    pairs = _pairs(run)
    if not pairs:
        raise Conflict("nothing_to_compare", "A blind test needs two samples of the same prompt (the base model "
                       "and a checkpoint, or two checkpoints): wait for the first checkpoint's samples.")
    counts: dict[frozenset, int] = {}
    for vote in session.scalars(select(Vote).where(Vote.run_id == run.id, Vote.choice.is_not(None))):
        key = frozenset((vote.sample_a_id, vote.sample_b_id))
        counts[key] = counts.get(key, 0) + 1
    fewest = min(counts.get(frozenset((a.id, b.id)), 0) for a, b in pairs)
    candidates = [p for p in pairs if counts.get(frozenset((p[0].id, p[1].id)), 0) == fewest]
    first, second = rng.choice(candidates)
    if rng.random() < 0.5:
        first, second = second, first
    vote = Vote(run_id=run.id, sample_a_id=first.id, sample_b_id=second.id)
    session.add(vote)
    session.commit()
    return vote


def get_vote(session: Session, vote_id: int) -> Vote:
    """The trial with ``vote_id`` or :class:`NotFound`."""
    return get_or_404(session, Vote, vote_id, "blind trial")


def cast_vote(session: Session, vote: Vote, choice: str) -> Vote:
    """Record the listener's pick (``a``, ``b`` or ``same``); a trial is decided once."""
    choice = (choice or "").strip().lower()
    if choice not in CHOICES:
        raise InvalidInput("invalid_choice", f"Pick 'a', 'b' or 'same', not {choice!r}.")
    if vote.choice is not None:
        raise Conflict("already_voted", f"Blind trial #{vote.id} was already decided ({vote.choice}): start a new one.")
    vote.choice, vote.decided_at = choice, utcnow()
    session.commit()
    return vote


def trial_audio(vote: Vote, letter: str) -> Path:
    """The wav behind letter ``a`` or ``b`` of a trial."""
    if letter not in ("a", "b"):
        raise NotFound("blind sample", letter)
    sample = vote.sample_a if letter == "a" else vote.sample_b
    data_dir = get_settings().data_dir
    path = (data_dir / sample.wav).resolve()
    if data_dir.resolve() not in path.parents or not path.is_file():
        raise NotFound("blind sample audio", f"{vote.id}/{letter}")
    return path


def vote_summary(session: Session, run_id: int) -> dict[str, Any]:
    """``{"decided", "contenders": [{"name", "step", "wins", "losses", "ties", "trials", "score"}]}``.

    ``score`` is (wins + ties / 2) / trials; contenders are ordered base first, then by step.
    """
    table: dict[str, dict[str, Any]] = {}
    decided = 0
    for vote in session.scalars(select(Vote).where(Vote.run_id == run_id, Vote.choice.is_not(None))):
        decided += 1
        names = (contender(vote.sample_a), contender(vote.sample_b))
        steps = (vote.sample_a, vote.sample_b)
        for name, sample in zip(names, steps):
            table.setdefault(name, {"name": name, "step": None if sample.variant == VARIANT_BASE else sample.step,
                                    "wins": 0, "losses": 0, "ties": 0, "trials": 0})
        for index, name in enumerate(names):
            row = table[name]
            row["trials"] += 1
            if vote.choice == "same":
                row["ties"] += 1
            elif vote.choice == "ab"[index]:
                row["wins"] += 1
            else:
                row["losses"] += 1
    for row in table.values():
        row["score"] = round((row["wins"] + row["ties"] / 2) / row["trials"], 3) if row["trials"] else None
    ordered = sorted(table.values(), key=lambda r: (r["step"] is not None, r["step"] or 0))
    return {"decided": decided, "contenders": ordered}


def trial_to_dict(vote: Vote) -> dict[str, Any]:
    """A trial as the page and API see it before deciding: no labels, only the letters' audio."""
    data = {"id": vote.id, "run_id": vote.run_id, "prompt_index": vote.sample_a.prompt_index,
            "a_url": f"/compare/blind/{vote.id}/a.wav", "b_url": f"/compare/blind/{vote.id}/b.wav",
            "choice": vote.choice}
    if vote.choice is not None:  # revealed once decided
        data["revealed"] = {"a": contender(vote.sample_a), "b": contender(vote.sample_b)}
    return data
