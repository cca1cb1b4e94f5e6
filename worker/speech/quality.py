"""Perceptual speech quality: DNSMOS P.835, a mean opinion score without a clean reference.

DNSMOS (Microsoft's Deep Noise Suppression challenge) predicts what listeners would rate a
recording on the ITU-T P.835 scales, 1 (bad) to 5 (excellent): ``SIG`` the speech itself
(distortion), ``BAK`` the background (noise, hum), ``OVRL`` the whole. Its ONNX models ship
inside the pip package ``speechmos`` (``speechmos/dnsmos_models``), whose wrapper
(:class:`speechmos.dnsmos.DNSMOS`) cuts 16 kHz mono audio into 9.01 s segments one second
apart (shorter audio is repeated to that length), runs the models on each segment and averages
the calibrated scores. Audio shorter than a segment is repeated to exactly 9.01 s here, so
it is scored as one segment (the wrapper's own doubling would give up to three overlapping
ones, three times the CPU, for the same sound). We hold one wrapper per process, created on first use under a lock (a
thread-safe lazy singleton like the speaker encoder), and serialise calls to it; the
package's module-level ``run`` is not used (it keeps an unguarded global and loops for ever on
empty audio). The wrapper computes its P.808 score with librosa, which Resemblyzer already
brings in; it also imports ``requests`` (brought in by librosa's ``pooch``).
"""

from __future__ import annotations

import os
import threading

import numpy as np

from worker.speech.audio import SAMPLE_RATE, to_mono_16k

MAX_SECONDS = 60.0  # longer audio is scored on its first minute (a 9 s segment costs ~0.5 s of CPU)
MIN_SECONDS = 0.1
SEGMENT_SECONDS = 9.01  # the models' input length (speechmos.dnsmos.INPUT_LENGTH)

_meter = None
_meter_lock = threading.Lock()


def get_meter():
    """The DNSMOS wrapper on the CPU and the lock that serialises its use, created once per process."""
    global _meter
    with _meter_lock:
        if _meter is None:
            from speechmos import dnsmos

            models = os.path.join(os.path.dirname(os.path.abspath(dnsmos.__file__)), "dnsmos_models")
            meter = dnsmos.DNSMOS(os.path.join(models, "sig_bak_ovr.onnx"), os.path.join(models, "model_v8.onnx"))
            _meter = (meter, threading.Lock())
        return _meter


def speech_quality(wav: np.ndarray, sr: int) -> dict[str, float]:
    """DNSMOS of ``wav``: ``{"quality_mos": OVRL, "quality_sig": SIG, "quality_bak": BAK}``, each 1..5.

    Raises ``ValueError`` for audio under 0.1 s or with NaN/infinite values.
    """
    audio = to_mono_16k(wav, sr)[: int(MAX_SECONDS * SAMPLE_RATE)]
    if audio.size < MIN_SECONDS * SAMPLE_RATE:
        raise ValueError(f"too little audio to rate ({audio.size / SAMPLE_RATE:.2f} s, at least {MIN_SECONDS} s)")
    if not np.isfinite(audio).all():
        raise ValueError("the audio contains NaN or infinite values")
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    segment = int(SEGMENT_SECONDS * SAMPLE_RATE)
    if audio.size < segment:
        audio = np.resize(audio, segment)  # repeated from the start, as the model's input asks
    meter, lock = get_meter()
    with lock:
        scores = meter(audio, SAMPLE_RATE, False)
    return {"quality_mos": round(float(scores["ovrl_mos"]), 3), "quality_sig": round(float(scores["sig_mos"]), 3),
            "quality_bak": round(float(scores["bak_mos"]), 3)}
