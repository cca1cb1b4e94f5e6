"""avlora bench train on the toy model on the CPU."""

import json

import pytest

from avlora.cli import main as avlora
from worker.engine.bench.train import parse_size


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


def _bench_json(capsys, engine_data_dir, *extra):
    code = avlora(["bench", "train", "--preset", "toy", "--size", "64x64x9", "--steps", "2", "--warmup", "1",
                   "--rank", "4", "--device", "cpu", "--data-dir", str(engine_data_dir), "--json", *extra])
    return code, capsys.readouterr()


def test_bench_baseline_switches_every_lever_off_and_reports_memory(engine_data_dir, capsys):
    code, out = _bench_json(capsys, engine_data_dir, "--baseline", "--profile")
    assert code == 0, out.err
    result = json.loads(out.out)
    assert result["baseline"] is True and result["compiled"] is False
    levers = result["levers"]
    assert not any(value for value in levers.values() if isinstance(value, bool))
    assert levers["checkpoint_policy"] == "full" and levers["checkpoint_ratio"] == 1.0  # diffusers' own checkpoint
    memory = result["memory"]
    assert memory["lora_parameter_bytes"] == 4 * result["lora_parameters"]  # float32 master weights
    assert memory["lora_gradient_bytes"] == memory["lora_parameter_bytes"]
    assert memory["optimizer_state_bytes"] >= 2 * memory["lora_parameter_bytes"]  # AdamW's two moments
    # the CPU has no flash-for-mask distinction, but every attention of the block is counted
    assert sum(result["sdpa_backends"].values()) > 0
    assert result["profile"]["wall_s"] > 0 and result["profile"]["top_host_ops"]
    code, out = _bench_json(capsys, engine_data_dir)
    levers = json.loads(out.out)["levers"]
    assert levers["lora_in_base_dtype"] and levers["fused_optimizer"] and not levers["compile_blocks"]  # CPU


def test_bench_low_vram_on_a_cpu_is_refused_naming_what_is_missing(engine_data_dir, capsys):
    code, out = _bench_json(capsys, engine_data_dir, "--low-vram")
    assert code == 1
    assert "adamw8bit" in out.err and "CUDA GPU" in out.err


def test_bench_preprocess_on_the_toy(engine_data_dir, capsys):
    code = avlora(["bench", "preprocess", "--preset", "toy", "--size", "64x64x9", "--repeats", "2",
                   "--device", "cpu", "--data-dir", str(engine_data_dir), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["size"] == "64x64x9" and result["text_tokens"] == 64
    assert result["vae_encodes_per_s"] == pytest.approx(1 / result["vae_s_per_encode"])
    assert result["caption_embeddings_per_s"] > 0 and result["vae_peak_memory_bytes"] > 0


def test_caption_embedding_matches_the_engine_encoder(toy_pipeline):
    """The benchmarked caption path computes what preprocessing stores."""
    import torch

    from worker.engine.bench.preprocess import caption_embedding
    from worker.engine.data.text import encode_caption

    stored = encode_caption(toy_pipeline, "ema_voice, a red square hums", max_sequence_length=64)
    tokens = toy_pipeline.tokenizer(["ema_voice, a red square hums"], padding="max_length", max_length=64,
                                    truncation=True, add_special_tokens=True, return_tensors="pt")
    with torch.no_grad():
        video, audio, mask = caption_embedding(
            toy_pipeline.text_encoder, toy_pipeline.connectors, tokens.input_ids, tokens.attention_mask
        )
    torch.testing.assert_close(video[0].to(torch.bfloat16), stored["connector_video_embeds"])
    torch.testing.assert_close(audio[0].to(torch.bfloat16), stored["connector_audio_embeds"])


def test_bench_suite_records_each_configuration(engine_data_dir, tmp_path):
    from worker.engine.bench.suite import run_plan

    run_plan("cpu-smoke", tmp_path, data_dir=engine_data_dir, only=["baseline", "levers"])
    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [line["name"] for line in lines] == ["environment", "baseline", "levers"]
    assert lines[0]["versions"]["torch"] and lines[1]["baseline"] and not lines[2]["baseline"]
    assert (tmp_path / "profile_levers.txt").read_text().strip()


def test_gpu_plans_name_only_real_bench_settings():
    """A typo in a plan would only show on the GPU, after minutes of device time: check here."""
    from dataclasses import fields

    from worker.engine.bench.suite import PLAN_PRESETS, TRAIN_PLANS
    from worker.engine.bench.train import BenchSpec

    accepted = {f.name for f in fields(BenchSpec)} | {"name", "fallback_for", "repeats"}
    for plan, specs in TRAIN_PLANS.items():
        assert plan in PLAN_PRESETS
        names = {spec["name"] for spec in specs}
        for spec in specs:
            assert set(spec) <= accepted, (plan, spec)
            assert spec.get("fallback_for") in names | {None}, (plan, spec)


def test_bench_selective_checkpointing_counts_less_recompute(engine_data_dir, capsys):
    code, out = _bench_json(capsys, engine_data_dir, "--checkpoint-policy", "none", "--checkpoint-ratio", "0.5",
                            "--checkpoint-rest", "matmul")
    assert code == 0, out.err
    result = json.loads(out.out)
    levers = result["levers"]
    assert (levers["checkpoint_policy"], levers["checkpoint_ratio"], levers["checkpoint_rest"]) == ("none", 0.5, "matmul")
    assert levers["cast_lora_weights_once"] is True and result["loss_finite"]
    # one of the toy's two blocks keeps everything, the other recomputes no matmul or attention:
    # less than half a forward is recomputed
    recompute = result["hardware_flops_per_step"] - result["model_flops_per_step"]
    assert 0 < recompute < result["forward_flops"] / 2
    assert len(result["matmul_rates"]) == 2 and result["matmul_flops_per_s"] == max(result["matmul_rates"])
    assert 0 < result["mfu"] < result["hfu"]


def test_bench_refuses_cuda_graphs_on_a_cpu_and_bad_ratios(engine_data_dir, capsys):
    code, out = _bench_json(capsys, engine_data_dir, "--compile-mode", "reduce-overhead")
    assert code == 2 and "CUDA GPU" in out.err
    with pytest.raises(SystemExit):
        _bench_json(capsys, engine_data_dir, "--checkpoint-ratio", "0")
    assert "not in (0, 1]" in capsys.readouterr().err
