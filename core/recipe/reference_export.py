"""A ``reference_voice`` LoRA as ComfyUI's reference-audio workflow takes it (no torch).

ComfyUI runs such a LoRA with two core nodes (what was read: docs/corrections.md, "Reference
voice"): ``LoraLoaderModelOnly`` loads the LoRA file onto the LTX-2 model, and
``LTXVReferenceAudio`` ("LTXV Reference Audio (ID-LoRA)") takes a reference clip (an AUDIO input,
any sample rate: the node and the audio VAE resample it), encodes it with the LTX audio VAE and
puts its tokens in front of the generated audio, clean (timestep 0), at positions ending one
latent step (40 ms) before 0 — where this studio's training puts them. The node reads nothing
from the LoRA file; ComfyUI's LoRA loader maps the official keys
(``diffusion_model.<ltx-core layer>.lora_A/lora_B.weight``, no alpha key: scale 1) and not the
diffusers ``transformer.`` ones.

Here: the rule a file's keys must follow to load there (:func:`comfy_key_problems`) and what the
key report says of a reference-voice file (:func:`key_report_note`); the reference clip the export
ships (:func:`prepare_reference`): the clip the run's validation used as the reference (the first
paired clip's, :mod:`core.recipe.reference_pairs`), cut as training fed it (from its start, for
the seconds its cache covers, at most :data:`~core.recipe.reference_pairs.REFERENCE_MAX_S`),
at the audio VAE's own 16 kHz, as a 16-bit PCM wav; and the README's workflow note.
"""

from __future__ import annotations

import io
import re
import wave
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.names import REFERENCE_PAIRS_NAME
from core.recipe.architecture import BLOCK_FAMILIES
from core.recipe.modes import MODE_REFERENCE_VOICE
from core.recipe.reference_pairs import REFERENCE_MAX_S, REFERENCE_MIN_SPEECH_S, PairPlan

REFERENCE_WAV_NAME = "reference_voice.wav"
REFERENCE_RATE = 16000  # the LTX-2 audio VAE encodes a 16 kHz log-mel: what the model hears of a reference
REFERENCE_GAP_S = 0.04  # one audio latent step: the reference ends this long before the target starts
MODE_KEY = "avlora_training_mode"  # written in every checkpoint file's header
REFERENCE_INFO_KEY = "avlora_reference_audio"  # the export's note in the LoRA file's header
OFFICIAL_PREFIX = "diffusion_model."
LORA_NODE = "LoraLoaderModelOnly"
REFERENCE_NODE = "LTXVReferenceAudio"
AUDIO_VAE_NODE = "LTXVAudioVAELoader"
IDENTITY_GUIDANCE_DEFAULT = 3.0  # the node's default (ID-LoRA's --identity-guidance-scale)
_BLOCK_KEY = re.compile(r"^transformer_blocks\.\d+\.([a-z0-9_]+)\.(.+)\.lora_[AB]\.weight$")
_LISTED = 3


def comfy_key_problems(keys: Iterable[str]) -> list[str]:
    """Why some of ``keys`` would not load in ComfyUI's LTX-2 model (empty: every key would).

    ComfyUI maps ``diffusion_model.<layer>`` for each layer of its model, whose names are
    ltx-core's; a LoRA layer is a ``lora_A`` / ``lora_B`` pair."""
    keys = sorted(keys)
    if not keys:
        return ["the file holds no keys"]
    problems = []
    unprefixed = [k for k in keys if not k.startswith(OFFICIAL_PREFIX)]
    if unprefixed:
        problems.append(f"{len(unprefixed)} keys lack the {OFFICIAL_PREFIX} prefix ComfyUI maps "
                        f"(e.g. {', '.join(unprefixed[:_LISTED])})")
    unknown = [k for k in keys if k.startswith(OFFICIAL_PREFIX)
               and not ((m := _BLOCK_KEY.match(k.removeprefix(OFFICIAL_PREFIX))) and m.group(1) in BLOCK_FAMILIES)]
    if unknown:
        problems.append(f"{len(unknown)} keys name no transformer-block layer of LTX-2 "
                        f"(e.g. {', '.join(unknown[:_LISTED])})")
    stems = {k.rsplit(".lora_", 1)[0] for k in keys if ".lora_" in k}
    halves = [s for s in sorted(stems) if f"{s}.lora_A.weight" not in keys or f"{s}.lora_B.weight" not in keys]
    if halves:
        problems.append(f"{len(halves)} layers lack their lora_A or lora_B half (e.g. {', '.join(halves[:_LISTED])})")
    return problems


def key_report_note(keys: Iterable[str], metadata: Mapping[str, str], loaded: bool) -> dict | None:
    """What the key report says of a reference-voice LoRA file (None for any other file):
    ``{"mode", "comfy_loads", "problems", "sentence", "nodes"}``. ``loaded``: every key loaded
    into a fresh pipeline (the verify report's verdict)."""
    if metadata.get(MODE_KEY) != MODE_REFERENCE_VOICE:
        return None
    keys = list(keys)
    problems = comfy_key_problems(keys)
    comfy = loaded and not problems
    what = ("A reference-voice LoRA (trained with a reference clip of the voice in context, ID-LoRA style): "
            "give it a short clip of the voice when you generate.")
    if comfy:
        how = (f"Its {len(keys)} keys are in the official layout ComfyUI loads ({OFFICIAL_PREFIX}<layer>, "
               f"alpha folded in): load it with {LORA_NODE}, then give the clip to {REFERENCE_NODE}.")
    elif keys and all(k.startswith("transformer.") for k in keys):
        how = ("This is the diffusers layout (transformer. keys), which ComfyUI's LTX-2 LoRA loader does not "
               "map: in ComfyUI use the official file (export layout comfy).")
    else:
        how = "Its keys would not all load in ComfyUI: " + (problems[0] if problems else "some did not load into a fresh pipeline here")
    return {"mode": MODE_REFERENCE_VOICE, "comfy_loads": comfy, "problems": problems, "sentence": f"{what} {how}",
            "nodes": [LORA_NODE, REFERENCE_NODE]}


@dataclass(frozen=True)
class ReferenceCut:
    """The reference clip as shipped: ``samples`` ``[channels, n]`` float32 at ``rate``."""

    samples: np.ndarray
    rate: int
    speech_s: float | None  # speech in the cut (Silero VAD); None when the VAD is not installed

    @property
    def seconds(self) -> float:
        return self.samples.shape[1] / self.rate

    def wav_bytes(self) -> bytes:
        """A 16-bit PCM wav (what ComfyUI's LoadAudio and every player read)."""
        pcm = (np.clip(self.samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(pcm.shape[0])
            out.setsampwidth(2)
            out.setframerate(self.rate)
            out.writeframes(np.ascontiguousarray(pcm.T).tobytes())
        return buffer.getvalue()


@dataclass(frozen=True)
class ReferenceExport:
    """The reference clip of an export, or why there is none (``cut`` None, ``why`` says)."""

    cut: ReferenceCut | None
    clip_name: str | None = None  # the clip's name in the dataset
    clip_id: int | None = None
    why: str | None = None


def cut_reference(audio: Path, seconds: float, rate: int = REFERENCE_RATE) -> ReferenceCut:
    """The first ``seconds`` of ``audio``'s first audio track at ``rate``: mono stays mono, any
    other layout becomes stereo (as the engine's preprocessing decodes a clip)."""
    import av

    parts, wanted = [], int(round(seconds * rate))
    try:
        with av.open(str(audio)) as container:
            if not container.streams.audio:
                raise ValueError(f"{audio.name} has no audio track")
            stream = container.streams.audio[0]
            layout = "mono" if (stream.codec_context.channels or 2) == 1 else "stereo"
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            for frame in container.decode(stream):
                parts.extend(out.to_ndarray() for out in resampler.resample(frame))
                if sum(p.shape[1] for p in parts) >= wanted:
                    break
            parts.extend(out.to_ndarray() for out in resampler.resample(None))
    except av.error.FFmpegError as exc:
        raise ValueError(f"{audio.name}: {exc}") from exc
    if not parts:
        raise ValueError(f"{audio.name}: the audio track decoded to no samples")
    samples = np.concatenate(parts, axis=1)[:, :wanted].astype(np.float32)
    return ReferenceCut(samples, rate, _speech_seconds(samples.mean(axis=0), rate))


def _speech_seconds(mono: np.ndarray, rate: int) -> float | None:
    from core.media import vad
    from core.recipe.qa_rules import VAD_SPEECH_PROBABILITY

    if rate != vad.VAD_SAMPLE_RATE:
        return None
    try:
        probabilities = vad.speech_probabilities(mono.astype(np.float32))
    except vad.VadUnavailableError:
        return None
    return round(float((probabilities >= VAD_SPEECH_PROBABILITY).sum()) * vad.FRAME_SAMPLES / rate, 2)


def _source_paths(folder: Path, name: str) -> tuple[Path, Path] | None:
    """(media, audio) of the cache entry ``name`` from the folder's metadata file, as the engine
    reads them (the row's ``audio`` file when it names one, else the media's own track)."""
    from core.recipe.metadata import MetadataError, read_metadata

    try:
        entries = read_metadata(folder / "dataset.jsonl")
    except (OSError, MetadataError):
        return None
    for entry in entries:
        video = entry.video_path(folder)
        if video is not None and entry.video and Path(entry.video).with_suffix(".pt").as_posix() == name:
            return video, entry.audio_path(folder) or video
    return None


def trained_seconds(media: Path, bucket: str | None) -> float | None:
    """The seconds of a clip its cache covers: its bucket's frames at the clip's frame rate."""
    from core.media.probe import MediaProbeError, probe_media
    from core.recipe.buckets import BucketError, parse_bucket

    try:
        frames = parse_bucket(bucket).frames if bucket else None
        fps = probe_media(media).video.fps if frames else 0.0
    except (BucketError, MediaProbeError, AttributeError, OSError):
        return None
    return frames / fps if frames and fps else None


def prepare_reference(folder: Path, precomputed: Path, clip_results: Iterable[Mapping]) -> ReferenceExport:
    """The reference clip a run's export ships, from its preprocess run's ``folder`` (the clips
    and ``dataset.jsonl`` as preprocessed), its cache ``precomputed`` (the pairs file) and its
    ``clip_results`` (clip ids, names and buckets per media)."""
    try:
        plan = PairPlan.from_json((precomputed / REFERENCE_PAIRS_NAME).read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return ReferenceExport(None, why="the run's reference pairs (reference_pairs.json) are gone with its "
                                         "preprocess folder: record 2-6 s of clean speech of the voice instead")
    if not plan.pairs:
        return ReferenceExport(None, why="no clip of the run had a reference clip of the same voice")
    name = plan.pairs[min(plan.pairs)]  # the validation's reference: the first paired clip's
    item = next((i for i in clip_results if Path(str(i.get("media", ""))).with_suffix(".pt").as_posix() == name), {})
    label, clip_id = item.get("name") or name, item.get("clip_id")
    paths = _source_paths(folder, name)
    if paths is None or not paths[1].is_file():
        return ReferenceExport(None, label, clip_id, why=f"the reference clip {label} is no longer on disk")
    seconds = min(trained_seconds(paths[0], item.get("bucket")) or REFERENCE_MAX_S, REFERENCE_MAX_S)
    try:
        cut = cut_reference(paths[1], seconds)
    except (ValueError, OSError) as exc:
        return ReferenceExport(None, label, clip_id, why=f"the reference clip {label} could not be read ({exc})")
    return ReferenceExport(cut, label, clip_id)


def header_note(reference: ReferenceExport) -> str:
    """The JSON the export writes in the LoRA file's header (:data:`REFERENCE_INFO_KEY`)."""
    import json

    cut = reference.cut
    return json.dumps({"node": REFERENCE_NODE, "reference_file": REFERENCE_WAV_NAME if cut else None,
                       "seconds": round(cut.seconds, 2) if cut else None, "sample_rate": REFERENCE_RATE,
                       "placement": f"before the generated audio, clean (timestep 0), ending {REFERENCE_GAP_S:g} s "
                                    "before its start"}, sort_keys=True)


def card_entry(reference: ReferenceExport) -> dict:
    """The model card's ``reference_voice`` part."""
    cut = reference.cut
    return {"file": REFERENCE_WAV_NAME if cut else None, "clip": reference.clip_name, "clip_id": reference.clip_id,
            "seconds": round(cut.seconds, 2) if cut else None, "sample_rate": cut.rate if cut else None,
            "channels": int(cut.samples.shape[0]) if cut else None, "speech_s": cut.speech_s if cut else None,
            "why_no_file": reference.why, "lora_node": LORA_NODE, "reference_node": REFERENCE_NODE,
            "identity_guidance_scale": IDENTITY_GUIDANCE_DEFAULT}


def workflow_lines(entry: Mapping, lora_file: str, layout: str, model: str | None) -> list[str]:
    """The README's section: which ComfyUI node takes which file of the zip."""
    lines = ["", "## Generating with it: a reference clip of the voice (ComfyUI reference audio)", "",
             "This is a reference-voice LoRA: it speaks in the voice of the reference clip it is given, "
             "as ID-LoRA does. In ComfyUI (the LTX-2.3 ID-LoRA template, `video_ltx2_3_id_lora`):", ""]
    if layout == "comfy":
        lines.append(f"1. Put `{lora_file}` in `ComfyUI/models/loras/` and load it with **{LORA_NODE}** "
                     f"(strength 1) on the base model it was trained on (`{model}`), in the ID LoRA's place.")
    else:
        lines.append(f"1. `{lora_file}` is the diffusers layout, which ComfyUI's LTX-2 LoRA loader does not map: "
                     f"export this checkpoint with layout **comfy** for ComfyUI ({LORA_NODE}).")
    if entry.get("file"):
        speech = f", {entry['speech_s']:g} s of it speech" if entry.get("speech_s") is not None else ""
        lines.append(f"2. Load `{entry['file']}` ({entry['seconds']:g} s{speech}, {entry['sample_rate']} Hz, cut from "
                     f"the training clip {entry['clip']}: the reference the validation samples used) with **LoadAudio**.")
    else:
        lines.append(f"2. No reference clip is in this zip ({entry.get('why_no_file')}). Load any clip with "
                     f"{REFERENCE_MIN_SPEECH_S:g}-{REFERENCE_MAX_S:g} s of clean speech of the voice with **LoadAudio**.")
    lines += [f"3. **{REFERENCE_NODE}** (LTXV Reference Audio (ID-LoRA)): `model` from {LORA_NODE}, `positive` / "
              f"`negative` from the prompts, `reference_audio` from LoadAudio, `Audio VAE` from **{AUDIO_VAE_NODE}**. "
              "Its MODEL output goes to the guider (CFGGuider), its positive / negative through LTXVConditioning.",
              f"4. `identity_guidance_scale`: the node's default {IDENTITY_GUIDANCE_DEFAULT:g} adds a pass without the "
              "reference each step and pushes the voice further; 0 is what the studio's samples did (the reference in "
              "context only, as trained).", "",
              "Any clip of the same voice works as the reference: "
              f"{REFERENCE_MIN_SPEECH_S:g}-{REFERENCE_MAX_S:g} s of clean speech (ID-LoRA recommends about 5 s). "
              "The node places it as training did: in front of the generated audio, clean (timestep 0), "
              f"ending {REFERENCE_GAP_S:g} s before it."]
    return lines
