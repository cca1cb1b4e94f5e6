"""Words with times and transcripts (their text is compared by :mod:`core.recipe.transcripts`).

A :class:`Word` is one recognised or aligned word: its text, start and end in seconds from
the start of the audio, and a confidence in 0..1 (a posterior probability where the backend
gives one). A :class:`Transcript` is the text plus its words.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Word:
    """One word and where it was spoken: ``start_s``/``end_s`` in seconds, ``confidence`` 0..1."""

    word: str
    start_s: float
    end_s: float
    confidence: float = 1.0

    def to_dict(self) -> dict:
        """JSON-ready dict with times rounded to milliseconds."""
        return {"word": self.word, "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
                "confidence": round(float(self.confidence), 3)}


@dataclass
class Transcript:
    """Recognised text and its words in time order."""

    text: str
    words: list[Word] = field(default_factory=list)

    def to_dict(self) -> dict:
        """``{"text", "words": [...]}`` as the CLI prints it."""
        return {"text": self.text, "words": [w.to_dict() for w in self.words]}


def words_between(words: list[Word], start_s: float, end_s: float) -> list[Word]:
    """Words whose middle lies in ``[start_s, end_s)``."""
    return [w for w in words if start_s <= (w.start_s + w.end_s) / 2 < end_s]


def as_dicts(words: list[Word]) -> list[dict]:
    """Every word as :meth:`Word.to_dict`."""
    return [w.to_dict() for w in words]


def from_dict(data: dict) -> Word:
    """A :class:`Word` from the dict form (as read back from JSON)."""
    return Word(str(data["word"]), float(data["start_s"]), float(data["end_s"]),
                float(data.get("confidence", 1.0)))


__all__ = ["Word", "Transcript", "words_between", "as_dicts", "from_dict"]
