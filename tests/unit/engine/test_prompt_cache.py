"""Validation prompts encoded once: same samples, text encoder released, 8-bit never silently ignored."""

import numpy as np
import pytest
import torch

from tests.unit.engine._train_data import build_precomputed, run_config
from worker.engine.data.prompt_cache import encode_and_release, encode_prompts, sampling_texts
from worker.engine.data.text import text_encoder_8bit_unavailable
from worker.engine.model.pipelines import load_pipeline
from worker.engine.progress import TrainCallbacks
from worker.engine.sampling import SampleSpec, generate
from worker.engine.train import Trainer

PROMPT = "ema_voice, a red square hums a low tone"


class Recorder(TrainCallbacks):
    """Keeps the run's log lines."""

    def __init__(self):
        self.logs = []

    def on_log(self, level, message):
        self.logs.append((level, message))


def _spec(negative_prompt: str) -> SampleSpec:
    return SampleSpec(prompt=PROMPT, width=64, height=64, num_frames=9, num_inference_steps=2,
                      guidance_scale=3.0, audio_guidance_scale=7.0, negative_prompt=negative_prompt)


@pytest.mark.parametrize("negative_prompt", ["", "blurry, distorted audio"])
def test_samples_from_cached_embeddings_equal_samples_encoded_by_the_pipeline(toy_pipeline, negative_prompt):
    torch.set_num_threads(1)
    spec = _spec(negative_prompt)
    cache = encode_prompts(toy_pipeline, sampling_texts([PROMPT], negative_prompt))
    before = generate(toy_pipeline, spec)
    cached = generate(toy_pipeline, spec, cache)
    assert np.array_equal(before.frames, cached.frames)
    assert np.array_equal(before.audio, cached.audio)


def test_a_prompt_that_was_not_encoded_is_named(toy_pipeline):
    cache = encode_prompts(toy_pipeline, [PROMPT])
    with pytest.raises(KeyError, match="was not encoded"):
        generate(toy_pipeline, _spec("ugly"), cache)


def _count_encoder_calls(pipe):
    calls = []
    encoder = pipe.text_encoder.model  # the language model is what runs (no vocabulary logits)
    handle = encoder.register_forward_pre_hook(lambda module, args: calls.append(1))
    return calls, handle


def test_training_encodes_validation_prompts_once_and_never_again(tmp_path, engine_data_dir, toy_pipeline):
    torch.set_num_threads(1)
    precomputed = build_precomputed(tmp_path / "dataset", engine_data_dir, toy_pipeline)
    config = run_config(
        tmp_path / "run", precomputed, optimization={"steps": 2}, checkpoints={"interval": 1},
        validation={"variants": ["lora", "base"], "at_checkpoints": True},
    )
    pipe = load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32)
    calls, handle = _count_encoder_calls(pipe)
    try:
        trainer = Trainer(config, data_dir=engine_data_dir, pipeline=pipe, callbacks=Recorder())
        assert len(calls) == 2  # the prompt and the (empty) negative prompt, before any step
        trainer.run()
    finally:
        handle.remove()
    samples = sorted(p.name for p in (tmp_path / "run" / "samples").glob("*.wav"))
    assert samples == ["base_01.wav", "step_000000_01.wav", "step_000001_01.wav", "step_000002_01.wav"]
    assert len(calls) == 2 and pipe.text_encoder.device.type == "cpu"


def test_8bit_text_encoder_on_cpu_falls_back_with_a_warning_in_the_run_log(tmp_path, engine_data_dir, toy_pipeline):
    precomputed = build_precomputed(tmp_path / "dataset", engine_data_dir, toy_pipeline)
    config = run_config(tmp_path / "run", precomputed).model_copy(update={"load_text_encoder_in_8bit": True})
    recorder = Recorder()
    trainer = Trainer(config, data_dir=engine_data_dir, device="cpu", callbacks=recorder)  # loads the toy itself
    warnings = [m for level, m in recorder.logs if level == "warning" and "load_text_encoder_in_8bit" in m]
    assert len(warnings) == 1 and "needs a CUDA GPU" in warnings[0] and "cpu" in warnings[0]
    assert PROMPT in trainer.prompt_cache and (trainer.plan.negative_prompt or "") in trainer.prompt_cache


def test_8bit_reasons_name_what_is_missing(monkeypatch, toy_pipeline):
    assert "CUDA GPU" in text_encoder_8bit_unavailable("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "no CUDA GPU is visible" in text_encoder_8bit_unavailable("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    assert "bitsandbytes package is not installed" in text_encoder_8bit_unavailable("cuda:0")
    logs = []
    encode_and_release(toy_pipeline, [PROMPT], device="cpu", dtype=torch.float32, load_in_8bit=False,
                       on_log=lambda level, message: logs.append((level, message)))
    assert not [m for level, m in logs if level == "warning"]  # no warning unless 8-bit was asked for
