"""Speech jobs on the cpu queue: transcribe clips, plan where to split one, and the voice part of
a clip's check.

- ``transcribe``: for each clip, the recogniser's words with times (``clip.speech``). A clip
  without a transcript, or with an automatic one, gets the recognised text as its transcript
  (``transcript_source`` "auto", until the person edits or confirms it). A transcript the person
  wrote is kept: it is aligned to the audio for its words' times, and what the recogniser heard
  is stored beside it (``transcript_mismatch`` compares the two).
- ``split_plan``: cut points at pauses and sentence ends (``worker.speech.split``), stored on
  the clip for the page and ``GET .../split-plan``.
- :func:`voice_analysis`: the clip's voice embedding and the voices of its stretches of speech,
  added to the analysis by the probe job.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from core.config import get_settings
from core.db import session_scope
from core.models import Clip
from core.recipe import speech_rules
from core.services.captions import compose_for
from core.services.clip_findings import refresh_dataset_findings
from core.services.clips import clip_file
from worker.jobs import JobContext, JobFailed

log = logging.getLogger(__name__)


def _load(clip_id: int) -> tuple[np.ndarray, Clip | None]:
    from worker.speech.audio import SpeechAudioError, load_audio

    with session_scope() as session:
        clip = session.get(Clip, clip_id)
        if clip is None:
            raise JobFailed(f"Clip #{clip_id} no longer exists (it was deleted).")
        path, name = clip_file(clip), clip.original_name
        typed = clip.caption.transcript if clip.caption and clip.caption.transcript_source == "user" else ""
    try:
        return load_audio(path), (name, typed.strip())
    except SpeechAudioError as exc:
        raise JobFailed(f"The sound of '{name}' could not be read: {exc}") from exc


def _words(words) -> list[dict[str, Any]]:
    return [w.to_dict() for w in words]


def hear(audio: np.ndarray, typed: str, language: str | None) -> dict[str, Any]:
    """What the recogniser hears in ``audio`` (16 kHz mono) and, for a typed transcript, where its
    words are: the ``clip.speech`` record."""
    from worker.speech.asr import align, get_recognizer

    recognizer = get_recognizer(get_settings())
    heard = recognizer.transcribe(audio, 16000, language)
    record = {"heard": heard.text, "heard_words": _words(heard.words), "backend": type(recognizer).__name__,
              "language": language or "en"}
    if typed:
        try:
            aligned = _words(align(audio, 16000, typed))
        except Exception as exc:  # noqa: BLE001 - a failed alignment must not lose the recognition
            log.warning("alignment failed: %s", exc)
            aligned = []
        return {**record, "text": typed, "words": aligned, "source": "aligned"}
    return {**record, "text": heard.text, "words": record["heard_words"], "source": "recognised"}


def transcribe(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Recognise (and align) the words of ``params["clip_ids"]``; returns what each got."""
    clip_ids = [int(i) for i in params["clip_ids"]]
    results = []
    for number, clip_id in enumerate(clip_ids):
        ctx.check_cancelled()
        audio, (name, typed) = _load(clip_id)
        ctx.progress(number, len(clip_ids), f"listening to '{name}'")
        record = hear(audio, typed, params.get("language"))
        results.append(_store_speech(clip_id, record))
    ctx.progress(len(clip_ids), len(clip_ids), f"transcribed {len(results)} clip(s)")
    return {"clips": results}


def _store_speech(clip_id: int, record: dict[str, Any]) -> dict[str, Any]:
    with session_scope() as session:
        clip = session.get(Clip, clip_id)
        if clip is None:
            return {"clip_id": clip_id, "deleted": True}
        clip.speech = record
        if record["source"] == "recognised":
            from core.models import Caption

            if clip.caption is None:
                clip.caption = Caption(visual="", transcript="", voice="", sounds="", text="")
            clip.caption.transcript = record["text"]
            clip.caption.transcript_source = "auto"
            clip.caption.composed = compose_for(clip.dataset, {
                name: getattr(clip.caption, name) or "" for name in ("visual", "transcript", "voice", "sounds", "text")})
        refresh_dataset_findings(clip.dataset)
        session.commit()
        return {"clip_id": clip_id, "source": record["source"], "text": record["text"], "words": len(record["words"])}


def split_plan(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Plan the parts of clip ``params["clip_id"]`` and store them on the clip."""
    from worker.speech.split import plan_split
    from worker.speech.vad import speech_segments

    clip_id = int(params["clip_id"])
    audio, (name, typed) = _load(clip_id)
    ctx.progress(0, 2, f"listening to '{name}'")
    with session_scope() as session:
        clip = session.get(Clip, clip_id)
        stored = dict(clip.speech or {}) if clip is not None else {}
        frame_count = (((clip.probe or {}).get("video") or {}).get("frame_count")) if clip is not None else None
    if not stored.get("words"):
        stored = hear(audio, typed, params.get("language"))
        _store_speech(clip_id, stored)
    ctx.check_cancelled()
    ctx.progress(1, 2, "finding pauses and sentence ends")
    from worker.speech.words import from_dict

    parts = plan_split([from_dict(w) for w in stored["words"]], float(params["fps"]), frame_count,
                       speech=speech_segments(audio, 16000), duration_s=len(audio) / 16000,
                       min_s=float(params["min_s"]), max_s=float(params.get("max_s", speech_rules.LONGEST_PART_S)))
    plan = {"parts": [p.to_dict() for p in parts]}
    with session_scope() as session:
        clip = session.get(Clip, clip_id)
        if clip is None:
            raise JobFailed(f"Clip #{clip_id} was deleted while its split was planned.")
        clip.split_plan = plan
        session.commit()
    ctx.progress(2, 2, f"{len(parts)} part(s) proposed")
    return {"clip_id": clip_id, **plan}


def voice_analysis(path) -> dict[str, Any] | None:
    """The clip's voice: ``{"embedding", "turns", "voices", "speech_s"}``, or None without enough speech."""
    from worker.speech.audio import SpeechAudioError, load_audio
    from worker.speech.speaker import embed_voice
    from worker.speech.turns import several_speakers
    from worker.speech.vad import speech_segments

    try:
        audio = load_audio(path)
    except SpeechAudioError:
        return None
    speech_s = sum(end - start for start, end in speech_segments(audio, 16000))
    if speech_s < speech_rules.MIN_SPEECH_FOR_VOICE_S:
        return None
    try:
        embedding = embed_voice(audio, 16000)
    except ValueError:
        return None
    report = several_speakers(audio, 16000).to_dict()
    return {"embedding": [round(float(x), 5) for x in embedding], "turns": report["turns"] if report["several_speakers"]
            else [], "voices": report["voices"], "speech_s": round(speech_s, 2)}
