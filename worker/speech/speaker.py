"""Speaker embeddings: whose voice is this, and is it one voice throughout?

The default encoder is Resemblyzer's GE2E model (``pretrained.pt`` ships in the pip package):
a 3-layer LSTM over 40-band mel frames that maps speech to a unit-norm 256-d vector; the
cosine of two such vectors is high for the same voice. :func:`embed_voice` embeds a whole
clip (volume normalised, long silences shortened, as Resemblyzer prescribes); the voices within
one clip are found from one such embedding per stretch of speech (:mod:`worker.speech.turns`).

An ECAPA-TDNN encoder through SpeechBrain was planned for ``AVLORA_SPEAKER_MODEL_DIR`` but is
not part of this build: SpeechBrain 1.1 requires torchaudio, which the studio does not
install and whose wheels are built against another torch than the pinned one. Setting the
variable raises :class:`SpeakerBackendNotConfigured` with that explanation.
"""

from __future__ import annotations

import os
import sys
import threading
import types
import warnings

import numpy as np

from worker.speech.audio import SAMPLE_RATE, to_mono_16k

EMBEDDING_SIZE = 256
NOT_CONFIGURED = (
    "AVLORA_SPEAKER_MODEL_DIR is set, but the ECAPA (SpeechBrain) speaker backend is not part of "
    "this build: speechbrain needs torchaudio, whose wheels pin another torch than the studio's "
    "torch==2.13.0. Unset AVLORA_SPEAKER_MODEL_DIR to use the embedded Resemblyzer encoder.")

_encoder = None
_encoder_lock = threading.Lock()


class SpeakerBackendNotConfigured(RuntimeError):
    """The requested speaker encoder is not available in this installation."""


def check_backend(env: dict | None = None) -> None:
    """Raise :class:`SpeakerBackendNotConfigured` when an unavailable backend is asked for."""
    env = os.environ if env is None else env
    if env.get("AVLORA_SPEAKER_MODEL_DIR"):
        raise SpeakerBackendNotConfigured(NOT_CONFIGURED)


def _import_resemblyzer():
    """Import Resemblyzer; webrtcvad 2.0.10 (its dependency) still imports ``pkg_resources``,
    which setuptools >= 81 no longer has, so a stand-in is supplied for that import only."""
    try:
        import webrtcvad
    except ModuleNotFoundError as exc:
        if exc.name != "pkg_resources":
            raise
        from importlib.metadata import version

        stand_in = types.ModuleType("pkg_resources")
        stand_in.get_distribution = lambda name: types.SimpleNamespace(version=version(name))
        sys.modules["pkg_resources"] = stand_in
        try:
            import webrtcvad  # noqa: F401
        finally:
            sys.modules.pop("pkg_resources", None)
    with warnings.catch_warnings():  # its scipy.ndimage.morphology import is deprecated, not broken
        warnings.simplefilter("ignore", DeprecationWarning)
        import resemblyzer

    return resemblyzer


def get_encoder():
    """The Resemblyzer voice encoder on the CPU, loaded once per process."""
    global _encoder
    with _encoder_lock:
        if _encoder is None:
            check_backend()
            resemblyzer = _import_resemblyzer()
            encoder = resemblyzer.VoiceEncoder(device="cpu", verbose=False)
            encoder.eval()
            _encoder = (resemblyzer, encoder, threading.Lock())
        return _encoder


def embed_voice(wav: np.ndarray, sr: int) -> np.ndarray:
    """Unit-norm 256-d voice embedding of a whole clip."""
    resemblyzer, encoder, lock = get_encoder()
    audio = resemblyzer.preprocess_wav(to_mono_16k(wav, sr))
    if audio.size < SAMPLE_RATE // 10:
        raise ValueError("too little speech to embed a voice (under 0.1 s after silence removal)")
    with lock:
        embedding = encoder.embed_utterance(audio)
    return _unit(embedding)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (1.0: same direction)."""
    return float(np.dot(_unit(a), _unit(b)))


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector
