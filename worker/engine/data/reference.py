"""The ``reference_voice`` mode's references: which clip conditions which, and its audio tokens.

:func:`reference_plan` reads ``.precomputed/reference_pairs.json`` (:data:`core.names.REFERENCE_PAIRS_NAME`)
or, when it is missing or made for other clips, makes it: each cached clip's own audio (from the
metadata file next to the cache, ``dataset.jsonl`` as the studio writes it), cut to the seconds
its audio latents cover, is embedded with the speech layer's GE2E encoder
(:mod:`worker.speech.speaker`) and its seconds of speech counted (what is left once the
encoder's voice activity trimming drops the silences); :func:`core.recipe.reference_pairs.build_pairs`
then chooses the pairs. :class:`ReferenceAudio` gives a batch's references as packed audio
tokens (cut to :data:`core.recipe.reference_pairs.REFERENCE_MAX_S`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from core.files import atomic_write
from core.names import REFERENCE_PAIRS_NAME
from core.recipe.reference_pairs import REFERENCE_MAX_S, ClipVoice, PairPlan, build_pairs
from worker.engine.data.dataset import AUDIO_LATENTS_PER_SECOND, DatasetError, PrecomputedDataset

METADATA_NAME = "dataset.jsonl"
MIN_EMBED_SAMPLES = 1600  # 0.1 s at 16 kHz: less speech than that has no voice to embed


def clip_voice(name: str, audio_path: Path, seconds: float) -> ClipVoice:
    """The voice of the first ``seconds`` of ``audio_path`` (what the cache trains on)."""
    from worker.speech.audio import SAMPLE_RATE, load_audio
    from worker.speech.speaker import embed_voice, get_encoder

    wav = load_audio(audio_path, max_seconds=seconds + 1.0)[: int(round(seconds * SAMPLE_RATE))]
    resemblyzer = get_encoder()[0]
    speech = resemblyzer.preprocess_wav(wav, source_sr=SAMPLE_RATE)
    if speech.size < MIN_EMBED_SAMPLES:
        return ClipVoice(name, None, speech.size / SAMPLE_RATE)
    embedding = embed_voice(wav, SAMPLE_RATE)
    return ClipVoice(name, [float(x) for x in embedding], speech.size / SAMPLE_RATE)


def _cached_seconds(root: Path, name: str) -> float:
    entry = torch.load(root / "audio_latents" / name, map_location="cpu", weights_only=True)
    return entry["latents"].shape[1] / AUDIO_LATENTS_PER_SECOND


def measure_voices(metadata: Path, root: Path, names: list[str]) -> list[ClipVoice]:
    """One :class:`ClipVoice` per cached clip named in ``metadata``."""
    from core.recipe.metadata import read_metadata
    from worker.engine.data.preprocess import entry_name

    wanted, base, voices = set(names), metadata.parent, []
    for entry in read_metadata(metadata):
        video = entry.video_path(base)
        audio = entry.audio_path(base) or video
        if video is None or audio is None:
            continue
        name = entry_name(video, base).as_posix()
        if name in wanted:
            voices.append(clip_voice(name, audio, _cached_seconds(root, name)))
    missing = wanted - {voice.name for voice in voices}
    if missing:
        raise DatasetError(f"{metadata} names no source for cached clips {', '.join(sorted(missing)[:5])}: "
                           "re-run preprocessing from the dataset's metadata file.")
    return voices


def reference_plan(root: Path, names: list[str], *, metadata: Path | None = None,
                   on_log: Callable[[str, str], None] | None = None) -> PairPlan:
    """The pairs of the clips ``names`` of the cache ``root`` (read, or made and stored)."""
    path = root / REFERENCE_PAIRS_NAME
    if path.is_file():
        try:
            plan = PairPlan.from_json(path.read_text())
        except (ValueError, KeyError, TypeError):
            plan = None
        if plan is not None and set(plan.pairs) | set(plan.unpaired) == set(names) \
                and set(plan.pairs.values()) <= set(names):
            return plan
    metadata = metadata or root.parent / METADATA_NAME
    if not metadata.is_file():
        raise DatasetError(f"reference_voice needs the clips' own audio to pair them by voice: no {metadata.name} "
                           f"next to {root}. Preprocess from the dataset's metadata file there.")
    plan = build_pairs(measure_voices(metadata, root, names))
    atomic_write(path, lambda tmp: tmp.write_text(plan.to_json()))
    if on_log is not None:
        on_log("info", f"Reference pairs chosen by voice for {len(plan.pairs)} clips ({path.name}).")
    return plan


class ReferenceAudio:
    """A batch's reference audio tokens: each dataset index's reference clip, packed."""

    def __init__(self, dataset: PrecomputedDataset, plan: PairPlan):
        problems = plan.problems()
        if problems:
            raise DatasetError(
                f"reference_voice: {len(problems)} clip(s) have no reference clip of the same voice: "
                + "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")
                + ". Add another clip of that speaker or remove the clip.")
        position = {name: index for index, name in enumerate(dataset.names)}
        self.dataset = dataset
        self.plan = plan
        self.reference_index = [position[plan.pairs[name]] for name in dataset.names]

    def reference_name(self, index: int) -> str:
        """The reference clip's cache name of dataset clip ``index``."""
        return self.dataset.names[self.reference_index[index]]

    def tokens(self, indices: list[int], device, dtype: torch.dtype) -> torch.Tensor:
        """``[B, N_ref, 128]`` packed audio tokens of the references of ``indices``, all cut to the
        shortest one (and to :data:`REFERENCE_MAX_S`)."""
        from diffusers import LTX2Pipeline

        audios = [self.dataset[self.reference_index[i]].audio for i in indices]
        if any(audio is None for audio in audios):
            raise DatasetError("reference_voice needs audio latents for every clip (with_audio on)")
        frames = min(min(audio.shape[1] for audio in audios), int(REFERENCE_MAX_S * AUDIO_LATENTS_PER_SECOND))
        stacked = torch.stack([audio[:, :frames] for audio in audios]).to(device=device, dtype=torch.float32)
        return LTX2Pipeline._pack_audio_latents(stacked).to(dtype)

    def prepend(self, transformer, batch, inputs, indices: list[int]):
        """``(batch, inputs)`` of dataset clips ``indices`` with their references in front
        (:func:`worker.engine.step.reference.with_reference`)."""
        from worker.engine.step.reference import with_reference

        return with_reference(transformer, batch, inputs, self.tokens(indices, inputs.noisy_audio.device,
                                                                       inputs.noisy_audio.dtype))


def reference_source(config, dataset: PrecomputedDataset, on_log=None) -> ReferenceAudio | None:
    """The run's :class:`ReferenceAudio` in ``reference_voice`` mode, else None."""
    from core.recipe.modes import MODE_REFERENCE_VOICE

    if config.training.mode != MODE_REFERENCE_VOICE:
        return None
    return ReferenceAudio(dataset, reference_plan(dataset.root, list(dataset.names), on_log=on_log))
