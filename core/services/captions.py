"""Captions: save the parts of a clip's caption, compose the training text, bulk edits.

The composed caption follows the recipe (``core.recipe.captions.compose_caption``):
``<trigger>, <visual>, <voice>. Speech: "<transcript>". Sounds: <sounds>.``; an empty voice or
sounds field falls back to the dataset's default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from core.errors import InvalidInput
from core.models import Caption, Clip, ClipStatus, Dataset
from core.recipe.captions import compose_caption

CAPTION_FIELDS = ("visual", "transcript", "voice", "sounds", "text")
FIELD_MAX_LENGTH = 4000


def compose_for(dataset: Dataset, parts: dict[str, str]) -> str:
    """The training caption for ``parts`` in ``dataset`` (trigger first, defaults applied)."""
    return compose_caption(
        dataset.trigger,
        visual=parts.get("visual", ""),
        voice=parts.get("voice") or dataset.default_voice,
        transcript=parts.get("transcript", ""),
        sounds=parts.get("sounds") or dataset.default_sounds,
        text_override=parts.get("text") or None,
    )


def caption_parts(clip: Clip) -> dict[str, str]:
    """The clip's caption fields (empty strings when it has no caption yet)."""
    caption = clip.caption
    return {name: (getattr(caption, name) if caption else "") or "" for name in CAPTION_FIELDS}


def composed_caption(clip: Clip) -> str:
    """What the trainer sees for ``clip`` (the trigger alone when nothing is written)."""
    if clip.caption is not None and clip.caption.composed:
        return clip.caption.composed
    return compose_for(clip.dataset, caption_parts(clip))


def caption_to_dict(clip: Clip) -> dict[str, Any]:
    """The API form of a clip's caption: its fields and the composed text."""
    data: dict[str, Any] = dict(caption_parts(clip))
    data["transcript_source"] = (clip.caption.transcript_source if clip.caption else None) or "user"
    data["composed"] = composed_caption(clip)
    data["updated_at"] = clip.caption.updated_at.isoformat() if clip.caption and clip.caption.updated_at else None
    return data


def clean_parts(values: dict[str, Any]) -> dict[str, str]:
    """Keep the known caption fields, as stripped text; raise :class:`InvalidInput` on bad ones."""
    unknown = sorted(set(values) - set(CAPTION_FIELDS))
    if unknown:
        raise InvalidInput("invalid_caption",
                           f"Unknown caption field(s) {', '.join(unknown)}: use {', '.join(CAPTION_FIELDS)}.")
    parts: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise InvalidInput("invalid_caption", f"The caption field '{name}' must be text.")
        value = value.strip()
        if len(value) > FIELD_MAX_LENGTH:
            raise InvalidInput("invalid_caption",
                               f"The caption field '{name}' is {len(value)} characters: keep it under {FIELD_MAX_LENGTH}.")
        parts[name] = value
    return parts


def require_words(dataset: Dataset, parts: dict[str, str]) -> None:
    """Refuse a caption with nothing written in it: the trainer would read the trigger alone (or
    the dataset's defaults), the same for every clip, and learn nothing about this one. Saving
    it used to say "Caption saved." as if the clip were done."""
    if any(parts.get(name, "").strip() for name in CAPTION_FIELDS):
        return
    raise InvalidInput(
        "empty_caption",
        f"Nothing is written in this caption: the trainer would read only the trigger '{dataset.trigger}'. "
        "Write what the clip shows (visual description) and the words spoken (transcript).",
        {"missing": ["visual", "transcript"]})


def _apply(clip: Clip, parts: dict[str, str]) -> None:
    if clip.caption is None:
        clip.caption = Caption(**{name: "" for name in CAPTION_FIELDS})
    for name, value in parts.items():
        setattr(clip.caption, name, value)
    clip.caption.composed = compose_for(clip.dataset, caption_parts(clip))


def save_caption(session: Session, clip: Clip, values: dict[str, Any]) -> Clip:
    """Store the given caption fields (others keep their value), recompose, refresh findings."""
    from core.services.clip_findings import refresh_dataset_findings

    values = dict(values)
    confirm = values.pop("transcript_source", None)
    if confirm not in (None, "user"):
        raise InvalidInput("invalid_caption", "transcript_source can only be set to 'user' (to confirm an "
                                              "automatic transcript); the recogniser sets 'auto' itself.")
    before = clip.caption.transcript if clip.caption is not None else ""
    parts = clean_parts(values)
    require_words(clip.dataset, {**caption_parts(clip), **parts})
    _apply(clip, parts)
    if confirm == "user" or clip.caption.transcript != before:
        clip.caption.transcript_source = "user"
    refresh_dataset_findings(clip.dataset)
    session.commit()
    return clip


# --- save and next: the walk through the clips that can train -----------------------------------

@dataclass
class CaptionWalk:
    """Where "Save and next" goes from a clip: the next clip that can train (None after the last
    one) and the clips it passes by on the way, each with why it cannot train."""

    next_id: int | None
    passed: list[tuple[Clip, str]]


def _first_of_hash(dataset: Dataset) -> dict[str, int]:
    first: dict[str, int] = {}
    for clip in dataset.clips:
        first.setdefault(clip.content_hash, clip.id)
    return first


def why_not_trainable(clip: Clip, first_of_hash: dict[str, int]) -> str | None:
    """Why save-and-next passes ``clip`` by, in words, or None when it can train (clips still
    being checked count as trainable: they may well be)."""
    from core.services.clip_findings import finding_label

    if clip.status == ClipStatus.rejected.value:
        errors = [finding_label(f["code"]).lower() for f in clip.findings or [] if f.get("severity") == "error"]
        return "rejected: " + (", ".join(errors) or "blocked")
    if clip.status == ClipStatus.split.value:
        return "split into parts (they are trained instead)"
    first = first_of_hash.get(clip.content_hash, clip.id)
    if first != clip.id:
        return f"the same file as clip #{first}"
    return None


def caption_walk(clip: Clip) -> CaptionWalk:
    """The next clip after ``clip`` that can train, and the ones that cannot before it."""
    clips = list(clip.dataset.clips)
    first = _first_of_hash(clip.dataset)
    passed: list[tuple[Clip, str]] = []
    for other in clips[clips.index(clip) + 1:]:
        why = why_not_trainable(other, first)
        if why is None:
            return CaptionWalk(other.id, passed)
        passed.append((other, why))
    return CaptionWalk(None, passed)


def has_caption(clip: Clip) -> bool:
    """Whether anything is written in the clip's caption."""
    return any(caption_parts(clip).values())


def caption_progress(dataset: Dataset) -> dict[str, Any]:
    """How far captioning is: the clips that can train and those of them with no caption yet."""
    first = _first_of_hash(dataset)
    trainable = [c for c in dataset.clips if why_not_trainable(c, first) is None]
    return {"trainable": len(trainable), "uncaptioned": [c for c in trainable if not has_caption(c)]}


def recompose_dataset_captions(dataset: Dataset) -> None:
    """Recompose every stored caption after the trigger or a default changed (no commit)."""
    for clip in dataset.clips:
        if clip.caption is not None:
            clip.caption.composed = compose_for(dataset, caption_parts(clip))


def rejected_among(dataset: Dataset, clip_ids: list[int]) -> list[Clip]:
    """The selected clips the trainer would drop (status rejected)."""
    wanted = set(clip_ids)
    return [c for c in dataset.clips if c.id in wanted and c.status == ClipStatus.rejected.value]


def _selected(dataset: Dataset, clip_ids: list[int], skip_rejected: bool = False) -> list[Clip]:
    """The selected clips of ``dataset``; ``skip_rejected``: without the rejected ones (the page's
    bulk edit leaves them out unless asked: editing captions the trainer never reads is a slip)."""
    wanted = set(clip_ids)
    clips = [c for c in dataset.clips if c.id in wanted]
    if not clips:
        raise InvalidInput("no_clips_selected", "Select at least one clip of this dataset first.")
    kept = [c for c in clips if not (skip_rejected and c.status == ClipStatus.rejected.value)]
    if not kept:
        raise InvalidInput("only_rejected_selected",
                           f"The {len(clips)} selected clip(s) are rejected: the trainer drops them. Tick "
                           "'Include rejected clips' to edit their captions anyway.")
    return kept


def bulk_set_fields(session: Session, dataset: Dataset, clip_ids: list[int], values: dict[str, Any],
                    *, skip_rejected: bool = False) -> int:
    """Set the same caption fields (e.g. voice, sounds) on every selected clip; returns how many."""
    from core.services.clip_findings import refresh_dataset_findings

    parts = {k: v for k, v in clean_parts(values).items()}
    if not parts:
        raise InvalidInput("nothing_to_set", "Give a value for at least one caption field.")
    clips = _selected(dataset, clip_ids, skip_rejected)
    for clip in clips:
        _apply(clip, parts)
    refresh_dataset_findings(dataset)
    session.commit()
    return len(clips)


def find_replace(session: Session, dataset: Dataset, clip_ids: list[int], find: str, replace: str,
                 fields: tuple[str, ...] = CAPTION_FIELDS, *, skip_rejected: bool = False) -> int:
    """Replace ``find`` by ``replace`` in the caption fields of the selected clips.

    Returns how many clips changed. The search is case-sensitive and literal (no patterns).
    """
    from core.services.clip_findings import refresh_dataset_findings

    if not find:
        raise InvalidInput("empty_find", "Type the text to find.")
    bad = sorted(set(fields) - set(CAPTION_FIELDS))
    if bad:
        raise InvalidInput("invalid_caption", f"Unknown caption field(s) {', '.join(bad)}.")
    changed = 0
    for clip in _selected(dataset, clip_ids, skip_rejected):
        before = caption_parts(clip)
        after = {name: before[name].replace(find, replace) for name in fields}
        updates = {name: value for name, value in after.items() if value != before[name]}
        if updates:
            _apply(clip, clean_parts(updates))
            changed += 1
    refresh_dataset_findings(dataset)
    session.commit()
    return changed
