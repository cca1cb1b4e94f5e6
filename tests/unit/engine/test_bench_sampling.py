"""``avlora bench sampling`` on the toy on the CPU: one checkpoint's validation the eager diffusers
way and the engine's way, in one process, with the samples of both compared.

``test_sampling_compiled.py`` compares the engine's variants compiled against the engine's own
eager model; here the engine's validation path (prompt cache, tensor scales, the trainer's levers,
files written on a thread) is compared with the plain ``LTX2Pipeline`` call and PEFT's own
switches, through the files both write (wav: 16-bit PCM; mp4: H.264 of the same frames).
"""

import contextlib
import io
import json

import pytest
import torch

from avlora.cli import main as avlora
from worker.engine.bench.sampling import sampling_table
from worker.engine.validate import sample_stem

AUDIO_TOLERANCE = 2 / 32768  # two 16-bit PCM levels: the float32 CPU samples agree to far less
FRAMES_TOLERANCE = 0.5  # mean |difference| of the decoded mp4 frames, in 0-255 levels


@pytest.fixture(scope="module")
def result(engine_data_dir, tmp_path_factory):
    """The toy's denormal floats slow the CPU about 50 times (see test_bench_run.py): flushed."""
    out = tmp_path_factory.mktemp("bench-sampling")
    torch.set_flush_denormal(True)
    try:
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = avlora(["bench", "sampling", "--preset", "toy", "--size", "64x64x9", "--prompts", "1",
                           "--inference-steps", "2", "--device", "cpu", "--data-dir", str(engine_data_dir),
                           "--out", str(out), "--json"])
    finally:
        torch.set_flush_denormal(False)
    assert code == 0, stderr.getvalue()
    return json.loads(stdout.getvalue()), out


def test_both_ways_write_every_sample_of_the_checkpoint(result):
    data, out = result
    assert data["samples"] == 2 and data["variants"] == ["lora", "lora-audio-off"]
    stems = {sample_stem(100, 0, variant) for variant in data["variants"]}
    for way in ("eager", "fast-1", "fast-2"):
        names = {p.name for p in (out / way).iterdir()}
        assert names == {f"{stem}.{ext}" for stem in stems for ext in ("mp4", "wav")}, way
    assert data["fast_rounds"] == 2 and not data["fast_compiled"]  # the CPU does not compile


def test_the_fast_samples_are_the_eager_pipelines(result):
    data, _ = result
    rows = {(row["prompt"], row["variant"]): row for row in data["agreement"]}
    assert set(rows) == {(0, "lora"), (0, "lora-audio-off")}
    for row in rows.values():
        assert row["same_shape"]
        assert row["audio_peak"] > 0.01  # a real waveform, not silence
        assert row["audio_max_abs_diff"] <= AUDIO_TOLERANCE, row
        assert row["frames_mean_abs_diff"] <= FRAMES_TOLERANCE, row
    # the random LoRA changes the audio, so agreeing per variant says the audio-off switch matches too
    assert data["lora_audio_effect"][0] > 100 * AUDIO_TOLERANCE


def test_times_ratio_and_flops_are_consistent(result):
    data, _ = result
    for way in (data["eager"], data["fast"]):
        per_sample = way["per_sample_s"]
        assert len(per_sample) == data["samples"] and all(s > 0 for s in per_sample)
        assert way["first_s"] == per_sample[0] and way["steady_s"] == per_sample[1]
        assert sum(per_sample) <= way["total_s"] * 1.001 + 1e-3
        assert sum(per_sample) >= 0.9 * way["total_s"]
    assert data["ratio"] == pytest.approx(data["eager"]["total_s"] / data["fast"]["total_s"])
    assert data["ratio_first_round"] == pytest.approx(data["eager"]["total_s"] / data["fast_first_round_s"])
    flops = data["flops"]
    # modality scale 3: each step is one call on the CFG batch of 2 and one modality-isolation call
    assert flops["calls_per_step"] == 2 and flops["passes_per_step"] == 3
    assert flops["per_pass"] > 0
    assert flops["per_step"] == pytest.approx(3 * flops["per_pass"])
    assert flops["total"] == pytest.approx(flops["per_step"] * data["inference_steps"] * data["samples"])
    assert data["floor_s"] is None and data["rate_flops_per_s"] is None  # no rate measured on the CPU
    table = sampling_table(data)
    assert "eager" in table and "fast" in table and f"{data['ratio']:.2f}x" in table
