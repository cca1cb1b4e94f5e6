"""The training step per mode: voice gives the video clean, audio_only's audio sees no video."""

from dataclasses import replace

import pytest
import torch

from tests.unit.engine._train_data import run_config
from worker.engine.data.dataset import collate
from worker.engine.step.flow import compute_step_losses, prepare_flow_inputs, run_transformer, stand_in_video
from worker.engine.step.modes import ModeError, lora_targets
from worker.engine.step.timesteps import UniformSampler


@pytest.fixture(scope="module")
def batch(tmp_path_factory, engine_data_dir, toy_pipeline):
    from tests.unit.engine._train_data import build_precomputed
    from worker.engine.data.dataset import PrecomputedDataset

    precomputed = build_precomputed(tmp_path_factory.mktemp("dataset"), engine_data_dir, toy_pipeline)
    dataset = PrecomputedDataset(precomputed, with_audio=True, connectors=toy_pipeline.connectors)
    return collate([dataset[0]], "cpu", torch.float32)


def test_voice_gives_every_video_token_clean_and_scores_the_audio_alone(batch, toy_pipeline):
    inputs = prepare_flow_inputs(batch, UniformSampler(), torch.Generator().manual_seed(0), first_frame_p=1.0,
                                 video_role="clean")
    assert torch.equal(inputs.noisy_video, batch.video)
    assert float(inputs.video_timesteps.abs().max()) == 0.0 and float(inputs.video_sigma.abs().max()) == 0.0
    assert inputs.video_target is None and inputs.audio_target is not None
    assert not torch.allclose(inputs.noisy_audio, batch.audio)
    losses = compute_step_losses(toy_pipeline.transformer, batch, inputs)
    assert losses.video_loss is None and losses.video is None
    assert torch.equal(losses.total.detach(), losses.audio_loss)


def test_audio_only_audio_does_not_see_the_video(batch, toy_pipeline):
    """The stand-in video is isolated: whatever it holds, the audio prediction is the same; the
    same change reaches the audio when the cross-modal attentions run (the check can fail)."""
    transformer = toy_pipeline.transformer
    alone = stand_in_video(batch)
    inputs = prepare_flow_inputs(alone, UniformSampler(), torch.Generator().manual_seed(1), video_role="absent")

    def audio_of(video_batch):
        with torch.no_grad():
            return run_transformer(transformer, video_batch, video_batch.video, inputs.noisy_audio,
                                   torch.zeros(1, video_batch.video.shape[1]), torch.zeros(1), inputs.audio_sigma)[1]

    other = replace(alone, video=torch.randn_like(alone.video) * 3)
    assert alone.video.shape[1] == 1 and alone.isolated
    assert torch.equal(audio_of(alone), audio_of(other))
    assert not torch.allclose(audio_of(replace(alone, isolated=False)), audio_of(replace(other, isolated=False)))


@pytest.mark.parametrize(("training", "allowed"), [
    ({"mode": "voice"}, {"audio_attn1", "audio_attn2", "audio_ff", "video_to_audio_attn"}),
    ({"mode": "audio_only", "first_frame_conditioning_p": 0.0}, {"audio_attn1", "audio_attn2", "audio_ff"}),
    ({"mode": "audio_video", "video_frozen": True}, {"audio_attn1", "audio_attn2", "audio_ff", "video_to_audio_attn"}),
])
def test_lora_targets_keep_the_modes_side(tmp_path, toy_pipeline, training, allowed):
    from worker.engine.lora.names import module_family

    config = run_config(tmp_path, tmp_path, training=training,
                        lora={"target_modules": ["to_k", "to_q", "to_v", "to_out.0", "net.0.proj", "net.2"]})
    kept, dropped = lora_targets(toy_pipeline.transformer, config)
    assert {module_family(n) for n in kept} == allowed
    assert dropped and not {module_family(n) for n in dropped} & allowed


def test_lora_targets_unchanged_for_audio_video_and_refused_when_nothing_is_left(tmp_path, toy_pipeline):
    config = run_config(tmp_path, tmp_path)
    assert lora_targets(toy_pipeline.transformer, config) == (config.lora.target_modules, [])
    voice = run_config(tmp_path, tmp_path, training={"mode": "voice"}, lora={"target_modules": ["attn1.to_k"]})
    with pytest.raises(ModeError, match="reach none"):
        lora_targets(toy_pipeline.transformer, voice)
