"""avlora bench preprocess --clips/--generate: the real preprocessing over a folder of generated
clips on the toy, on the CPU (small clips here; the real bench's default is 1080p30)."""

import contextlib
import io
import json
import time

import pytest

from avlora.cli import main as avlora
from worker.engine.bench.clip_phases import PHASES

CLIP_PHASES = ("probe", "source_hash", "video_decode", "video_resize", "video_vae_encode", "audio_decode",
               "audio_mel", "audio_vae_encode", "caption_embedding", "cache_write")
PREVIEW_PHASES = ("preview_video_decode", "preview_audio_decode", "preview_write")


def _run(*args):
    """``avlora ARGS`` -> (exit status, stdout, stderr, wall seconds)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = avlora(list(args))
    return code, stdout.getvalue(), stderr.getvalue(), time.perf_counter() - started


def _bench(data_dir, *extra):
    code, out, err, wall = _run("bench", "preprocess", "--preset", "toy", "--device", "cpu", "--data-dir",
                                str(data_dir), "--buckets", "64x64x9", "--json", *extra)
    return code, (json.loads(out) if code == 0 else None), err, wall


@pytest.fixture(scope="module")
def two_clips(tmp_path_factory, engine_data_dir):
    """Two generated 320x180 clips of 1 s (30 fps, AAC), preprocessed by the bench into ``out``."""
    folder = tmp_path_factory.mktemp("bench-clips")
    result = _bench(engine_data_dir, "--generate", "2", "--generate-size", "320x180", "--generate-seconds", "1",
                    "--clips", str(folder / "clips"), "--out", str(folder / "out"))
    return folder, result


def test_the_bench_times_every_phase_of_the_real_preprocessing(two_clips):
    _, (code, result, err, wall) = two_clips
    assert code == 0, err
    assert result["clips"] == result["clips_ok"] == 2 and not result["errors"]
    assert result["device"] == "cpu" and result["preset"] == "toy" and result["dtype"] == "float32"
    assert list(result["phases"]) == list(PHASES)
    for name in (*CLIP_PHASES, "model_load"):
        assert result["phases"][name]["seconds"] > 0, name
    for name in PREVIEW_PHASES:  # no previews without --decode
        assert result["phases"][name]["seconds"] == 0 and result["phases"][name]["calls"] == 0
    calls = {name: result["phases"][name]["calls"] for name in CLIP_PHASES}
    assert calls["video_decode"] == calls["audio_decode"] == calls["caption_embedding"] == 2
    assert calls["cache_write"] == 6  # video latents, audio latents, conditions per clip


def test_clips_per_second_agree_with_the_times(two_clips):
    _, (_, result, _, wall) = two_clips
    phases = result["phases"]
    clips_s = sum(p["seconds"] for name, p in phases.items() if name != "model_load")
    assert result["preprocess_s"] == pytest.approx(clips_s)
    assert result["total_s"] == pytest.approx(result["preprocess_s"] + phases["model_load"]["seconds"])
    assert result["clips_per_s"] > 0
    assert result["clips_per_s"] == pytest.approx(2 / result["preprocess_s"])
    assert result["clips_per_s_with_load"] == pytest.approx(2 / result["total_s"])
    assert result["total_s"] < wall  # the clock ran inside the command, generation apart
    assert sum(p["share"] for name, p in phases.items() if name != "model_load") == pytest.approx(1.0)
    assert phases["video_decode"]["per_clip_s"] == pytest.approx(phases["video_decode"]["seconds"] / 2)
    rows = result["per_clip"]
    assert [row["clip"] for row in rows] == ["gen_000.mp4", "gen_001.mp4"]
    for row in rows:
        assert all(row["phases"][name] > 0 for name in ("video_decode", "video_vae_encode", "caption_embedding"))
    assert sum(row["seconds"] for row in rows) <= result["preprocess_s"]


def test_the_table_shows_clips_per_second_and_every_phase(two_clips):
    from worker.engine.bench.clip_phases import clips_table

    _, (_, result, _, _) = two_clips
    table = clips_table(result)
    assert f"{result['clips_per_s']:.3f} clips/s" in table
    assert "2 x 320x180 h264 30 fps 1.0 s, audio aac 48000 Hz 2 ch" in table
    assert all(label in table for label in PHASES.values())


def test_the_generated_clips_are_h264_with_aac_audio(two_clips):
    _, (_, result, _, _) = two_clips
    assert result["generated"]["clips"] == 2 and result["generated"]["size"] == "320x180"
    for info in result["clip_info"]:
        assert (info["codec"], info["width"], info["height"], info["fps"]) == ("h264", 320, 180, 30.0)
        assert info["frames"] == 30 and info["duration_s"] == pytest.approx(1.0, abs=0.05)
        assert info["audio"] == "aac 48000 Hz 2 ch" and info["bitrate_mbit_s"] > 0


def test_the_cache_it_wrote_is_a_dataset_training_loads(two_clips):
    from worker.engine.data.dataset import PrecomputedDataset, cache_preset

    folder, _ = two_clips
    dataset = PrecomputedDataset(folder / "out")
    assert dataset.names == ["gen_000.pt", "gen_001.pt"] and cache_preset(folder / "out") == "toy"
    sample = dataset[0]
    assert sample.video.shape[1:] == (2, 2, 2)  # 64x64x9: (9-1)/8+1 latent frames, 64/32 x 64/32
    assert sample.audio is not None and sample.audio.shape[0] == 8
    assert sample.fps == pytest.approx(30.0) and sample.video_text.shape[0] == sample.text_mask.shape[0]


def test_a_folder_with_a_cache_or_without_clips_is_refused(two_clips, engine_data_dir, tmp_path):
    folder, _ = two_clips
    code, _, err, _ = _bench(engine_data_dir, "--clips", str(folder / "clips"), "--out", str(folder / "out"))
    assert code == 2 and "already holds .precomputed" in err
    code, _, err, _ = _bench(engine_data_dir, "--clips", str(tmp_path))
    assert code == 2 and "no video files" in err


def test_with_decode_the_previews_the_studio_job_writes_are_timed(two_clips, engine_data_dir, tmp_path):
    folder, _ = two_clips
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "gen_000.mp4").symlink_to(folder / "clips" / "gen_000.mp4")
    code, result, err, _ = _bench(engine_data_dir, "--clips", str(tmp_path / "one"), "--decode",
                                  "--out", str(tmp_path / "out"))
    assert code == 0, err
    for name in PREVIEW_PHASES:
        assert result["phases"][name]["seconds"] > 0, name
    assert result["phases"]["preview_write"]["calls"] == 2  # the mp4 and the wav
    precomputed = tmp_path / "out" / ".precomputed"
    assert (precomputed / "decoded_videos" / "gen_000.mp4").is_file()
    assert (precomputed / "decoded_audio" / "gen_000.wav").is_file()


def test_a_full_size_preset_with_random_weights_needs_no_model_files(two_clips, toy_pipeline, tmp_path,
                                                                    monkeypatch):
    """The GPU path (--preset ltx-2.3 --random-weights) runs the same preprocessing, with the random
    build handed over; here the toy stands in for the build, which needs a GPU's memory."""
    import worker.engine.bench.preprocess_clips as bench

    built = []
    monkeypatch.setattr(bench, "random_preprocess_pipeline",
                        lambda preset, device, dtype, with_vocoder: built.append(preset) or toy_pipeline)
    monkeypatch.delenv("AVLORA_MODEL_DIR", raising=False)
    folder, _ = two_clips
    code, out, err, _ = _run("bench", "preprocess", "--preset", "ltx-2.3", "--random-weights", "--device", "cpu",
                             "--clips", str(folder / "clips"), "--buckets", "64x64x9", "--out", str(tmp_path), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert built == ["ltx-2.3"] and result["random_weights"] and result["clips_ok"] == 2
    sidecar = json.loads((tmp_path / ".precomputed" / "latents" / "gen_000.pt.json").read_text())
    assert sidecar["inputs"]["model"] == "ltx-2.3:random-weights"


def test_the_random_build_holds_what_preprocessing_uses_at_full_size():
    """Built on the meta device (no memory): the shapes and dtypes a GPU run gets."""
    import torch

    from worker.engine.bench.preprocess_clips import random_preprocess_pipeline

    pipe = random_preprocess_pipeline("ltx-2.3", "meta", torch.bfloat16, with_vocoder=False)
    assert pipe.transformer is None and pipe.vocoder is None
    assert pipe.vae.dtype == pipe.text_encoder.dtype == pipe.connectors.dtype == torch.bfloat16
    assert pipe.audio_vae.dtype == torch.float32  # as a load gives it
    gemma = sum(p.numel() for p in pipe.text_encoder.parameters())
    assert 11.5e9 < gemma < 13e9  # Gemma-3 12B, text and vision towers
    assert pipe.text_encoder.config.text_config.num_hidden_layers == 48
    with pytest.raises(ValueError, match="LTX-2.3 and LTX-2"):
        random_preprocess_pipeline("ltx-2.5", "meta", torch.bfloat16, with_vocoder=False)
