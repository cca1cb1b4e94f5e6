"""Preprocessing writes the official .precomputed layout and reports unusable clips by name."""

from __future__ import annotations

import json

import av
import pytest
import soundfile
import torch

from avlora.cli import main as avlora_main
from worker.engine.data.preprocess import PreprocessCancelled, PreprocessError, preprocess_dataset

BUCKETS = "64x64x9;64x64x17"


def write_metadata(directory, rows, name="dataset.jsonl"):
    path = directory / name
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


@pytest.fixture
def dataset(tmp_path, make_clip):
    """Two usable clips: a wide stereo one (12 frames) and a square mono one (20 frames)."""
    make_clip("clips/wide.mp4", frames=12, width=96, height=64, audio="stereo")
    make_clip("clips/square.mp4", frames=20, audio="mono", color=(30, 180, 60), tone_hz=330)
    rows = [
        {"caption": "a woman says hello in a quiet room", "media_path": "clips/wide.mp4"},
        {"caption": "ema_voice, a man hums", "media_path": "clips/square.mp4"},
    ]
    return write_metadata(tmp_path, rows)


def run(metadata, toy_pipeline, engine_data_dir, **options):
    options.setdefault("buckets", BUCKETS)
    options.setdefault("trigger", "ema_voice")
    options.setdefault("out_dir", metadata.parent / "out")
    return preprocess_dataset(
        metadata,
        preset="toy",
        data_dir=engine_data_dir,
        pipeline=toy_pipeline,
        **options,
    )


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)  # as the official trainer loads


def test_writes_the_official_layout_with_keys_shapes_and_dtypes(dataset, toy_pipeline, engine_data_dir):
    calls = []
    result = run(dataset, toy_pipeline, engine_data_dir, progress=lambda *a: calls.append(a))
    assert result.ok, result.to_dict()
    assert [(c.name, c.bucket, c.status) for c in result.clips] == [
        ("wide.mp4", "64x64x9", "ok"),
        ("square.mp4", "64x64x17", "ok"),
    ]
    root = dataset.parent / "out" / ".precomputed"

    video = load(root / "latents" / "clips" / "wide.pt")
    assert video["latents"].shape == (128, 2, 2, 2) and video["latents"].dtype == torch.bfloat16
    assert (video["num_frames"], video["height"], video["width"]) == (2, 2, 2)
    assert video["fps"] == pytest.approx(24.0)
    assert load(root / "latents" / "clips" / "square.pt")["latents"].shape == (128, 3, 2, 2)

    sound = load(root / "audio_latents" / "clips" / "wide.pt")
    assert sound["latents"].dtype == torch.float32
    assert sound["latents"].shape == (8, sound["num_time_steps"], 16)
    assert sound["frequency_bins"] == 16
    assert sound["duration"] == pytest.approx(9 / 24)  # audio cut to the bucket's frames at native fps
    assert sound["num_time_steps"] == (round(9 / 24 * 100) + 1 - 1) // 4 + 1

    text = load(root / "conditions" / "clips" / "wide.pt")
    assert text["video_prompt_embeds"].shape == (64, 16) and text["video_prompt_embeds"].dtype == torch.bfloat16
    assert text["audio_prompt_embeds"].shape == (64, 8)
    assert text["prompt_attention_mask"].dtype == torch.int64
    tokens = toy_pipeline.tokenizer("ema_voice, a woman says hello in a quiet room").input_ids
    assert int(text["prompt_attention_mask"].sum()) == len(tokens)  # trigger prepended once
    assert bool(text["prompt_attention_mask"][-len(tokens):].all())  # left padding
    assert text["connector_video_embeds"].shape == (64, 16)
    assert text["connector_audio_embeds"].shape == (64, 8)
    assert bool(text["connector_attention_mask"].all())
    square_tokens = toy_pipeline.tokenizer("ema_voice, a man hums").input_ids
    assert int(load(root / "conditions" / "clips" / "square.pt")["prompt_attention_mask"].sum()) == len(square_tokens)

    assert calls[-1][:2] == (2, 2)
    assert json.loads((root / "preprocess_report.json").read_text())["ok"] is True


def test_stored_latents_are_the_pipelines_normalised_encoding(dataset, toy_pipeline, engine_data_dir):
    from worker.engine.data.video import load_clip_pixels

    run(dataset, toy_pipeline, engine_data_dir)
    stored = load(dataset.parent / "out" / ".precomputed" / "latents" / "clips" / "wide.pt")["latents"]
    pixels = load_clip_pixels(dataset.parent / "clips" / "wide.mp4", width=64, height=64, frames=9)
    vae = toy_pipeline.vae
    with torch.no_grad():
        mode = vae.encode(pixels[None]).latent_dist.mode()[0]
    mean, std = vae.latents_mean.view(-1, 1, 1, 1), vae.latents_std.view(-1, 1, 1, 1)
    expected = (mode - mean) * vae.config.scaling_factor / std
    torch.testing.assert_close(stored.float(), expected.bfloat16().float())


def test_decode_writes_playable_video_and_audio(dataset, toy_pipeline, engine_data_dir):
    result = run(dataset, toy_pipeline, engine_data_dir, decode=True)
    assert result.ok
    root = dataset.parent / "out" / ".precomputed"
    with av.open(str(root / "decoded_videos" / "clips" / "square.mp4")) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert (stream.width, stream.height) == (64, 64)
        assert len(frames) == 17 and float(stream.average_rate) == pytest.approx(24.0)
    samples, rate = soundfile.read(root / "decoded_audio" / "clips" / "square.wav")
    assert rate == 48000 and samples.shape[1] == 2
    assert abs(samples.shape[0] / rate - 17 / 24) < 0.05


def test_too_short_and_silent_clips_are_errors_by_name(tmp_path, make_clip, toy_pipeline, engine_data_dir):
    make_clip("ok.mp4", frames=12)
    make_clip("short.mp4", frames=5)
    make_clip("mute.mp4", frames=12, audio=None)
    metadata = write_metadata(
        tmp_path,
        [
            {"caption": "fine", "media_path": "ok.mp4"},
            {"caption": "too short", "media_path": "short.mp4"},
            {"caption": "no sound", "media_path": "mute.mp4"},
        ],
    )
    result = run(metadata, toy_pipeline, engine_data_dir)
    assert not result.ok
    by_name = {clip.name: clip for clip in result.clips}
    assert by_name["ok.mp4"].status == "ok"
    assert by_name["short.mp4"].code == "too_short_for_buckets"
    assert "short.mp4" in by_name["short.mp4"].reason and "9 frames needed, clip has 5" in by_name["short.mp4"].reason
    assert by_name["mute.mp4"].code == "no_audio_track" and "mute.mp4" in by_name["mute.mp4"].reason
    root = tmp_path / "out" / ".precomputed"
    assert sorted(p.name for p in (root / "latents").glob("*.pt")) == ["ok.pt"]
    assert not (root / "audio_latents" / "mute.pt").exists()


def test_cli_exits_non_zero_naming_the_clip(tmp_path, make_clip, engine_data_dir, capsys):
    make_clip("fine.mp4", frames=12)
    make_clip("quiet.mp4", frames=12, audio=None)
    metadata = write_metadata(
        tmp_path,
        [{"caption": "a", "media_path": "fine.mp4"}, {"caption": "b", "media_path": "quiet.mp4"}]
    )
    argv = ["preprocess", str(metadata), "--preset", "toy", "--buckets", "64x64x9", "--trigger", "ema_voice",
            "--out", str(tmp_path / "out"), "--data-dir", str(engine_data_dir), "--json"]
    status = avlora_main(argv)
    captured = capsys.readouterr()
    assert status == 1
    report = json.loads(captured.out)
    assert report["ok"] is False
    assert report["errors"] == ["quiet.mp4: the clip has no audio track"]
    assert [c["status"] for c in report["clips"]] == ["ok", "error"]
    assert "quiet.mp4" in captured.err

    bad = avlora_main(argv[:5] + ["64x64x10"] + argv[6:])
    assert bad == 2
    assert "multiple of 8 plus 1" in capsys.readouterr().err


def test_bad_arguments_raise_before_any_work(dataset, toy_pipeline, engine_data_dir):
    with pytest.raises(PreprocessError, match="buckets"):
        run(dataset, toy_pipeline, engine_data_dir, buckets="65x64x9")
    with pytest.raises(PreprocessError, match="trigger"):
        run(dataset, toy_pipeline, engine_data_dir, trigger="two words")
    assert not (dataset.parent / "out").exists()


def test_cancel_stops_between_clips_and_the_rerun_reuses_finished_ones(dataset, toy_pipeline, engine_data_dir):
    seen = []
    with pytest.raises(PreprocessCancelled):
        run(dataset, toy_pipeline, engine_data_dir, progress=lambda i, t, m: seen.append(i),
            should_cancel=lambda: len(seen) >= 2)
    result = run(dataset, toy_pipeline, engine_data_dir)
    assert [c.status for c in result.clips] == ["cached", "ok"]


def test_an_audio_column_supplies_the_sound_of_a_silent_video(tmp_path, make_clip, toy_pipeline, engine_data_dir):
    import numpy as np

    make_clip("visual.mp4", frames=12, audio=None)
    t = np.arange(44100) / 44100
    soundfile.write(tmp_path / "voice.wav", np.stack([np.sin(2 * np.pi * 300 * t)] * 2, axis=1) * 0.3, 44100)
    metadata = write_metadata(tmp_path, [{"caption": "a voice", "video": "visual.mp4", "audio": "voice.wav"}])
    result = run(metadata, toy_pipeline, engine_data_dir)
    assert result.ok, result.to_dict()
    sound = load(tmp_path / "out" / ".precomputed" / "audio_latents" / "visual.pt")
    assert sound["duration"] == pytest.approx(9 / 24)

    soundfile.write(tmp_path / "voice.wav", np.stack([np.sin(2 * np.pi * 500 * t)] * 2, axis=1) * 0.3, 44100)
    again = run(metadata, toy_pipeline, engine_data_dir)
    assert again.clips[0].recomputed == ["audio_latents"]  # only the sound changed


def test_a_new_folder_takes_the_unchanged_entries_of_an_earlier_run(dataset, toy_pipeline, engine_data_dir, tmp_path,
                                                                    monkeypatch):
    import os

    from worker.engine.data import cache, reuse

    run(dataset, toy_pipeline, engine_data_dir, decode=True)
    rows = [json.loads(line) for line in dataset.read_text().splitlines()]
    rows[1]["caption"] = "ema_voice, a man hums softly"
    edited = write_metadata(dataset.parent, rows, name="edited.jsonl")
    again = run(edited, toy_pipeline, engine_data_dir, decode=True, out_dir=tmp_path / "again",
                reuse_from=[dataset.parent / "out"])
    assert again.ok and [c.recomputed for c in again.clips] == [[], ["conditions"]]
    assert [c.status for c in again.clips] == ["cached", "ok"]
    assert again.reuse_counts() == {"reused": 9, "computed": 1, "clips_reused": 1, "clips_computed": 1,
                                    "computed_kinds": {"conditions": 1}}
    before, after = dataset.parent / "out" / ".precomputed", tmp_path / "again" / ".precomputed"
    for entry in ("latents/clips/wide.pt", "audio_latents/clips/square.pt", "conditions/clips/wide.pt",
                  "decoded_videos/clips/square.mp4", "decoded_audio/clips/wide.wav"):
        assert os.path.samefile(after / entry, before / entry)  # hard-linked: no second copy on disk
    changed = load(after / "conditions/clips/square.pt")["video_prompt_embeds"]
    assert not torch.equal(changed, load(before / "conditions/clips/square.pt")["video_prompt_embeds"])

    # on another file system (no hard links) the entry is copied, readable by the web process
    monkeypatch.setattr(reuse.os, "link", lambda *a: (_ for _ in ()).throw(OSError(18, "cross-device link")))
    source = before / "latents/clips/wide.pt"
    inputs = json.loads(cache.sidecar_path(source).read_text())["inputs"]
    copied = tmp_path / "copy" / ".precomputed" / "latents" / "wide.pt"
    assert reuse.EarlierEntries([before]).take("latents", copied, inputs)
    assert copied.read_bytes() == source.read_bytes() and not os.path.samefile(copied, source)
    assert cache.is_fresh(copied, cache.fingerprint(inputs)) and copied.stat().st_mode & 0o777 == 0o644
