"""Speech made on the spot with the ``espeak-ng`` binary, for the benchmark and the tests.

espeak-ng is a formant synthesiser: robotic, but deterministic, offline and with many voice
variants (``en-us+m3``, ``en-us+f4``, ...), which is what measuring and testing need.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave

import numpy as np

from worker.speech.audio import SAMPLE_RATE, to_mono_16k

BENCH_SENTENCES = (
    "please call me tomorrow morning",
    "i would like a cup of coffee",
    "we are going to the store",
    "the children are playing in the park",
    "open the door and close the window",
    "i need to buy some bread and milk",
    "it is raining outside",
    "can you help me with this",
)


def espeak_available() -> bool:
    """True when the ``espeak-ng`` binary is on the PATH."""
    return shutil.which("espeak-ng") is not None


def espeak(text: str, voice: str = "en-us", speed: int = 150, pitch: int = 50) -> np.ndarray:
    """``text`` spoken by espeak-ng as 16 kHz mono float32."""
    command = ["espeak-ng", "--stdout", "-v", voice, "-s", str(speed), "-p", str(pitch), text]
    raw = subprocess.run(command, capture_output=True, check=True, timeout=120).stdout
    with wave.open(io.BytesIO(raw)) as wav:
        rate = wav.getframerate()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return to_mono_16k(pcm.astype(np.float32) / 32768.0, rate)


def speech_of_length(seconds: float, voice: str = "en-us", pause_s: float = 0.5) -> np.ndarray:
    """Whole sentences with pauses, as many as fit in ``seconds``, padded with silence to it."""
    pieces = [np.concatenate([espeak(s, voice), np.zeros(int(pause_s * SAMPLE_RATE), np.float32)])
              for s in BENCH_SENTENCES]
    total = int(seconds * SAMPLE_RATE)
    out, used, index = [], 0, 0
    while used + pieces[index % len(pieces)].size <= total:
        out.append(pieces[index % len(pieces)])
        used += out[-1].size
        index += 1
    out.append(np.zeros(total - used, np.float32))
    return np.concatenate(out)
