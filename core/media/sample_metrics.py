"""Per-sample audio metrics of validation samples, and flags when a checkpoint's audio degrades.

A run renders the same prompts with the same seeds through the base model (LoRA off), the LoRA,
and the LoRA with its audio modules off, at every checkpoint. This module measures each
sample's audio (:func:`measure_sample`), how far its voice is from the training clips'
(:func:`voice_distance`), what got worse against the base model (:func:`compare_to_base`) and
gathers the numbers per variant for plots against step (:func:`metrics_series`). The worker adds
the voice measures (:data:`VOICE_MEASURES`: speaker similarity, word error rate, DNSMOS quality,
measured in ``worker/speech/sample_voice.py`` with torch) and :func:`compare_to_base` flags them
too.

Loudness, peaks, clipping and voice activity reuse the clip QA functions of
:mod:`core.media.analysis` and :mod:`core.media.vad`; spectral flatness and the buzz score come
from :mod:`core.media.spectral`, the voice profile from :mod:`core.media.mfcc`. Thresholds live in
:mod:`core.recipe.sample_rules`. No torch: numpy, scipy, PyAV, pyloudnorm and onnxruntime.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from scipy.signal import resample_poly

from core.media import analysis, mfcc, spectral, vad
from core.media.mfcc import VoiceProfile
from core.recipe import qa_rules
from core.recipe import sample_rules as rules

ERROR, WARNING = "error", "warning"
# One severity per flag code: an error means "this checkpoint's audio is broken next to the
# base model's, do not pick it"; a warning means "audibly worse in one respect: listen".
SEVERITY_BY_FLAG: dict[str, str] = {
    "audio_silent": ERROR,
    "speech_lost": ERROR,
    "buzz": ERROR,
    "clipping": WARNING,
    "loudness_dropped": WARNING,
    "loudness_blown_up": WARNING,
    "noise": WARNING,
    "voice_not_theirs": WARNING,
    "voice_moved_away": WARNING,
    "quality_dropped": WARNING,
    "intelligibility_dropped": WARNING,
}
# The voice measures the worker adds to a sample's metrics (worker/speech/sample_voice.py); each
# is None with a reason in ``metrics["voice_reasons"]`` when it cannot be measured.
VOICE_MEASURES = ("speaker_similarity", "wer", "quality_mos")


class SampleAudioError(ValueError):
    """A sample's audio cannot be measured; the message says why."""


def measure_sample(source: str | os.PathLike | tuple[np.ndarray, int]) -> dict[str, Any]:
    """Measure one sample's audio: a media file path, or ``(samples, sample_rate)``.

    ``samples`` is float audio in [-1, 1]: 1-D mono, or 2-D ``[channels, samples]`` (a
    ``[samples, channels]`` array, soundfile's layout, is recognised by having more rows than
    columns). Returns a JSON-ready dict:

    ``duration``, ``sample_rate``, ``channels``; ``integrated_lufs`` (None when silent or
    < 0.4 s), ``sample_peak_dbfs`` (None for digital silence), ``true_peak_dbfs``,
    ``clipping_ratio``; ``spectral_flatness`` (0 tone .. ~0.56 white noise) and
    ``speech_band_flatness`` (300-3400 Hz), both None when silent; ``buzz_score_db`` (strongest
    persistent narrow peak over its neighbourhood, 0..60) and ``buzz_hz``; ``speech_ratio``,
    ``speech_seconds``, ``snr_db`` (None without speech); ``mfcc`` (a
    :class:`~core.media.mfcc.VoiceProfile` dict, None when silent).

    Raises :class:`SampleAudioError` for a file without audio or unusable samples, and
    :class:`core.media.analysis.AudioDecodeError` for a file whose audio cannot be decoded.
    """
    decoded = _load(source)
    native, mono = decoded.native, decoded.mono_16k
    probabilities = vad.speech_probabilities(mono)
    threshold = qa_rules.VAD_SPEECH_PROBABILITY
    is_speech = probabilities >= threshold
    peak = float(np.abs(native).max()) if native.size else 0.0
    buzz = spectral.buzz(mono)
    profile = mfcc.voice_profile(mono, probabilities, threshold)
    return {
        "duration": round(decoded.duration, 4),
        "sample_rate": decoded.sample_rate,
        "channels": int(native.shape[0]),
        "integrated_lufs": _round(analysis.integrated_loudness(native, decoded.sample_rate,
                                                               decoded.channel_names)),
        "sample_peak_dbfs": _round(_dbfs(peak)),
        "true_peak_dbfs": _round(_dbfs(analysis.true_peak(native))),
        "clipping_ratio": round(analysis.clipping_ratio(native), 6),
        "spectral_flatness": _round(spectral.spectral_flatness(mono), 4),
        "speech_band_flatness": _round(spectral.spectral_flatness(
            mono, rules.SPEECH_BAND_LOW_HZ, rules.SPEECH_BAND_HIGH_HZ), 4),
        "buzz_score_db": round(buzz.score_db, 2),
        "buzz_hz": _round(buzz.hz, 1),
        "speech_ratio": round(float(is_speech.mean()) if is_speech.size else 0.0, 4),
        "speech_seconds": round(float(is_speech.sum()) * vad.FRAME_SAMPLES / vad.VAD_SAMPLE_RATE, 3),
        "snr_db": _round(analysis.estimate_snr_db(mono, is_speech)),
        "mfcc": profile.to_dict() if profile else None,
    }


def _load(source) -> analysis.DecodedAudio:
    if isinstance(source, (str, os.PathLike)):
        decoded = analysis.decode_audio(source)
        if decoded is None:
            raise SampleAudioError(f"{os.fspath(source)} has no audio stream to measure")
        return decoded
    if isinstance(source, tuple) and len(source) == 2:
        return _from_array(*source)
    raise SampleAudioError("measure_sample takes a media file path or a (samples, sample_rate) tuple, "
                           f"not {type(source).__name__}")


def _from_array(samples, rate) -> analysis.DecodedAudio:
    """Wrap in-memory audio as :class:`DecodedAudio` (native layout plus 16 kHz mono)."""
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise SampleAudioError(f"sample rate must be a positive integer, got {rate!r}")
    audio = np.asarray(samples, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None, :]
    elif audio.ndim == 2 and audio.shape[0] > audio.shape[1]:
        audio = audio.T  # [samples, channels] -> [channels, samples]
    if audio.ndim != 2 or audio.size == 0:
        raise SampleAudioError(f"samples must be 1-D or [channels, samples] and not empty, got shape "
                               f"{np.shape(samples)}")
    if not np.isfinite(audio).all():
        raise SampleAudioError("samples contain NaN or infinite values (the decoder produced broken audio)")
    rate = int(rate)
    audio = np.ascontiguousarray(audio[:, : int(qa_rules.MAX_ANALYSIS_SECONDS * rate)])
    divisor = math.gcd(vad.VAD_SAMPLE_RATE, rate)
    mono = resample_poly(audio.mean(axis=0), vad.VAD_SAMPLE_RATE // divisor, rate // divisor)
    return analysis.DecodedAudio(native=audio, sample_rate=rate, channel_names=[],
                                 mono_16k=mono.astype(np.float32), stream_duration=None,
                                 failed_packets=0, total_packets=0)


def voice_distance(sample: Mapping | VoiceProfile, references: Iterable[Mapping | VoiceProfile]) -> float | None:
    """Distance of a sample's voice to the training clips' voice (0 = same MFCC statistics).

    ``sample`` and each reference are :func:`measure_sample` results (their ``mfcc``), a
    ``VoiceProfile`` dict, or a :class:`VoiceProfile`. The references are pooled into one
    profile (the statistics of all their frames together) and compared with
    :func:`core.media.mfcc.profile_distance`. ``None`` when the sample or every reference is
    silent (no profile); raises ``ValueError`` when no reference is given.
    """
    reference_profiles = [_profile(ref) for ref in references]
    if not reference_profiles:
        raise ValueError("voice_distance needs at least one reference clip")
    usable = [p for p in reference_profiles if p is not None]
    sample_profile = _profile(sample)
    if sample_profile is None or not usable:
        return None
    return round(mfcc.profile_distance(sample_profile, mfcc.pooled_profile(usable)), 4)


def _profile(value) -> VoiceProfile | None:
    if value is None or isinstance(value, VoiceProfile):
        return value
    if isinstance(value, Mapping):
        if "mean" in value and "std" in value:
            return VoiceProfile.from_dict(dict(value))
        if "mfcc" in value:
            return _profile(value["mfcc"])
    raise ValueError(f"not a voice profile or sample metrics: {type(value).__name__}")


def compare_to_base(sample_metrics: Mapping, base_metrics: Mapping) -> list[dict]:
    """Flags where a checkpoint's sample sounds worse than the base model's (same prompt, seed).

    Each flag is ``{"code", "severity", "message", "detail"}`` (the shape of clip findings);
    codes and severities are in :data:`SEVERITY_BY_FLAG`, thresholds in
    :mod:`core.recipe.sample_rules`. Comparing a sample with itself gives no flags. A metric
    missing on either side is skipped.
    """
    checks = (_silence_or_loudness, _clipping, _buzz, _noise, _speech, _voice, _quality, _intelligibility)
    return [flag for check in checks for flag in check(sample_metrics, base_metrics)]


def _flag(code: str, message: str, metric: str, value, base) -> dict:
    return {"code": code, "severity": SEVERITY_BY_FLAG[code], "message": message,
            "detail": {"metric": metric, "value": value, "base": base}}


def _silence_or_loudness(sample: Mapping, base: Mapping) -> list[dict]:
    lufs, base_lufs = sample.get("integrated_lufs"), base.get("integrated_lufs")
    if base_lufs is None:
        return []
    if lufs is None:
        return [_flag("audio_silent", f"The sample is silent where the base model's audio measures "
                      f"{base_lufs:.1f} LUFS: this checkpoint lost the sound.", "integrated_lufs", lufs, base_lufs)]
    if lufs <= base_lufs - rules.LOUDNESS_DROP_DB:
        return [_flag("loudness_dropped", f"The sample is {base_lufs - lufs:.1f} dB quieter than the base "
                      f"model's ({lufs:.1f} vs {base_lufs:.1f} LUFS): the audio is collapsing towards silence.",
                      "integrated_lufs", lufs, base_lufs)]
    if lufs >= base_lufs + rules.LOUDNESS_RISE_DB:
        return [_flag("loudness_blown_up", f"The sample is {lufs - base_lufs:.1f} dB louder than the base "
                      f"model's ({lufs:.1f} vs {base_lufs:.1f} LUFS): the audio is blowing up; expect distortion.",
                      "integrated_lufs", lufs, base_lufs)]
    return []


def _clipping(sample: Mapping, base: Mapping) -> list[dict]:
    ratio, base_ratio = sample.get("clipping_ratio"), base.get("clipping_ratio")
    if ratio is None or base_ratio is None:
        return []
    if ratio > qa_rules.CLIPPING_RATIO_WARN and ratio >= rules.CLIPPING_RISE_FACTOR * base_ratio:
        return [_flag("clipping", f"{ratio:.2%} of the samples sit at full scale (base model: {base_ratio:.2%}): "
                      "the waveform is clipped, heard as crackle and distortion.", "clipping_ratio", ratio, base_ratio)]
    return []


def _buzz(sample: Mapping, base: Mapping) -> list[dict]:
    score, base_score = sample.get("buzz_score_db"), base.get("buzz_score_db")
    if score is None or base_score is None:
        return []
    if score >= rules.BUZZ_TONAL_DB and score - base_score >= rules.BUZZ_RISE_DB:
        where = f" near {sample['buzz_hz']:.0f} Hz" if sample.get("buzz_hz") else ""
        return [_flag("buzz", f"A steady tone{where} stands {score:.0f} dB above the spectrum around it "
                      f"(base model: {base_score:.0f} dB): buzz or hum the base model's audio does not have, "
                      "the 'good video, bad voice' failure.", "buzz_score_db", score, base_score)]
    return []


def _noise(sample: Mapping, base: Mapping) -> list[dict]:
    flatness, base_flatness = sample.get("spectral_flatness"), base.get("spectral_flatness")
    if flatness is None or base_flatness is None:
        return []
    if flatness - base_flatness >= rules.FLATNESS_RISE:
        return [_flag("noise", f"The spectrum is much flatter than the base model's ({flatness:.2f} vs "
                      f"{base_flatness:.2f}, white noise is 0.56): hiss or noise is covering the voice.",
                      "spectral_flatness", flatness, base_flatness)]
    return []


def _speech(sample: Mapping, base: Mapping) -> list[dict]:
    ratio, base_ratio = sample.get("speech_ratio"), base.get("speech_ratio")
    if ratio is None or base_ratio is None or base_ratio < qa_rules.LOW_SPEECH_RATIO:
        return []
    if ratio < rules.SPEECH_KEPT_FRACTION * base_ratio:
        return [_flag("speech_lost", f"Speech fills {ratio:.0%} of the sample against {base_ratio:.0%} in the "
                      "base model's: the voice is gone or no longer sounds like speech.",
                      "speech_ratio", ratio, base_ratio)]
    return []


def _voice(sample: Mapping, base: Mapping) -> list[dict]:
    similarity, base_similarity = sample.get("speaker_similarity"), base.get("speaker_similarity")
    if similarity is None:
        return []
    if base_similarity is not None and similarity <= base_similarity - rules.SPEAKER_SIMILARITY_DROP:
        return [_flag("voice_moved_away", f"The voice is further from the dataset's than the base model's "
                      f"(similarity {similarity:.2f} vs {base_similarity:.2f}): this checkpoint moved away from their voice.",
                      "speaker_similarity", similarity, base_similarity)]
    if similarity < rules.SPEAKER_SIMILARITY_MIN:
        return [_flag("voice_not_theirs", f"The voice's similarity to the dataset's is {similarity:.2f}, under "
                      f"{rules.SPEAKER_SIMILARITY_MIN:.2f} where a clip counts as another speaker: it does not sound "
                      "like them (yet).", "speaker_similarity", similarity, base_similarity)]
    return []


def _quality(sample: Mapping, base: Mapping) -> list[dict]:
    mos, base_mos = sample.get("quality_mos"), base.get("quality_mos")
    if mos is None or base_mos is None or mos > base_mos - rules.QUALITY_MOS_DROP:
        return []
    return [_flag("quality_dropped", f"Listeners would rate this speech {base_mos - mos:.1f} points worse than the "
                  f"base model's (DNSMOS {mos:.2f} vs {base_mos:.2f} of 5): distortion or noise.",
                  "quality_mos", mos, base_mos)]


def _intelligibility(sample: Mapping, base: Mapping) -> list[dict]:
    wer, base_wer = sample.get("wer"), base.get("wer")
    if wer is None or base_wer is None or wer < base_wer + rules.WER_RISE:
        return []
    return [_flag("intelligibility_dropped", f"The recogniser gets {wer:.0%} of the prompt's words wrong against "
                  f"{base_wer:.0%} in the base model's sample: the words are harder to make out.", "wer", wer, base_wer)]


def metrics_series(samples: Iterable) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Numeric metrics per variant as ``{variant: {metric: [(step, value), ...]}}`` for plots.

    ``samples`` are mappings or objects with ``variant``, ``step`` and ``metrics`` (a
    :func:`measure_sample` dict, possibly with ``voice_distance`` added). Values of several
    prompts at one step are averaged; steps are in ascending order (a sample without a step,
    such as a base-model sample rendered once before training, counts as step 0); ``None``
    values, booleans and non-numeric metrics (``mfcc``) are left out.
    """
    values_by_key: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for sample in samples:
        variant, step, metrics = (_field(sample, name) for name in ("variant", "step", "metrics"))
        for name, value in (metrics or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                values_by_key[(str(variant), name, int(step or 0))].append(float(value))
    series: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for (variant, name, step), values in sorted(values_by_key.items()):
        series.setdefault(variant, {}).setdefault(name, []).append((step, round(sum(values) / len(values), 6)))
    return series


def _field(sample, name: str):
    if isinstance(sample, Mapping):
        if name not in sample:
            raise ValueError(f"sample has no {name!r}: {sorted(sample)}")
        return sample[name]
    if not hasattr(sample, name):
        raise ValueError(f"sample has no {name!r} attribute: {type(sample).__name__}")
    return getattr(sample, name)


def _dbfs(amplitude: float) -> float | None:
    return 20 * math.log10(amplitude) if amplitude > 0 else None


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)
