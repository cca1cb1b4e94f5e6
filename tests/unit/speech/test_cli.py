"""``avlora speech ...`` through :func:`worker.speech.cli.main`, and once as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from tests.unit.speech.conftest import SENTENCES, VOICE_A, VOICE_B, sentences_with_pauses, silence, synth, write_wav
from worker.speech.cli import build_parser, main

REPO = Path(__file__).resolve().parents[3]


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def sentence_wav(tmp_path_factory):
    audio = np.concatenate([silence(0.3), synth(SENTENCES[1]), silence(0.3)])
    return write_wav(tmp_path_factory.mktemp("cli") / "coffee.wav", audio)


@pytest.fixture(scope="module")
def short_wav(tmp_path_factory):
    audio = np.concatenate([silence(0.2), synth("a cup of coffee"), silence(0.2)])
    return write_wav(tmp_path_factory.mktemp("cli") / "cup.wav", audio)


def _write_video_with_audio(path: Path, audio: np.ndarray, fps: int = 25) -> str:
    """A small MPEG-4 video (grey frames) with ``audio`` as AAC, made with PyAV."""
    seconds = audio.size / 16000
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        sound = container.add_stream("aac", rate=16000, layout="mono")
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 128, np.uint8), format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        samples = audio.reshape(1, -1).astype(np.float32)
        chunk = 1024
        for i in range(0, samples.shape[1], chunk):
            piece = np.ascontiguousarray(samples[:, i:i + chunk])
            frame = av.AudioFrame.from_ndarray(piece, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i
            container.mux(sound.encode(frame))
        container.mux(sound.encode(None))
    return str(path)


def test_transcribe_json_as_a_subprocess(sentence_wav):
    command = [sys.executable, "-m", "worker.speech.cli", "speech", "transcribe", sentence_wav, "--json",
               "--language", "en"]
    env = {**os.environ, "AVLORA_ASR_MODEL_DIR": ""}
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert "coffee" in result["text"].split()
    assert set(result["words"][0]) == {"word", "start_s", "end_s", "confidence"}


def test_transcribe_text_output(capsys, short_wav):
    code, out, _ = _run(capsys, "speech", "transcribe", short_wav)
    assert code == 0 and "coffee" in out.splitlines()[0]


def test_align_json(capsys, sentence_wav):
    code, out, _ = _run(capsys, "speech", "align", sentence_wav, "--text", "I would like a cup of coffee.", "--json")
    words = json.loads(out)["words"]
    assert code == 0 and [w["word"] for w in words] == ["i", "would", "like", "a", "cup", "of", "coffee"]
    assert all(0.2 <= w["start_s"] < w["end_s"] <= 3.5 for w in words)


def test_wer_json(capsys, short_wav):
    code, out, _ = _run(capsys, "speech", "wer", short_wav, "--text", "A cup of tea!", "--json")
    result = json.loads(out)
    assert code == 0 and "coffee" in result["heard"]
    assert 0.25 <= result["wer"] <= 0.5  # "tea" heard as "coffee": 1 of 4 words, maybe one more


def test_split_plan_of_a_video_uses_its_frame_rate(capsys, tmp_path):
    audio, _ = sentences_with_pauses(SENTENCES[1:3], [0.8, 0.4])
    video = _write_video_with_audio(tmp_path / "talk.mp4", audio, fps=25)
    code, out, err = _run(capsys, "speech", "split-plan", video, "--json", "--min-s", "1.0")
    assert code == 0, err
    result = json.loads(out)
    assert result["fps"] == 25.0 and result["parts"]
    for part in result["parts"]:
        assert part["frames"] % 8 == 1 and 1.0 <= part["end_s"] - part["start_s"] <= 10.0
    assert "store" in " ".join(p["transcript"] for p in result["parts"])


def test_similarity_json(capsys, tmp_path):
    a = write_wav(tmp_path / "a.wav", synth(SENTENCES[0], VOICE_A))
    b = write_wav(tmp_path / "b.wav", synth(SENTENCES[1], VOICE_B))
    code, out, _ = _run(capsys, "speech", "similarity", a, b, "--json")
    assert code == 0 and -1.0 <= json.loads(out)["similarity"] < 0.75
    code, out, _ = _run(capsys, "speech", "similarity", a, a)
    assert code == 0 and "1.000" in out


def test_errors_are_one_line_on_stderr_with_status_2(capsys, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio at all")
    silent_video = tmp_path / "silent.mp4"
    with av.open(str(silent_video), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    for path, expected in ((tmp_path / "missing.wav", "no such file"), (broken, "cannot be opened"),
                           (silent_video, "no audio stream")):
        code, out, err = _run(capsys, "speech", "transcribe", str(path))
        assert code == 2 and out == ""
        assert len(err.strip().splitlines()) == 1 and expected in err, err


def test_a_language_pocketsphinx_lacks_is_refused_with_status_2(capsys, short_wav, monkeypatch):
    monkeypatch.delenv("AVLORA_ASR_MODEL_DIR", raising=False)
    code, _, err = _run(capsys, "speech", "transcribe", short_wav, "--language", "fr")
    assert code == 2 and "AVLORA_ASR_MODEL_DIR" in err


def test_the_speech_command_registers_like_the_engine_commands():
    parser = build_parser()
    args = parser.parse_args(["speech", "wer", "x.wav", "--text", "hi"])
    assert args.command == "speech" and args.speech_command == "wer" and callable(args.func)
    with pytest.raises(SystemExit):
        parser.parse_args(["speech"])
