"""Comparing words: the normalisation every comparison uses, and the word error rate.

Both texts are normalised first (lower case, straight apostrophes, punctuation and hyphens
turned into spaces), then compared word by word with a Levenshtein distance: (substitutions +
deletions + insertions) / words in the reference. Pure Python: the clip findings (web and
worker) and the speech layer's alignment, CLI and sample metrics all compare words this way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})
_NOT_WORD = re.compile(r"[^\w'\s-]+")
_HYPHENS = re.compile(r"(?<=\w)-(?=\w)")


def normalise_text(text: str) -> str:
    """Lower case, curly apostrophes made straight, punctuation and hyphens turned into spaces."""
    text = text.translate(_APOSTROPHES).lower()
    text = _HYPHENS.sub(" ", text)
    text = _NOT_WORD.sub(" ", text).replace("_", " ").replace("-", " ")
    tokens = [t.strip("'") for t in text.split()]
    return " ".join(t for t in tokens if t)


def tokenize(text: str) -> list[str]:
    """The words of ``text`` after :func:`normalise_text`."""
    return normalise_text(text).split()


@dataclass(frozen=True)
class WerResult:
    """Errors by kind and the rate; ``wer`` is 0.0 for a perfect match, may exceed 1.0."""

    wer: float
    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"wer": round(self.wer, 4), "substitutions": self.substitutions, "deletions": self.deletions,
                "insertions": self.insertions, "reference_words": self.reference_words}


def word_errors(reference: str, hypothesis: str) -> WerResult:
    """Edit operations turning ``reference`` into ``hypothesis``, counted by kind."""
    ref, hyp = tokenize(reference), tokenize(hypothesis)
    # each cell: (cost, substitutions, deletions, insertions); ties prefer fewer substitutions
    previous = [(j, 0, 0, j) for j in range(len(hyp) + 1)]
    for i, ref_word in enumerate(ref, 1):
        current = [(i, 0, i, 0)]
        for j, hyp_word in enumerate(hyp, 1):
            c, s, d, n = previous[j - 1]
            match = (c, s, d, n) if ref_word == hyp_word else (c + 1, s + 1, d, n)
            c, s, d, n = previous[j]
            delete = (c + 1, s, d + 1, n)
            c, s, d, n = current[j - 1]
            insert = (c + 1, s, d, n + 1)
            current.append(min(match, delete, insert))
        previous = current
    cost, subs, dels, ins = previous[-1]
    rate = cost / len(ref) if ref else float(len(hyp) > 0)
    return WerResult(rate, subs, dels, ins, len(ref))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(S + D + I) / N after normalising case and punctuation."""
    return word_errors(reference, hypothesis).wer


def corpus_wer(pairs: list[tuple[str, str]]) -> float:
    """Word error rate over many ``(reference, hypothesis)`` pairs (errors and words summed)."""
    results = [word_errors(r, h) for r, h in pairs]
    words = sum(r.reference_words for r in results)
    errors = sum(r.substitutions + r.deletions + r.insertions for r in results)
    return errors / words if words else 0.0
