"""A rough pronunciation from spelling, for words missing from PocketSphinx's dictionary.

Without a grapheme-to-phoneme model we map letters and common letter pairs to the CMU
(ARPAbet) phones of the en-US acoustic model, and spell digits with the dictionary's own
pronunciation of each digit's name. The guess is crude ("zorblax" -> ``Z AO R B L AE K S``),
but alignment only needs a plausible phone sequence of about the right length to place the
word between its neighbours.
"""

from __future__ import annotations

from collections.abc import Callable

_PAIRS = {
    "ch": "CH", "sh": "SH", "th": "TH", "ph": "F", "ck": "K", "ng": "NG", "qu": "K W", "wh": "W",
    "kn": "N", "wr": "R", "gh": "", "ee": "IY", "ea": "IY", "oo": "UW", "ou": "AW", "ow": "OW",
    "ai": "EY", "ay": "EY", "oa": "OW", "oi": "OY", "oy": "OY", "au": "AO", "aw": "AO",
    "er": "ER", "ir": "ER", "ur": "ER", "ar": "AA R", "or": "AO R",
}
_LETTERS = {
    "a": "AE", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F", "g": "G", "h": "HH", "i": "IH",
    "j": "JH", "k": "K", "l": "L", "m": "M", "n": "N", "o": "AA", "p": "P", "q": "K", "r": "R",
    "s": "S", "t": "T", "u": "AH", "v": "V", "w": "W", "x": "K S", "y": "IY", "z": "Z",
}
_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_VOWELS = set("aeiouy")
_FALLBACK_PHONE = "AH"


def _letters_to_phones(letters: str) -> list[str]:
    if len(letters) > 3 and letters.endswith("e") and letters[-2] not in _VOWELS:
        letters = letters[:-1]  # silent final e: "blaze" -> b l a z
    phones: list[str] = []
    i = 0
    while i < len(letters):
        pair = letters[i:i + 2]
        if pair in _PAIRS:
            phones.extend(_PAIRS[pair].split())
            i += 2
            continue
        if i and letters[i] == letters[i - 1] and letters[i] not in _VOWELS:
            i += 1  # doubled consonant: one sound
            continue
        phones.extend(_LETTERS.get(letters[i], "").split())
        i += 1
    return phones


def guess_phones(word: str, lookup: Callable[[str], str | None] | None = None) -> str:
    """ARPAbet phones for ``word``: letters by rule, digits by ``lookup`` of their names.

    ``lookup`` is the decoder's ``lookup_word`` (returns a phone string or ``None``).
    """
    phones: list[str] = []
    run = ""
    for char in word.lower() + " ":
        if char.isalpha() and char.isascii():
            run += char
            continue
        phones.extend(_letters_to_phones(run))
        run = ""
        if char in "0123456789":
            spoken = lookup(_DIGITS[int(char)]) if lookup else None
            phones.extend((spoken or _FALLBACK_PHONE).split())
    return " ".join(phones) or _FALLBACK_PHONE
