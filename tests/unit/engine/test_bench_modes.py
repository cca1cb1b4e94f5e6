"""``avlora bench train --mode M``: each training mode's real step, timed on the toy on the CPU."""

import dataclasses
import functools
import json

import pytest
import torch

from avlora.cli import main as avlora
from core.recipe.architecture import AUDIO_FAMILIES, VIDEO_FAMILIES, module_family
from core.recipe.modes import AUDIO_STREAM_FAMILIES, TRAINING_MODES
from worker.engine.bench import train as bench
from worker.engine.bench.flops import FlopShape, count_step_flops
from worker.engine.bench.mode_step import ModeStep, mode_lora_targets, reference_frames
from worker.engine.step.graphed import GraphedStep, GraphUnavailable

CLIP_AUDIO = round(9 / 24 * 25)  # the 64x64x9 clip's audio latents


def _bench(capsys, data_dir, *extra):
    code = avlora(["bench", "train", "--preset", "toy", "--size", "64x64x9", "--steps", "1", "--warmup", "0",
                   "--rank", "4", "--device", "cpu", "--data-dir", str(data_dir), "--json", *extra])
    out = capsys.readouterr()
    return code, out


@pytest.mark.parametrize("mode", TRAINING_MODES)
def test_each_mode_times_its_own_step_and_says_what_it_took_in(engine_data_dir, capsys, mode):
    code, out = _bench(capsys, engine_data_dir, "--mode", mode)
    assert code == 0, out.err
    result = json.loads(out.out)
    assert result["mode"] == mode and result["loss_finite"] and result["median_s_per_step"] > 0
    families = set(result["lora_families"])
    video = result["video_tokens"]
    if mode == "audio_video":
        assert video == 8 and result["reference_audio_tokens"] == 0
        assert families & set(VIDEO_FAMILIES) and families & set(AUDIO_FAMILIES)
    elif mode == "voice":
        assert video == 8 and result["reference_audio_tokens"] == 0
        assert families <= set(AUDIO_FAMILIES) and "video_to_audio_attn" in families  # no video-side LoRA
    elif mode == "audio_only":
        assert video == 1  # the one-token stand-in video
        assert families <= set(AUDIO_STREAM_FAMILIES)  # not even the cross-modal attentions
    else:  # reference_voice: a reference as long as the clip in front of the target, not scored
        assert video == 8 and families <= set(AUDIO_FAMILIES)
        assert result["reference_audio_tokens"] == CLIP_AUDIO
    assert result["audio_tokens"] == CLIP_AUDIO
    assert result["audio_tokens_in"] == result["audio_tokens"] + result["reference_audio_tokens"]
    assert result["tokens_per_s"] == pytest.approx((video + result["audio_tokens_in"]) / result["median_s_per_step"])
    assert 0 < result["mfu"] < result["hfu"]


def test_reference_length_follows_the_recipe_and_bad_ones_are_refused(engine_data_dir, capsys):
    assert reference_frames("reference_voice", CLIP_AUDIO, None) == CLIP_AUDIO  # a clip of the same bucket
    assert reference_frames("reference_voice", 300, None) == 150  # training cuts references to 6 s
    assert reference_frames("reference_voice", CLIP_AUDIO, 2.0) == 50
    assert reference_frames("voice", CLIP_AUDIO, None) == 0
    code, out = _bench(capsys, engine_data_dir, "--mode", "reference_voice", "--reference-seconds", "7")
    assert code == 2 and "at most 6 s" in out.err
    code, out = _bench(capsys, engine_data_dir, "--mode", "voice", "--reference-seconds", "2")
    assert code == 2 and "--mode reference_voice" in out.err


def test_the_lora_is_narrowed_as_the_trainer_narrows_it(toy_pipeline):
    transformer = toy_pipeline.transformer
    kept, left_out = mode_lora_targets(transformer, "voice", ("to_k", "to_q", "to_v", "to_out.0"))
    assert kept and left_out
    assert {module_family(name) for name in kept} == {"audio_attn1", "audio_attn2", "video_to_audio_attn"}
    assert {module_family(name) for name in left_out} == {"attn1", "attn2", "audio_to_video_attn"}
    assert mode_lora_targets(transformer, "audio_video", None) == (["to_k", "to_q", "to_v", "to_out.0"], [])


def test_the_flop_count_includes_the_reference_tokens(toy_pipeline):
    config = {k: v for k, v in toy_pipeline.transformer.config.items() if not k.startswith("_")}

    def counted(frames):
        shape = FlopShape(config, 2, (64, 64, 9), 64, "cpu", torch.float32, 4, None, "reference_voice", frames)
        return count_step_flops(shape, gradient_checkpointing=False)

    (short_step, short_forward), (long_step, long_forward) = counted(9), counted(50)
    assert long_forward > short_forward and long_step > short_step


def _timed_step(spec, data_dir, *, graph: bool):
    levers = dataclasses.replace(spec.levers("cpu"), cuda_graph=graph)
    torch.manual_seed(0)
    model = bench._build_model(spec, levers, "cpu", torch.float32, is_toy=True, data_dir=data_dir, model_dir=None)
    clip = bench.synthetic_batch(model.transformer, spec.size, 64, "cpu", torch.float32)
    mode_step = ModeStep.build(clip, spec.mode, reference_frames(spec.mode, clip.audio.shape[1], None))
    timed = bench._step_function(model, mode_step, levers, torch.float32, baseline=False)
    for _ in range(2):
        timed.run()
    return timed


SPEC = bench.BenchSpec(preset="toy", size=(64, 64, 9), rank=4, device="cpu", mode="reference_voice")


def test_reference_voice_through_the_whole_step_graph_computes_the_eager_step(engine_data_dir, monkeypatch):
    """The CUDA graph's bookkeeping (``capture=False`` on the CPU): one graph for every step, the
    reference carried into its buffers, the same losses as the eager step."""
    monkeypatch.setattr(bench, "GraphedStep", functools.partial(GraphedStep, capture=False))
    eager, graphed = _timed_step(SPEC, engine_data_dir, graph=False), _timed_step(SPEC, engine_data_dir, graph=True)
    (entry,) = graphed.graphed._entries.values()
    assert entry.batch.audio_coords.shape[2] == 2 * CLIP_AUDIO  # reference + target positions
    assert entry.inputs.audio_timesteps.shape == (1, 2 * CLIP_AUDIO)
    assert torch.equal(torch.stack(graphed.totals), torch.stack(eager.totals))
    assert not graphed.notes


def test_a_graph_the_mode_cannot_record_is_noted_and_the_steps_run_eagerly(engine_data_dir, monkeypatch):
    class Unrecordable(GraphedStep):
        def __call__(self, batch, inputs):
            raise GraphUnavailable("CUDA graph capture failed: some reason", permanent=True)

    monkeypatch.setattr(bench, "GraphedStep", functools.partial(Unrecordable, capture=False))
    eager, fallen = _timed_step(SPEC, engine_data_dir, graph=False), _timed_step(SPEC, engine_data_dir, graph=True)
    assert fallen.graphed is None and len(fallen.notes) == 1
    assert "reference_voice" in fallen.notes[0] and "some reason" in fallen.notes[0] and "eagerly" in fallen.notes[0]
    assert torch.equal(torch.stack(fallen.totals), torch.stack(eager.totals))
