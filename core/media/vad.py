"""Voice activity detection with Silero VAD's ONNX model through onnxruntime.

The model file ships inside the ``silero_vad`` package (no download). We locate it without
importing that package, because its ``__init__`` imports torch and the web process imports
``app/``. onnxruntime itself is imported lazily, on the first call, so only the worker that
runs the analysis pays for it.

The "sequence" export runs many 32 ms frames per ONNX call, carrying the LSTM state between
calls; each frame is fed with the last 64 samples of the previous frame as context, as the
streaming model expects.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np

VAD_SAMPLE_RATE = 16000
FRAME_SAMPLES = 512  # 32 ms at 16 kHz: one probability per frame
CONTEXT_SAMPLES = 64
FRAMES_PER_CALL = 512
_MODEL_FILE = "silero_vad_16k_sequence.onnx"

_session = None
_session_lock = threading.Lock()


class VadUnavailableError(RuntimeError):
    """The Silero model file or onnxruntime is missing; the message says what to install."""


def silero_model_path() -> Path:
    """Path of the Silero sequence ONNX model inside the installed ``silero_vad`` package."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise VadUnavailableError("silero-vad is not installed: pip install silero-vad")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / _MODEL_FILE
    if not path.is_file():
        raise VadUnavailableError(f"silero-vad has no {_MODEL_FILE}: install silero-vad >= 6.2")
    return path


def _get_session():
    global _session
    with _session_lock:
        if _session is None:
            try:
                import onnxruntime  # lazy: only the analysing worker needs it
            except ImportError as exc:
                raise VadUnavailableError("onnxruntime is not installed: pip install onnxruntime") from exc
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            _session = onnxruntime.InferenceSession(
                str(silero_model_path()), sess_options=options, providers=["CPUExecutionProvider"]
            )
        return _session


def speech_probabilities(mono_16k: np.ndarray) -> np.ndarray:
    """Speech probability of every 32 ms frame of 16 kHz mono float audio (last frame zero-padded)."""
    audio = np.ascontiguousarray(mono_16k, dtype=np.float32).reshape(-1)
    n_frames = -(-audio.size // FRAME_SAMPLES)
    if n_frames == 0:
        return np.zeros(0, np.float32)
    frames = np.zeros((n_frames, FRAME_SAMPLES), np.float32)
    frames.reshape(-1)[: audio.size] = audio
    context = np.zeros((n_frames, CONTEXT_SAMPLES), np.float32)
    context[1:] = frames[:-1, -CONTEXT_SAMPLES:]
    model_input = np.concatenate([context, frames], axis=1)

    session = _get_session()
    hidden = np.zeros((1, 1, 128), np.float32)
    cell = np.zeros((1, 1, 128), np.float32)
    probabilities = []
    for start in range(0, n_frames, FRAMES_PER_CALL):
        block = model_input[start : start + FRAMES_PER_CALL]
        probs, hidden, cell = session.run(["speech_probs", "hn", "cn"], {"input": block, "h": hidden, "c": cell})
        probabilities.append(np.asarray(probs, np.float32).reshape(-1))
    return np.concatenate(probabilities)
