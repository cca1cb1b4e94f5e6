"""Datasets: create, read, summarise and change their trigger, buckets and caption defaults."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import get_settings
from core.db import get_or_404, unstorable_character
from core.errors import InvalidInput
from core.media.findings import summarize_dataset
from core.models import Clip, ClipStatus, Dataset
from core.recipe.buckets import DEFAULT_BUCKETS_STRING, BucketError, coerce_buckets, format_buckets
from core.recipe.captions import TriggerError, validate_trigger

NAME_MAX_LENGTH = 200
PENDING_STATES = (ClipStatus.uploaded.value, ClipStatus.probing.value)


def clean_name(name: str | None) -> str:
    """A dataset name, stripped; raises :class:`InvalidInput` when empty or too long."""
    cleaned = " ".join((name or "").split())
    if not cleaned:
        raise InvalidInput("invalid_name", "The dataset needs a name, e.g. 'Ema talking'.")
    if len(cleaned) > NAME_MAX_LENGTH:
        raise InvalidInput("invalid_name", f"The name is {len(cleaned)} characters long: keep it under {NAME_MAX_LENGTH}.")
    return cleaned


def check_storable(where: str, value: object) -> None:
    """Refuse text the database cannot store anywhere in ``value`` (a string, or dicts and lists of them).

    For text that comes in files rather than fields (an imported metadata file, a studio.json), so
    that it is refused, naming ``where``, before anything is written (Postgres would refuse NUL
    only at the commit, after the dataset and its files were made)."""
    if isinstance(value, str):
        if character := unstorable_character(value):
            raise InvalidInput("invalid_text", f"{where} contains {character}, which the studio cannot store: "
                               "remove it and try again.", {"field": where})
    elif isinstance(value, dict):
        for key, item in value.items():
            check_storable(where, key)
            check_storable(where, item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            check_storable(where, item)


def clean_trigger(trigger: str | None) -> str:
    """A valid trigger word, or :class:`InvalidInput` with the recipe's reason."""
    try:
        return validate_trigger(trigger)
    except TriggerError as exc:
        raise InvalidInput("invalid_trigger", str(exc)) from exc


def clean_buckets(buckets: str | list | None) -> str:
    """Buckets normalised to ``"WxHxF;WxHxF"`` (the default when none are given)."""
    if buckets is None or (isinstance(buckets, str) and not buckets.strip()):
        return DEFAULT_BUCKETS_STRING
    try:
        return format_buckets(coerce_buckets(buckets))
    except BucketError as exc:
        raise InvalidInput("invalid_buckets", str(exc)) from exc


def create_dataset(session: Session, name: str, trigger: str, buckets: str | list | None = None) -> Dataset:
    """Create an empty dataset after checking its name, trigger and buckets."""
    dataset = Dataset(name=clean_name(name), trigger=clean_trigger(trigger), buckets=clean_buckets(buckets),
                      default_voice="", default_sounds="")
    session.add(dataset)
    session.commit()
    return dataset


def get_dataset(session: Session, dataset_id: int) -> Dataset:
    """The dataset with ``dataset_id`` or :class:`NotFound`."""
    return get_or_404(session, Dataset, dataset_id, "dataset")


def list_datasets(session: Session) -> list[Dataset]:
    """Every dataset, newest first."""
    return list(session.scalars(select(Dataset).order_by(Dataset.id.desc())))


def dataset_folder(dataset_id: int) -> Path:
    """Where a dataset's clips (and their images and proxies) live on disk."""
    return get_settings().data_dir / "clips" / str(dataset_id)


def error_findings(clip: Clip) -> list[dict]:
    """The findings that block ``clip`` from training."""
    return [f for f in (clip.findings or []) if f.get("severity") == "error"]


def is_pending(clip: Clip) -> bool:
    """True while a clip waits for or undergoes analysis."""
    return clip.status in PENDING_STATES


def is_being_checked(clip: Clip) -> bool:
    """Pending with a live probe job (pages keep polling only for these)."""
    from core.services.clips import probe_problem

    return is_pending(clip) and probe_problem(clip) is None


def dataset_summary(dataset: Dataset) -> dict[str, Any]:
    """N clips, M trainable, K blocked and why (grouped by code), and how many are being checked.

    Clips still waiting for analysis count in ``clips`` and ``checking`` only.
    """
    split = ClipStatus.split.value
    analysed = [(c.original_name, c.findings or []) for c in dataset.clips
                if not is_pending(c) and c.status != split]
    summary = summarize_dataset(analysed).to_dict()
    summary["clips"] = len(dataset.clips)
    summary["split"] = sum(1 for c in dataset.clips if c.status == split)  # replaced by their parts
    summary["checking"] = sum(1 for c in dataset.clips if is_being_checked(c))
    summary["not_analysed"] = sum(1 for c in dataset.clips if is_pending(c) and not is_being_checked(c))
    return summary


def dropped_clips(dataset: Dataset) -> list[dict[str, Any]]:
    """What the trainer would drop and why: one entry per blocked clip."""
    return [
        {"clip_id": c.id, "name": c.original_name, "reasons": [f["message"] for f in error_findings(c)],
         "codes": [f["code"] for f in error_findings(c)]}
        for c in dataset.clips
        if not is_pending(c) and c.status != ClipStatus.split.value and error_findings(c)
    ]


def clean_language(language: str) -> str:
    """A language code such as ``en`` or ``en-us`` (what the recogniser is told to listen for)."""
    value = (language or "").strip().lower()
    if not re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]{2,8})?", value):
        raise InvalidInput("invalid_language", f"'{language}' is not a language code: use e.g. 'en', 'de' or 'en-us'.")
    return value


def voice_summary(dataset: Dataset) -> dict[str, Any]:
    """How many distinct voices the dataset's clips hold (from their voice embeddings)."""
    from core.media.voices import group_voices

    return group_voices(dataset.clips).summary()


def dataset_to_dict(dataset: Dataset, *, with_clips: bool = True) -> dict[str, Any]:
    """The API form of a dataset (with its summary and, by default, its clips)."""
    from core.services.clips import clip_to_dict

    data: dict[str, Any] = {
        "id": dataset.id,
        "name": dataset.name,
        "trigger": dataset.trigger,
        "buckets": dataset.buckets,
        "default_voice": dataset.default_voice,
        "default_sounds": dataset.default_sounds,
        "language": dataset.language,
        "auto_transcribe": bool(dataset.auto_transcribe),
        "voices": voice_summary(dataset),
        "created_at": dataset.created_at.isoformat() if dataset.created_at else None,
        "summary": dataset_summary(dataset),
        "dropped": dropped_clips(dataset),
    }
    if with_clips:
        data["clips"] = [clip_to_dict(c) for c in dataset.clips]
    return data


def update_dataset(session: Session, dataset: Dataset, *, name: str | None = None, trigger: str | None = None,
                   buckets: str | list | None = None, default_voice: str | None = None,
                   default_sounds: str | None = None, language: str | None = None,
                   auto_transcribe: bool | None = None) -> Dataset:
    """Change a dataset's settings; captions are recomposed and findings recomputed as needed."""
    from core.services.captions import recompose_dataset_captions
    from core.services.clip_findings import refresh_dataset_findings

    if name is not None:
        dataset.name = clean_name(name)
    recompose = False
    if trigger is not None and trigger != dataset.trigger:
        dataset.trigger = clean_trigger(trigger)
        recompose = True
    if default_voice is not None:
        recompose |= default_voice.strip() != dataset.default_voice
        dataset.default_voice = default_voice.strip()
    if default_sounds is not None:
        recompose |= default_sounds.strip() != dataset.default_sounds
        dataset.default_sounds = default_sounds.strip()
    if language is not None:
        dataset.language = clean_language(language)
    if auto_transcribe is not None:
        dataset.auto_transcribe = bool(auto_transcribe)
    rebucket = False
    if buckets is not None:
        normalised = clean_buckets(buckets)
        rebucket = normalised != dataset.buckets
        dataset.buckets = normalised
    if recompose:
        recompose_dataset_captions(dataset)
    if rebucket or recompose:
        refresh_dataset_findings(dataset)
    session.commit()
    return dataset
