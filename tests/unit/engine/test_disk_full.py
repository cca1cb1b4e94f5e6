"""The engine's writes on a real full disk (a small tmpfs): checkpoints, cache entries, samples.

Each names the condition ("the disk holding DATA_DIR is full: N MiB free") whatever the library
raised (torch's ``RuntimeError``, a ``SafetensorError``, PyAV, soundfile), leaves no partial or
temporary file, and never touches what was there before (the previous checkpoint above all).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from core.errors import DiskFull
from core.files import atomic_write
from tests.disk_support import KIB, MIB, files_under, fill_disk, small_disk
from worker.engine.data import cache
from worker.engine.lora.adapters import add_lora, trainable_parameters
from worker.engine.lora.checkpoint import list_checkpoint_steps, save_checkpoint
from worker.engine.lora.files import extract_lora_weights, save_diffusers
from worker.engine.model.pipelines import load_pipeline
from worker.engine.sampling import GeneratedSample, write_mp4, write_wav

MESSAGE = re.compile(r"^the disk holding DATA_DIR is full: \d+ MiB free$")
TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]


@pytest.fixture
def disk(tmp_path):
    """A 32 MiB disk of its own."""
    with small_disk(tmp_path / "disk", 32) as root:
        yield root


@pytest.fixture(scope="module")
def trainer_state(engine_data_dir):
    """A toy transformer with a LoRA, an AdamW that has stepped once, its scheduler and generator."""
    pipe = load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32)  # a private copy
    add_lora(pipe.transformer, rank=4, alpha=4, target_modules=TARGETS, init_seed=3)
    params = trainable_parameters(pipe.transformer)
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    sum(p.sum() for p in params).backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: 1.0)
    return pipe.transformer, optimizer, scheduler, torch.Generator().manual_seed(0)


def _save(output_dir, step, trainer_state):
    transformer, optimizer, scheduler, generator = trainer_state
    return save_checkpoint(output_dir, step, extract_lora_weights(transformer), optimizer=optimizer,
                           scheduler=scheduler, generator=generator, fingerprint="f" * 64)


@pytest.mark.parametrize("when", ["full before the save", "filled by another writer during the save"])
def test_a_checkpoint_on_a_full_disk_keeps_the_previous_one_and_leaves_nothing(when, disk, trainer_state,
                                                                               monkeypatch):
    """The toy checkpoint is ~230 KB: with 100 KiB left its two LoRA files (~45 KB) fit, its state does not."""
    run = disk / "runs" / "1"
    _save(run, 2, trainer_state)
    before = files_under(run)
    assert sorted(before) == ["checkpoints/lora_weights_step_00002.diffusers.safetensors",
                              "checkpoints/lora_weights_step_00002.safetensors",
                              "checkpoints/training_state_step_00002.pt"]
    if when == "full before the save":
        fill_disk(disk, leave_bytes=100 * KIB)
    else:  # the free-space check passes; the disk fills once the LoRA files are written
        import worker.engine.lora.checkpoint as checkpoint

        def save_then_fill(*args, **kwargs):
            written = save_diffusers(*args, **kwargs)
            fill_disk(disk, leave_bytes=100 * KIB)
            return written

        monkeypatch.setattr(checkpoint, "save_diffusers", save_then_fill)

    with pytest.raises(DiskFull) as caught:
        _save(run, 4, trainer_state)
    assert MESSAGE.match(caught.value.message), caught.value.message
    assert caught.value.status == 507 and caught.value.code == "disk_full"
    assert files_under(run) == before  # byte-identical, and no LoRA file or temporary of step 4
    assert list_checkpoint_steps(run) == [2]


@pytest.mark.parametrize("writer", ["torch.save", "safetensors"])
def test_whatever_the_serialiser_raises_a_full_disk_is_named(writer, disk):
    """No free-space check first: the failure itself (torch's RuntimeError, a SafetensorError) is read."""
    tensors = {"x": torch.arange(1 * MIB, dtype=torch.float32)}  # 4 MiB, far more than is left
    write = {"torch.save": lambda tmp: torch.save(tensors, tmp),
             "safetensors": lambda tmp: save_file(tensors, str(tmp))}[writer]
    target = disk / "out" / "tensors.bin"
    target.parent.mkdir()
    target.write_bytes(b"the previous file")
    fill_disk(disk, leave_bytes=256 * KIB)

    with pytest.raises(DiskFull) as caught:
        atomic_write(target, write)
    assert MESSAGE.match(caught.value.message), caught.value.message
    assert [p.name for p in target.parent.iterdir()] == ["tensors.bin"]  # no temporary left
    assert target.read_bytes() == b"the previous file"


def test_a_cache_entry_on_a_full_disk_keeps_the_old_entry(disk):
    entry = disk / ".precomputed" / "latents" / "clip.pt"
    cache.save_tensors(entry, {"latents": torch.zeros(4, 4)}, {"clip": "old"})
    before = files_under(disk / ".precomputed")
    fill_disk(disk, leave_bytes=300 * KIB)

    with pytest.raises(DiskFull) as caught:
        cache.save_tensors(entry, {"latents": torch.zeros(1 * MIB)}, {"clip": "new"})
    assert MESSAGE.match(caught.value.message)
    assert files_under(disk / ".precomputed") == before
    assert cache.is_fresh(entry, cache.fingerprint({"clip": "old"}))


@pytest.mark.parametrize("kind", ["wav", "mp4"])
def test_a_sample_on_a_full_disk_leaves_no_partial_file(kind, disk):
    noise = np.random.default_rng(0)
    sample = GeneratedSample(frames=noise.integers(0, 255, (24, 256, 256, 3), dtype=np.uint8),
                             audio=noise.uniform(-0.5, 0.5, (2, 24000 * 4)).astype(np.float32),
                             sample_rate=24000, fps=24.0)
    samples = disk / "samples"
    samples.mkdir()
    fill_disk(disk, leave_bytes=128 * KIB)

    with pytest.raises(DiskFull) as caught:
        (write_wav if kind == "wav" else write_mp4)(samples / f"step_000002_01.{kind}", sample)
    assert MESSAGE.match(caught.value.message)
    assert list(samples.iterdir()) == []
