"""Trigger words and caption composition.

A trigger is one word of letters, digits, ``_`` or ``-`` (e.g. ``ema_voice``). A stored or
exported caption begins with it. The composed caption has the shape::

    <trigger>, <visual>, <voice>. Speech: "<transcript>". Sounds: <sounds>.

Empty parts are left out without leaving stray commas or quotes. Pure Python: no torch.
"""

from __future__ import annotations

import re

TRIGGER_MAX_LENGTH = 64
_TRIGGER_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
_HAS_ALNUM = re.compile(r"[A-Za-z0-9]")
_SENTENCE_END = (".", "!", "?", "…")
_TRAILING_SEPARATORS = " \t\r\n,;:"


class TriggerError(ValueError):
    """A trigger word that breaks the rule; the message says what to type instead."""


def trigger_problem(trigger: str | None) -> str | None:
    """Why ``trigger`` is not a valid trigger word, or ``None`` when it is valid."""
    if trigger is None or not trigger.strip():
        return "The trigger word is empty: choose one unique word, e.g. ema_voice."
    if trigger != trigger.strip():
        return f"The trigger word '{trigger}' has spaces around it: remove them."
    if any(ch.isspace() for ch in trigger):
        return (
            f"The trigger '{trigger}' has spaces: use one word, joining parts with _ or - "
            f"(e.g. {'_'.join(trigger.split())})."
        )
    if len(trigger) > TRIGGER_MAX_LENGTH:
        return f"The trigger word is {len(trigger)} characters long: keep it under {TRIGGER_MAX_LENGTH + 1}."
    if not _TRIGGER_PATTERN.fullmatch(trigger):
        bad = sorted({ch for ch in trigger if not _TRIGGER_PATTERN.fullmatch(ch)})
        return (
            f"The trigger '{trigger}' contains {' '.join(repr(c) for c in bad)}: "
            "use only letters A-Z, digits, _ or -."
        )
    if not _HAS_ALNUM.search(trigger):
        return f"The trigger '{trigger}' needs at least one letter or digit."
    return None


def is_valid_trigger(trigger: str | None) -> bool:
    """True when ``trigger`` follows the trigger rule."""
    return trigger_problem(trigger) is None


def validate_trigger(trigger: str | None) -> str:
    """Return ``trigger`` unchanged, or raise :class:`TriggerError` with a readable reason."""
    problem = trigger_problem(trigger)
    if problem:
        raise TriggerError(problem)
    assert trigger is not None
    return trigger


def begins_with_trigger(caption: str, trigger: str) -> bool:
    """True when ``caption`` starts with ``trigger`` as a whole word (case-sensitive).

    ``"ema_voice, a woman"`` begins with ``ema_voice``; ``"ema_voices talk"`` does not.
    """
    text = caption.lstrip()
    if not trigger or not text.startswith(trigger):
        return False
    rest = text[len(trigger):]
    return not rest or not (rest[0].isalnum() or rest[0] in "_-")


def ensure_trigger(caption: str, trigger: str | None) -> str:
    """Prepend ``"<trigger>, "`` unless the caption already begins with the trigger.

    With no trigger the caption is returned stripped; an empty caption becomes the trigger.
    """
    text = (caption or "").strip()
    if not trigger:
        return text
    validate_trigger(trigger)
    if begins_with_trigger(text, trigger):
        return text
    if not text:
        return trigger
    return f"{trigger}, {text}"


def compose_caption(
    trigger: str | None,
    visual: str | None = "",
    voice: str | None = "",
    transcript: str | None = "",
    sounds: str | None = "",
    text_override: str | None = None,
) -> str:
    """Build a training caption from its parts.

    Shape: ``<trigger>, <visual>, <voice>. Speech: "<transcript>". Sounds: <sounds>.``
    A transcript that already ends a sentence (``.``, ``!``, ``?``) gets no extra period.
    A non-blank ``text_override`` replaces the composed body but still begins with the trigger.
    """
    if trigger:
        validate_trigger(trigger)
    if text_override is not None and text_override.strip():
        return ensure_trigger(text_override, trigger)

    head_parts = [p for p in (trigger, _clean_clause(visual), _clean_clause(voice)) if p]
    sentences: list[str] = []
    if head_parts:
        sentences.append(", ".join(head_parts) + ".")
    spoken = _clean_transcript(transcript)
    if spoken:
        closing = "" if spoken.endswith(_SENTENCE_END) else "."
        sentences.append(f'Speech: "{spoken}"{closing}')
    sound_text = _clean_clause(sounds)
    if sound_text:
        sentences.append(f"Sounds: {sound_text}.")
    if trigger and sentences == [f"{trigger}."]:
        return trigger
    return " ".join(sentences)


def _clean_clause(text: str | None) -> str:
    """Collapse whitespace and drop trailing separators and periods so joins stay tidy."""
    if not text:
        return ""
    collapsed = " ".join(text.split())
    return collapsed.rstrip(_TRAILING_SEPARATORS + ".")


def _clean_transcript(text: str | None) -> str:
    """Collapse whitespace and strip one pair of surrounding quotes the person may have typed."""
    if not text:
        return ""
    collapsed = " ".join(text.split())
    for left, right in (('"', '"'), ("“", "”"), ("'", "'")):
        if len(collapsed) >= 2 and collapsed.startswith(left) and collapsed.endswith(right):
            collapsed = collapsed[1:-1].strip()
            break
    return collapsed.replace('"', "'")


_SPEECH_PART = re.compile(r'Speech:\s*["“](.*?)["”]\s*[.!?…]?\s*(?=Sounds:|$)', re.DOTALL)
_SPEECH_PART_LOOSE = re.compile(r'Speech:\s*["“](.*?)["”]', re.DOTALL)


def spoken_words(caption: str | None) -> str | None:
    """What a caption or prompt says is spoken: the text inside its ``Speech: "..."`` part, or None.

    The part may hold quotes of its own (it runs to the quote before ``Sounds:`` or the end);
    curly quotes count too. An empty part gives None.
    """
    if not caption:
        return None
    found = _SPEECH_PART.search(caption) or _SPEECH_PART_LOOSE.search(caption)
    spoken = " ".join(found.group(1).split()) if found else ""
    return spoken or None
