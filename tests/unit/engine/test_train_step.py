"""The training step: rectified-flow noising, first-frame conditioning and the masked losses."""

import pytest
import torch

from worker.engine.step.flow import (
    FlowBatch,
    compute_step_losses,
    masked_mse,
    prepare_flow_inputs,
    run_transformer,
)
from worker.engine.step.timesteps import ShiftedLogitNormalSampler


def _batch(frames=3, height=2, width=2, audio_frames=6, text=64):
    gen = torch.Generator().manual_seed(5)
    return FlowBatch(
        video=torch.randn(1, frames * height * width, 128, generator=gen),
        audio=torch.randn(1, audio_frames, 128, generator=gen),
        video_text=torch.randn(1, text, 16, generator=gen),
        audio_text=torch.randn(1, text, 8, generator=gen),
        text_mask=torch.ones(1, text, dtype=torch.int64),
        latent_frames=frames,
        latent_height=height,
        latent_width=width,
        fps=24.0,
        audio_frames=audio_frames,
    )


def test_noising_follows_rectified_flow():
    batch = _batch()
    inputs = prepare_flow_inputs(batch, ShiftedLogitNormalSampler(), torch.Generator().manual_seed(0))
    s = inputs.video_sigma.view(-1, 1, 1)
    noise = inputs.video_target + batch.video  # target = noise - x0
    assert torch.allclose(inputs.noisy_video, (1 - s) * batch.video + s * noise, atol=1e-6)
    assert torch.all(inputs.video_loss_mask)
    # legacy strategy: audio shares the video noise level
    assert torch.equal(inputs.audio_sigma, inputs.video_sigma)


def test_first_frame_tokens_are_clean_at_timestep_zero_and_masked():
    batch = _batch()
    inputs = prepare_flow_inputs(batch, ShiftedLogitNormalSampler(), torch.Generator().manual_seed(0), first_frame_p=1.0)
    first = batch.latent_height * batch.latent_width
    assert torch.equal(inputs.noisy_video[:, :first], batch.video[:, :first])
    assert torch.all(inputs.video_timesteps[:, :first] == 0)
    assert torch.all(inputs.video_timesteps[:, first:] == inputs.video_sigma.view(-1, 1))
    assert not inputs.video_loss_mask[:, :first].any()
    assert inputs.video_loss_mask[:, first:].all()


def test_first_frame_tokens_do_not_count_in_the_video_loss(toy_pipeline):
    transformer = toy_pipeline.transformer
    batch = _batch()
    inputs = prepare_flow_inputs(batch, ShiftedLogitNormalSampler(), torch.Generator().manual_seed(1), first_frame_p=1.0)
    with torch.no_grad():
        losses = compute_step_losses(transformer, batch, inputs)
        video_pred, audio_pred = run_transformer(
            transformer, batch, inputs.noisy_video, inputs.noisy_audio,
            inputs.video_timesteps, inputs.video_sigma, inputs.audio_sigma,
        )
    first = batch.latent_height * batch.latent_width
    rest = ((video_pred[:, first:] - inputs.video_target[:, first:]) ** 2).mean().item()
    everything = ((video_pred - inputs.video_target) ** 2).mean().item()
    assert losses.video == pytest.approx(rest, rel=1e-5)
    assert abs(rest - everything) > 1e-4  # the mask really changes the number
    assert losses.audio == pytest.approx(((audio_pred - inputs.audio_target) ** 2).mean().item(), rel=1e-5)


def test_masked_mse_ignores_masked_tokens_entirely():
    target = torch.zeros(1, 4, 3)
    pred = torch.zeros(1, 4, 3)
    pred[:, 0] = 100.0  # wrong only on a masked token
    mask = torch.tensor([[False, True, True, True]])
    assert masked_mse(pred, target, mask).item() == 0.0
    assert masked_mse(pred, target).item() > 0


def test_audio_loss_weight_scales_only_the_audio_term(toy_pipeline):
    transformer = toy_pipeline.transformer
    batch = _batch()
    inputs = prepare_flow_inputs(batch, ShiftedLogitNormalSampler(), torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain = compute_step_losses(transformer, batch, inputs)
        weighted = compute_step_losses(transformer, batch, inputs, audio_loss_weight=3.0)
    assert weighted.video == pytest.approx(plain.video)
    assert weighted.total.item() == pytest.approx(plain.video + 3.0 * plain.audio, rel=1e-5)
