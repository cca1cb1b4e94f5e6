"""Model presets: what each named model is, without loading anything.

A preset names one LTX-2 family model: ``toy`` / ``toy-2.0`` / ``toy-2.5`` (the real diffusers
architecture at tiny size with random weights, built offline) and ``ltx-2.3`` / ``ltx-2`` /
``ltx-2.5`` (the real weights, read from MODEL_DIR). The facts here are what preprocessing, training and the web form need to know
before a model is loaded (sample rates, mel settings, prompt length). Pure Python: no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.names import MODEL_PRESETS


@dataclass(frozen=True)
class PresetInfo:
    """Facts about one model preset.

    ``version`` is the LTX generation ("2.3", "2.0" or "2.5"); ``audio_sample_rate`` is the vocoder's
    output rate (what decoded audio plays at); ``mel_*`` describe the log-mel the audio VAE
    encodes; ``max_sequence_length`` is the number of text tokens a caption is padded to.
    """

    name: str
    version: str
    is_toy: bool
    description: str
    audio_sample_rate: int
    mel_sample_rate: int = 16000
    mel_hop_length: int = 160
    mel_bins: int = 64
    max_sequence_length: int = 1024
    default_fps: float = 24.0
    single_file_names: tuple[str, ...] = ()

    @property
    def is_ltx23(self) -> bool:
        """True for the LTX-2.3 architecture (needs ``sigma``/``audio_sigma`` in the forward)."""
        return self.version == "2.3"


PRESETS: dict[str, PresetInfo] = {
    "toy": PresetInfo(
        name="toy",
        version="2.3",
        is_toy=True,
        description="LTX-2.3 architecture at tiny size, random weights (tests, embedded default)",
        audio_sample_rate=48000,
        max_sequence_length=64,
    ),
    "toy-2.0": PresetInfo(
        name="toy-2.0",
        version="2.0",
        is_toy=True,
        description="LTX-2.0 architecture at tiny size, random weights",
        audio_sample_rate=24000,
        max_sequence_length=64,
    ),
    "toy-2.5": PresetInfo(
        name="toy-2.5",
        version="2.5",
        is_toy=True,
        description="LTX-2.5 architecture at tiny size, random weights",
        audio_sample_rate=48000,
        max_sequence_length=64,
    ),
    "ltx-2.3": PresetInfo(
        name="ltx-2.3",
        version="2.3",
        is_toy=False,
        description="Lightricks LTX-2.3 22B (weights from MODEL_DIR)",
        audio_sample_rate=48000,
        single_file_names=("ltx-2.3-22b-dev.safetensors", "ltx-2.3-22b-distilled.safetensors"),
    ),
    "ltx-2": PresetInfo(
        name="ltx-2",
        version="2.0",
        is_toy=False,
        description="Lightricks LTX-2 19B (weights from MODEL_DIR)",
        audio_sample_rate=24000,
        single_file_names=("ltx-2-19b-dev.safetensors", "ltx-2-19b-distilled.safetensors"),
    ),
    "ltx-2.5": PresetInfo(
        name="ltx-2.5",
        version="2.5",
        is_toy=False,
        description="Lightricks LTX-2.5 22B (weights from MODEL_DIR)",
        audio_sample_rate=48000,
        single_file_names=(
            "ltx-2.5-22b-dev-transformer-bf16.safetensors",
            "ltx-2.5-22b-distilled-transformer-bf16.safetensors",
        ),
    ),
}
assert tuple(PRESETS) == MODEL_PRESETS, "core/presets.py PRESETS must list core.names.MODEL_PRESETS, in order"


class UnknownPreset(ValueError):
    """A preset name that is not in ``PRESETS``."""


def get_preset(name: str) -> PresetInfo:
    """The ``PresetInfo`` for ``name``; raises ``UnknownPreset`` listing the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownPreset(
            f"unknown model preset {name!r}; choose one of: {', '.join(MODEL_PRESETS)}"
        ) from None


def is_toy_model(name: str | None) -> bool:
    """True for a toy preset (random weights: everything it decodes or renders is noise by design)."""
    info = PRESETS.get(name or "")
    return bool(info and info.is_toy)


def full_size_of(name: str) -> str:
    """The full-size preset with the architecture of preset ``name`` (itself when not a toy)."""
    info = get_preset(name)
    return next(other.name for other in PRESETS.values() if not other.is_toy and other.version == info.version)


def toy_dir(info: PresetInfo, data_dir: Path) -> Path:
    """Where the toy preset ``info`` is saved under ``data_dir`` (built there on first use)."""
    return Path(data_dir) / "models" / info.name
