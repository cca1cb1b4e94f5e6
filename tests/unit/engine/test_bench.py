"""avlora bench train on the toy model on the CPU."""

import json

import pytest

from app.cli import main as avlora
from worker.engine.bench import parse_size


def test_bench_train_runs_on_the_toy_cpu(engine_data_dir, capsys):
    code = avlora(["bench", "train", "--preset", "toy", "--size", "64x64x9", "--steps", "2", "--warmup", "1",
                   "--rank", "4", "--device", "cpu", "--data-dir", str(engine_data_dir), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["device"] == "cpu" and result["dtype"] == "float32"
    assert result["video_tokens"] == 2 * 2 * 2  # (9-1)/8+1 frames x 64/32 x 64/32
    assert result["audio_tokens"] == round(9 / 24 * 25)
    assert result["steps"] == 2 and result["median_s_per_step"] > 0 and result["tokens_per_s"] > 0
    assert result["loss_finite"] and result["lora_parameters"] > 0
    # gradient checkpointing recomputes the forward: hardware FLOPs = model FLOPs + one forward
    assert result["forward_flops"] > 0
    assert result["hardware_flops_per_step"] == pytest.approx(result["model_flops_per_step"] + result["forward_flops"])
    assert result["model_flops_per_step"] > result["forward_flops"]
    assert 0 < result["mfu"] < result["hfu"] and result["matmul_flops_per_s"] > 0
    assert result["peak_memory_bytes"] > 0


def test_bench_rejects_bad_sizes(capsys):
    assert avlora(["bench", "train", "--preset", "toy", "--size", "64x64x10"]) == 2
    assert "8k+1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="multiples of 32"):
        parse_size("100x64x9")
