"""``avlora bench scaling`` (issue 18): the real training path on 1 and 2 processes (gloo on the
CPU here; one GPU each on a GPU host), tokens per second and the scaling efficiency."""

from __future__ import annotations

import json

from avlora.cli import main as avlora


def test_scaling_bench_measures_one_and_two_processes(engine_data_dir, toy_pipeline, capsys):
    status = avlora(["bench", "scaling", "--processes", "1,2", "--preset", "toy", "--size", "64x64x9",
                     "--steps", "4", "--device", "cpu", "--data-dir", str(engine_data_dir), "--json"])
    out = capsys.readouterr().out
    assert status == 0, out
    result = json.loads(out)
    one, two = result["points"]
    assert (one["processes"], two["processes"]) == (1, 2)
    assert one["status"] == two["status"] == "completed"
    assert two["tokens_per_step"] == 2 * one["tokens_per_step"] > 0  # each rank trains its own clip of a step
    for point in (one, two):
        assert point["steady_step_s"] > 0
        assert abs(point["tokens_per_s"] - point["tokens_per_step"] / point["steady_step_s"]) < 1e-6
    assert one["efficiency"] == 1.0
    assert abs(two["efficiency"] - two["tokens_per_s"] / (2 * one["tokens_per_s"])) < 1e-9


def test_scaling_bench_refuses_more_gpus_than_the_host_has(capsys):
    assert avlora(["bench", "scaling", "--processes", "1,64", "--device", "cuda"]) == 2
    assert "64 processes need 64 GPUs" in capsys.readouterr().err
