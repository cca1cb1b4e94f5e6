"""``avlora speech ...``: recognise, align, plan splits, compare voices, score a reading and rate speech quality.

::

    avlora speech transcribe FILE [--json] [--language en]
    avlora speech align FILE --text "..." [--json]
    avlora speech split-plan FILE [--json] [--min-s S] [--max-s S] [--fps F]
    avlora speech similarity A B [--json]
    avlora speech wer FILE --text "..." [--json] [--language en]
    avlora speech quality FILE [--json]

FILE is any audio or video file (its first audio stream is decoded to 16 kHz mono). Without
``--json`` a short human-readable result is printed. Exit status 0 on success; 2 with one
line on stderr for an unreadable file, a file without audio, or a model that cannot be used.
"""

from __future__ import annotations

import argparse
import json
import sys

DEFAULT_FPS = 25.0  # for audio-only files, when --fps is not given


def register(subparsers) -> None:
    """Add the ``speech`` command and its sub-commands to an argparse subparsers object."""
    speech = subparsers.add_parser("speech", help="speech recognition, alignment, split plans, voices, quality",
                                   description="Recognise, align, plan splits, compare voices, score a reading and "
                                               "rate speech quality, from any audio or video file.")
    sub = speech.add_subparsers(dest="speech_command", required=True, metavar="SUBCOMMAND")

    p = sub.add_parser("transcribe", help="recognise speech with word timings")
    p.add_argument("file")
    p.add_argument("--language", default=None, help="language code, e.g. en (PocketSphinx: English only)")
    _add_json(p, _cmd_transcribe)

    p = sub.add_parser("align", help="where each word of a known text is spoken")
    p.add_argument("file")
    p.add_argument("--text", required=True, help="what is said in the file")
    _add_json(p, _cmd_align)

    p = sub.add_parser("split-plan", help="propose training parts cut at pauses")
    p.add_argument("file")
    p.add_argument("--min-s", type=float, default=None, help="shortest part (default: smallest bucket / fps)")
    p.add_argument("--max-s", type=float, default=10.0, help="longest part (default: 10)")
    p.add_argument("--fps", type=float, default=None, help=f"frame rate (default: the video's, else {DEFAULT_FPS:g})")
    p.add_argument("--language", default=None, help="language code for recognition")
    _add_json(p, _cmd_split_plan)

    p = sub.add_parser("similarity", help="cosine similarity of the voices in two files")
    p.add_argument("a")
    p.add_argument("b")
    _add_json(p, _cmd_similarity)

    p = sub.add_parser("wer", help="word error rate of a reading against its text")
    p.add_argument("file")
    p.add_argument("--text", required=True, help="what should be said in the file")
    p.add_argument("--language", default=None, help="language code for recognition")
    _add_json(p, _cmd_wer)

    p = sub.add_parser("quality", help="perceptual speech quality (DNSMOS P.835, 1-5)")
    p.add_argument("file")
    _add_json(p, _cmd_quality)


def _add_json(parser: argparse.ArgumentParser, handler) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=lambda args: _run(handler, args))


def _expected_errors() -> tuple[type[BaseException], ...]:
    from worker.speech.audio import SpeechAudioError
    from worker.speech.speaker import SpeakerBackendNotConfigured
    from worker.speech.sphinx import AlignmentError
    from worker.speech.whisper import WhisperModelError

    return (SpeechAudioError, SpeakerBackendNotConfigured, AlignmentError, WhisperModelError, ValueError)


def _run(handler, args: argparse.Namespace) -> int:
    """Call ``handler(args) -> (dict, text)``; print one of them; map known errors to exit 2."""
    try:
        result, text = handler(args)
    except _expected_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else text)
    return 0


def _load(path: str):
    from worker.speech.audio import load_audio

    return load_audio(path)


def _cmd_transcribe(args):
    from worker.speech.asr import transcribe

    transcript = transcribe(_load(args.file), 16000, args.language)
    lines = [transcript.text or "(no speech recognised)"]
    lines += [f"  {w.start_s:7.2f} {w.end_s:7.2f}  {w.word}  ({w.confidence:.2f})" for w in transcript.words]
    return transcript.to_dict(), "\n".join(lines)


def _cmd_align(args):
    from worker.speech.sphinx import align_words

    alignment = align_words(_load(args.file), 16000, args.text)
    result = {"words": [w.to_dict() for w in alignment.words], "guessed_pronunciations": alignment.guessed,
              "unaligned": alignment.unaligned}
    lines = [f"  {w.start_s:7.2f} {w.end_s:7.2f}  {w.word}" for w in alignment.words]
    if alignment.guessed:
        lines.append(f"pronunciation guessed from spelling: {', '.join(alignment.guessed)}")
    if alignment.unaligned:
        lines.append(f"not found in the audio: {', '.join(alignment.unaligned)}")
    return result, "\n".join(lines) or "(no words)"


def _video_timing(path: str, fps: float | None) -> tuple[float, int | None]:
    from core.media.probe import MediaProbeError, probe_media

    try:
        video = probe_media(path).video
    except MediaProbeError:
        video = None
    if video is None or not video.fps:
        return fps or DEFAULT_FPS, None
    if fps:  # another rate than the video's: the same duration in frames of that rate
        return fps, int(video.duration * fps) if video.duration else None
    return float(video.fps), int(video.frame_count)


def _cmd_split_plan(args):
    from worker.speech.asr import transcribe
    from worker.speech.split import plan_split_audio

    audio = _load(args.file)
    fps, frame_count = _video_timing(args.file, args.fps)

    words = transcribe(audio, 16000, args.language).words
    parts = plan_split_audio(audio, 16000, fps, frame_count, words=words, min_s=args.min_s, max_s=args.max_s)
    result = {"fps": fps, "parts": [p.to_dict() for p in parts]}
    lines = [f"{len(parts)} part(s) at {fps:g} fps"]
    lines += [f"  {p.start_s:7.2f} {p.end_s:7.2f}  {p.frames:4d} frames  {p.transcript}" for p in parts]
    return result, "\n".join(lines)


def _cmd_similarity(args):
    from worker.speech.speaker import embed_voice, similarity

    value = similarity(embed_voice(_load(args.a), 16000), embed_voice(_load(args.b), 16000))
    return {"similarity": round(value, 4)}, f"voice similarity (cosine): {value:.3f}"


def _cmd_wer(args):
    from core.recipe.transcripts import word_errors
    from worker.speech.asr import transcribe

    heard = transcribe(_load(args.file), 16000, args.language).text
    errors = word_errors(args.text, heard)
    result = {"wer": round(errors.wer, 4), "heard": heard, **errors.to_dict()}
    return result, f"WER {errors.wer:.3f}  heard: {heard}"


def _cmd_quality(args):
    from worker.speech.quality import speech_quality

    scores = speech_quality(_load(args.file), 16000)
    text = (f"speech quality (DNSMOS, 1-5): overall {scores['quality_mos']:.2f}, speech {scores['quality_sig']:.2f}, "
            f"background {scores['quality_bak']:.2f}")
    return scores, text


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone ``avlora``-like parser with only the ``speech`` command (for tests)."""
    parser = argparse.ArgumentParser(prog="avlora")
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``avlora speech ...`` from ``argv`` (e.g. ``["speech", "transcribe", "a.wav"]``)."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
