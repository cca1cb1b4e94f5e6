"""PocketSphinx backend: the embedded default for recognition and forced alignment (English).

PocketSphinx 5 ships its US-English acoustic model, pronunciation dictionary and language
model inside the pip package, so nothing is downloaded. Two decoders are kept, each a lazy,
lock-guarded singleton: one searching with the language model (recognition) and one that is
switched to alignment search per call (``Decoder.set_align_text``). Each call holds its
decoder's lock, because a decoder is not re-entrant.

Audio is fed as 16 kHz 16-bit PCM with a -60 dBFS noise floor added (see
:func:`worker.speech.audio.add_noise_floor`). Times come from the segmentation at 100
frames per second, then tightened to where there is sound (:mod:`worker.speech.refine`);
confidence is the word's posterior probability from the lattice.

Words missing from the dictionary cannot be aligned by PocketSphinx as they are. We give them
a pronunciation guessed from their spelling (:mod:`worker.speech.spelling`) and report them
in :attr:`Alignment.guessed`, so a caller can see which word timings rest on a guess. Words
the alignment could not place (audio that stops mid-text) are listed in
:attr:`Alignment.unaligned`; an alignment that places nothing raises :class:`AlignmentError`.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

import numpy as np

from core.recipe.transcripts import tokenize
from worker.speech.audio import SAMPLE_RATE, add_noise_floor, to_mono_16k, to_pcm16
from worker.speech.refine import snap_to_sound
from worker.speech.vad import chunk_at_pauses
from worker.speech.words import Transcript, Word

LANGUAGES = ("en", "en-us")
MIN_SAMPLES = SAMPLE_RATE // 20  # under 50 ms there is nothing to decode
_VARIANT = re.compile(r"\(\d+\)$")


class SphinxLanguageError(ValueError):
    """PocketSphinx was asked for a language other than English."""


class AlignmentError(RuntimeError):
    """The text could not be aligned to the audio (for example, it is not what was said)."""


@dataclass
class Alignment:
    """Aligned words; ``guessed``: words pronounced as spelled; ``unaligned``: words not placed."""

    words: list[Word]
    guessed: list[str] = field(default_factory=list)
    unaligned: list[str] = field(default_factory=list)


class _Slot:
    """A lazily created decoder and the lock that serialises its use."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.decoder = None

    def get(self):
        """The decoder, created on first use (call with ``self.lock`` held)."""
        if self.decoder is None:
            from pocketsphinx import Decoder

            self.decoder = Decoder(loglevel="FATAL")
        return self.decoder


_recognize_slot = _Slot()
_align_slot = _Slot()


def check_language(language: str | None) -> None:
    """Refuse a language the embedded model cannot recognise."""
    if language is None or language.lower().replace("_", "-") in LANGUAGES:
        return
    raise SphinxLanguageError(
        f"the embedded PocketSphinx model only knows English (en / en-us), not {language!r}; "
        "set AVLORA_ASR_MODEL_DIR to a local Whisper model directory for other languages")


def is_filler(name: str) -> bool:
    """``<s>``, ``</s>``, ``<sil>``, ``[NOISE]``, ``+SPN+`` and other non-words of a segmentation."""
    return not name or name[0] in "<[+"


def clean_word(name: str) -> str:
    """A dictionary entry without its pronunciation-variant suffix: ``read(2)`` -> ``read``."""
    return _VARIANT.sub("", name)


def _segment_words(decoder, offset_s: float) -> list[Word]:
    frame_s = 1.0 / float(decoder.config["frate"])
    words = []
    for seg in decoder.seg() or []:
        if is_filler(seg.word):
            continue
        confidence = float(min(max(seg.prob, 0.0), 1.0))
        words.append(Word(clean_word(seg.word), offset_s + seg.start_frame * frame_s,
                          offset_s + (seg.end_frame + 1) * frame_s, confidence))
    return words


def _decode(decoder, audio: np.ndarray) -> None:
    decoder.start_utt()
    decoder.process_raw(to_pcm16(audio), no_search=False, full_utt=True)
    decoder.end_utt()


class PocketSphinxRecognizer:
    """English recognition with word timings from PocketSphinx's shipped model."""

    name = "pocketsphinx"

    def transcribe(self, wav: np.ndarray, sr: int, language: str | None = None) -> Transcript:
        """Recognise ``wav`` (mono float32 at ``sr``): text and words with times."""
        check_language(language)
        clean = to_mono_16k(wav, sr)
        audio = add_noise_floor(clean)
        words: list[Word] = []
        with _recognize_slot.lock:
            decoder = _recognize_slot.get()
            for start, end in chunk_at_pauses(audio):
                if end - start < MIN_SAMPLES:
                    continue
                _decode(decoder, audio[start:end])
                words.extend(_segment_words(decoder, start / SAMPLE_RATE))
        words = snap_to_sound(words, clean)
        return Transcript(" ".join(w.word for w in words), words)

    def align(self, wav: np.ndarray, sr: int, text: str) -> Alignment:
        """Force-align ``text`` to ``wav``; see :func:`align_words`."""
        return align_words(wav, sr, text)


def _ensure_pronunciations(decoder, tokens: list[str]) -> list[str]:
    from worker.speech.spelling import guess_phones

    guessed = []
    for token in dict.fromkeys(tokens):
        if decoder.lookup_word(token) is None:
            decoder.add_word(token, guess_phones(token, decoder.lookup_word), False)
            guessed.append(token)
    return guessed


def align_words(wav: np.ndarray, sr: int, text: str) -> Alignment:
    """Where each word of ``text`` was spoken in ``wav`` (text normalised: case, punctuation).

    Raises :class:`AlignmentError` when PocketSphinx finds no path through the text.
    """
    tokens = tokenize(text)
    if not tokens:
        return Alignment([])
    clean = to_mono_16k(wav, sr)
    if clean.size < MIN_SAMPLES:
        raise AlignmentError(f"{clean.size / SAMPLE_RATE:.3f} s of audio is too little to align words to")
    audio = add_noise_floor(clean)
    with _align_slot.lock:
        decoder = _align_slot.get()
        guessed = _ensure_pronunciations(decoder, tokens)
        try:
            decoder.set_align_text(" ".join(tokens))
        except RuntimeError as exc:
            raise AlignmentError(f"PocketSphinx could not set up the alignment: {exc}") from exc
        _decode(decoder, audio)
        words = _segment_words(decoder, 0.0)
    unaligned = _unplaced(tokens, [w.word for w in words])
    if not words or unaligned is None:
        raise AlignmentError(
            f"the text could not be aligned to the audio (aligned {len(words)} of {len(tokens)} words); "
            "is it what is said in this audio?")
    return Alignment(snap_to_sound(words, clean), guessed, unaligned)


def _unplaced(tokens: list[str], placed: list[str]) -> list[str] | None:
    """Tokens missing from ``placed`` (which must follow them in order), or None if it does not.

    PocketSphinx's alignment can end before the text does, when the audio stops mid-word.
    """
    missing, position = [], 0
    for token in tokens:
        if position < len(placed) and placed[position] == token:
            position += 1
        else:
            missing.append(token)
    return missing if position == len(placed) else None
