"""Read the ``.precomputed`` cache (official ltx-trainer layout) into training batches.

One sample is ``latents/<name>.pt`` (normalised video latents ``[128, F', H', W']``), the
same-named ``audio_latents/<name>.pt`` (normalised audio latents ``[8, T, 16]``) and
``conditions/<name>.pt`` (text). For the text the trainer prefers our cached connector outputs
(``connector_video_embeds`` ...); a cache with only the official keys (features before the
connectors) is run through the frozen connectors once per sample, on load.

A sample without audio latents is a hard error for an audio-video run (a silent drop is how
other tools end up training without audio).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from worker.engine.step.flow import FlowBatch

PRECOMPUTED_DIRNAME = ".precomputed"
PREPROCESS_REPORT = "preprocess_report.json"  # written by worker.engine.data.preprocess
CONNECTOR_KEYS = ("connector_video_embeds", "connector_audio_embeds", "connector_attention_mask")
AUDIO_LATENTS_PER_SECOND = 25.0
OFFICIAL_TEXT_KEYS = ("video_prompt_embeds", "audio_prompt_embeds", "prompt_attention_mask")


class DatasetError(ValueError):
    """The cache cannot be trained on; the message names the file and what to do."""


@dataclass
class CachedSample:
    """One training sample, unbatched, on the CPU."""

    name: str
    video: torch.Tensor  # [128, F', H', W']
    audio: torch.Tensor | None  # [8, T, 16]
    video_text: torch.Tensor  # [L, Dv]
    audio_text: torch.Tensor  # [L, Da]
    text_mask: torch.Tensor  # [L]
    fps: float


def find_precomputed_root(path: str | Path) -> Path:
    """``path`` itself if it holds ``latents/``, else ``path/.precomputed``."""
    root = Path(path)
    if (root / "latents").is_dir():
        return root
    if (root / PRECOMPUTED_DIRNAME / "latents").is_dir():
        return root / PRECOMPUTED_DIRNAME
    raise DatasetError(
        f"No preprocessed data under {root}: expected {root}/.precomputed/latents/*.pt. "
        "Run `avlora preprocess` first."
    )


def cache_preset(path: str | Path) -> str | None:
    """The model preset the cache under ``path`` was made with (its ``preprocess_report.json``),
    or None when it has no readable report (a cache from another tool)."""
    report = find_precomputed_root(path) / PREPROCESS_REPORT
    try:
        preset = json.loads(report.read_text()).get("preset")
    except (OSError, ValueError, AttributeError):
        return None
    return preset if isinstance(preset, str) and preset else None


def check_cache_model(path: str | Path, model: str) -> None:
    """Refuse a cache made for another model: its latents come from that model's VAEs and its
    caption features from that model's text encoder (a 2.3 cache never trains 2.5, nor toy toy-2.5)."""
    made_with = cache_preset(path)
    if made_with is not None and made_with != model:
        raise DatasetError(
            f"The cache in {find_precomputed_root(path)} was made for model '{made_with}', but the config trains "
            f"'{model}': a cache only trains the model it was made with. Set model: {made_with} in the config, "
            f"or preprocess the clips again with `avlora preprocess --preset {model}` into another folder."
        )


def _load(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a truncated or foreign file
        raise DatasetError(f"{path} could not be read ({exc}); re-run preprocessing with --overwrite.") from exc


class PrecomputedDataset:
    """The samples of one ``.precomputed`` directory, in sorted name order."""

    def __init__(self, path: str | Path, *, with_audio: bool = True, connectors=None):
        self.root = find_precomputed_root(path)
        self.with_audio = with_audio
        self.connectors = connectors
        self.names = sorted(
            str(p.relative_to(self.root / "latents"))
            for p in (self.root / "latents").rglob("*.pt")
        )
        if not self.names:
            raise DatasetError(f"{self.root}/latents holds no .pt files; run `avlora preprocess` first.")
        problems = []
        for name in self.names:
            if not (self.root / "conditions" / name).is_file():
                problems.append(f"conditions/{name} is missing")
            if with_audio and not (self.root / "audio_latents" / name).is_file():
                problems.append(f"audio_latents/{name} is missing (the clip's audio was not encoded)")
        if problems:
            raise DatasetError(
                f"The cache in {self.root} is incomplete: " + "; ".join(problems[:5])
                + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")
                + ". Re-run preprocessing; clips without usable audio cannot train an audio-video LoRA."
            )
        self._memo: dict[int, CachedSample] = {}

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> CachedSample:
        if index not in self._memo:
            self._memo[index] = self._read(self.names[index])
        return self._memo[index]

    def _read(self, name: str) -> CachedSample:
        video_file = self.root / "latents" / name
        video_entry = _load(video_file)
        video = video_entry["latents"]
        if video.ndim != 4:
            raise DatasetError(f"{video_file}: latents must be [C, F, H, W], got {tuple(video.shape)}")
        audio = None
        if self.with_audio:
            audio_file = self.root / "audio_latents" / name
            audio = _load(audio_file)["latents"]
            if audio.ndim != 3:
                raise DatasetError(f"{audio_file}: latents must be [C, T, M], got {tuple(audio.shape)}")
        video_text, audio_text, mask = self._text(self.root / "conditions" / name)
        fps = float(video_entry.get("fps", 24.0))
        return CachedSample(name, video, audio, video_text, audio_text, mask, fps)

    def _text(self, path: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        entry = _load(path)
        if all(k in entry for k in CONNECTOR_KEYS):
            return tuple(entry[k] for k in CONNECTOR_KEYS)  # type: ignore[return-value]
        if all(k in entry for k in OFFICIAL_TEXT_KEYS) and self.connectors is not None:
            from worker.engine.data.text import connect_features

            dtype = next(self.connectors.parameters()).dtype
            device = next(self.connectors.parameters()).device
            with torch.no_grad():
                video, audio, mask = connect_features(
                    self.connectors,
                    entry["video_prompt_embeds"][None].to(device, dtype),
                    entry["audio_prompt_embeds"][None].to(device, dtype),
                    entry["prompt_attention_mask"][None].to(device),
                )
            return video[0].cpu(), audio[0].cpu(), mask[0].cpu()
        raise DatasetError(f"{path} has neither the connector outputs nor the official text keys.")


def epoch_order(num_samples: int, epoch: int, seed: int) -> list[int]:
    """The sample order of one epoch: a permutation fixed by (seed, epoch), so a resumed run
    sees the same order as an uninterrupted one."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_samples, generator=generator).tolist()


def batch_indices(step: int, batch_size: int, num_samples: int, seed: int) -> list[int]:
    """Sample indices of optimizer step ``step`` (0-based)."""
    indices = []
    for slot in range(step * batch_size, (step + 1) * batch_size):
        epoch, position = divmod(slot, num_samples)
        indices.append(epoch_order(num_samples, epoch, seed)[position])
    return indices


def collate(samples: list[CachedSample], device: torch.device | str, dtype: torch.dtype) -> FlowBatch:
    """Stack samples of one shape into a model-ready :class:`FlowBatch` (packed tokens)."""
    from diffusers import LTX2Pipeline

    shapes = {tuple(s.video.shape) for s in samples}
    if len(shapes) != 1:
        raise DatasetError(
            f"A batch mixes video latent shapes {sorted(shapes)}: use batch_size 1 with several buckets."
        )
    video = torch.stack([s.video for s in samples]).to(device=device, dtype=torch.float32)
    _, _, frames, height, width = video.shape
    video_tokens = LTX2Pipeline._pack_latents(video, 1, 1).to(dtype)
    audio_tokens = None
    # without audio latents: as many audio tokens as the clip's duration gives (25 per second)
    audio_frames = round(((frames - 1) * 8 + 1) / samples[0].fps * AUDIO_LATENTS_PER_SECOND)
    if samples[0].audio is not None:
        audio = torch.stack([s.audio for s in samples]).to(device=device, dtype=torch.float32)
        audio_frames = audio.shape[2]
        audio_tokens = LTX2Pipeline._pack_audio_latents(audio).to(dtype)
    return FlowBatch(
        video=video_tokens,
        audio=audio_tokens,
        video_text=torch.stack([s.video_text for s in samples]).to(device=device, dtype=dtype),
        audio_text=torch.stack([s.audio_text for s in samples]).to(device=device, dtype=dtype),
        text_mask=torch.stack([s.text_mask for s in samples]).to(device=device),
        latent_frames=frames,
        latent_height=height,
        latent_width=width,
        fps=samples[0].fps,
        audio_frames=audio_frames,
    )
