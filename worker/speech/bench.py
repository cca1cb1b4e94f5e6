"""CPU speed of the speech layer: seconds of compute per minute of audio.

``python -m worker.speech.bench [FILE] [--seconds 60]`` prints JSON. Without FILE, a minute
of espeak-ng speech is synthesised. Each model is loaded and warmed up on a short piece
first (load time reported separately), then timed on the whole audio. ``rtf`` (real-time
factor) is wall-clock seconds / audio seconds; ``s_per_audio_min`` is the same per minute of
audio; the ``cpu_`` figures count this process's CPU time instead (less sensitive to other load).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _timed(function, *args, **kwargs) -> tuple[tuple[float, float], object]:
    """``((wall_s, cpu_s), result)``: CPU time is this process's, all threads."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return (time.perf_counter() - wall, time.process_time() - cpu), result


def _rate(seconds: tuple[float, float], audio_s: float) -> dict:
    wall, cpu = seconds
    return {"seconds": round(wall, 3), "cpu_seconds": round(cpu, 3), "rtf": round(wall / audio_s, 4),
            "s_per_audio_min": round(wall / audio_s * 60.0, 2), "cpu_s_per_audio_min": round(cpu / audio_s * 60.0, 2)}


def run_bench(audio, sr: int = 16000) -> dict:
    """Time recognition, alignment, VAD, whole-clip voice embedding and the voices within the clip on ``audio``."""
    from worker.speech.asr import get_recognizer
    from worker.speech.speaker import embed_voice
    from worker.speech.sphinx import align_words
    from worker.speech.turns import several_speakers
    from worker.speech.vad import speech_segments

    audio_s = audio.size / sr
    warm = audio[: 2 * sr]
    recognizer = get_recognizer()
    load_asr, _ = _timed(recognizer.transcribe, warm, sr)
    load_spk, _ = _timed(embed_voice, warm, sr)
    asr_s, transcript = _timed(recognizer.transcribe, audio, sr)
    report = {"audio_s": round(audio_s, 2), "cpu_threads": os.cpu_count(), "asr_backend": recognizer.name,
              "first_call_s": {"asr": round(load_asr[0], 2), "speaker": round(load_spk[0], 2)},
              "transcribe": _rate(asr_s, audio_s), "words": len(transcript.words)}
    if transcript.text:
        align_s, _ = _timed(align_words, audio, sr, transcript.text)
        report["align"] = _rate(align_s, audio_s)
    vad_s, _ = _timed(speech_segments, audio, sr)
    embed_s, _ = _timed(embed_voice, audio, sr)
    turns_s, _ = _timed(several_speakers, audio, sr)
    report.update(vad=_rate(vad_s, audio_s), embed_voice=_rate(embed_s, audio_s),
                  voice_turns=_rate(turns_s, audio_s))
    return report


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the benchmark, print JSON."""
    parser = argparse.ArgumentParser(prog="python -m worker.speech.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", nargs="?", help="audio or video file (default: synthesised speech)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the synthesised audio")
    args = parser.parse_args(argv)
    if args.file:
        from worker.speech.audio import load_audio

        audio = load_audio(args.file)
    else:
        from worker.speech.synth import espeak_available, speech_of_length

        if not espeak_available():
            print("error: espeak-ng is not installed; pass an audio FILE", file=sys.stderr)
            return 2
        audio = speech_of_length(args.seconds)
    print(json.dumps(run_bench(audio), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
