"""Low-VRAM path: int8 frozen base (torchao) under a trainable PEFT LoRA, and its refusals."""

import pytest
import torch

from tests.unit.engine._train_data import build_precomputed, run_config
from worker.engine.data.dataset import collate
from worker.engine.lora.adapters import add_lora, lora_layers, trainable_parameters
from worker.engine.model.pipelines import load_pipeline
from worker.engine.step import quantize
from worker.engine.step.flow import fixed_noise_losses
from worker.engine.step.levers import StepLevers
from worker.engine.step.quantize import (
    QuantizationUnavailable,
    check_quantization_supported,
    quantize_frozen_base,
    quantized_layer_count,
)
from worker.engine.train import Trainer, TrainingError


@pytest.fixture(scope="module")
def precomputed(tmp_path_factory, engine_data_dir, toy_pipeline):
    return build_precomputed(tmp_path_factory.mktemp("dataset"), engine_data_dir, toy_pipeline)


def _without_torchao(monkeypatch):
    real = quantize._version_tuple
    monkeypatch.setattr(quantize, "_version_tuple", lambda name: None if name == "torchao" else real(name))


def test_int8_without_torchao_is_refused_with_the_install_command(monkeypatch):
    _without_torchao(monkeypatch)
    with pytest.raises(QuantizationUnavailable, match=r"torchao.*pip install torchao==0\.18\.0"):
        check_quantization_supported("int8", "cpu")
    check_quantization_supported("none", "cpu")  # nothing is needed without quantisation


def test_int8_on_a_missing_gpu_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(QuantizationUnavailable, match="no CUDA GPU"):
        check_quantization_supported("int8", "cuda")
    with pytest.raises(ValueError, match="Unknown quantization"):
        check_quantization_supported("int4", "cpu")


def test_trainer_refuses_int8_before_loading_anything(tmp_path, monkeypatch, precomputed):
    _without_torchao(monkeypatch)
    config = run_config(tmp_path / "run", precomputed)
    config.quantization = "int8"
    with pytest.raises(TrainingError, match="torchao"):
        Trainer(config, data_dir=tmp_path / "no-models-here", device="cpu")
    assert not (tmp_path / "no-models-here").exists()


def test_lora_wraps_the_int8_layers_and_keeps_the_base_output(engine_data_dir, toy_pipeline, precomputed):
    from peft.tuners.lora.torchao import TorchaoLoraLinear

    transformer = load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32).transformer
    count = quantize_frozen_base(transformer, "int8")
    assert count == quantized_layer_count(transformer) > 0
    names = add_lora(transformer, rank=4, alpha=4, target_modules=["to_k", "to_q", "to_v", "to_out.0"])
    layers = dict(lora_layers(transformer))
    assert names and all(isinstance(layers[name], TorchaoLoraLinear) for name in names)
    assert all(p.dtype == torch.float32 for p in trainable_parameters(transformer))
    # the untrained LoRA adds nothing: the int8 model is the float model within int8 rounding
    dataset_batch = collate([_first_sample(precomputed, toy_pipeline)], "cpu", torch.float32)
    video_int8, audio_int8 = fixed_noise_losses(transformer, dataset_batch)
    video_float, audio_float = fixed_noise_losses(toy_pipeline.transformer, dataset_batch)
    assert video_int8 == pytest.approx(video_float, rel=0.05) and video_int8 != video_float
    assert audio_int8 == pytest.approx(audio_float, rel=0.05)


def _first_sample(precomputed, pipeline):
    from worker.engine.data.dataset import PrecomputedDataset

    return PrecomputedDataset(precomputed, with_audio=True, connectors=pipeline.connectors)[0]


def test_int8_base_trains_a_lora_on_the_toy(tmp_path, engine_data_dir, precomputed):
    torch.set_num_threads(1)
    config = run_config(tmp_path / "run", precomputed, optimization={"steps": 4}, checkpoints={"interval": 4})
    config.quantization = "int8"
    pipeline = load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32)
    trainer = Trainer(config, data_dir=engine_data_dir, pipeline=pipeline)
    # the engine's levers are on; compile stays off on the CPU (config.optimization.compile is for CUDA)
    assert config.optimization.compile and trainer.levers == StepLevers(compile_blocks=False)
    before = {n: p.detach().clone() for n, p in trainer.transformer.named_parameters() if p.requires_grad}
    result = trainer.run()
    assert result.status == "completed" and result.checkpoints == [4]
    assert all(torch.isfinite(torch.tensor(video)) for _, video, _ in result.losses)
    assert quantized_layer_count(trainer.transformer) > 0  # the base stayed int8
    changed = [n for n, p in trainer.transformer.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert changed and all("lora_" in n for n in changed)


def test_quantises_block_by_block_only_the_blocks_linear_layers(engine_data_dir):
    transformer = load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32).transformer
    in_blocks = sum(isinstance(m, torch.nn.Linear) for m in transformer.transformer_blocks.modules())
    assert quantize_frozen_base(transformer, "int8", device="cpu") == in_blocks
    assert quantized_layer_count(transformer) == in_blocks
    assert quantized_layer_count(transformer.proj_in) == 0  # input/output projections keep their dtype


def test_trainer_loading_its_own_model_quantises_once_before_moving_it(tmp_path, engine_data_dir, precomputed):
    from worker.engine.progress import TrainCallbacks

    class Lines(TrainCallbacks):
        def __init__(self):
            self.lines = []

        def on_log(self, level, message):
            self.lines.append(message)

    config = run_config(tmp_path / "run", precomputed, optimization={"steps": 1}, checkpoints={"interval": 1})
    config.quantization = "int8"
    log = Lines()
    fresh = load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32).transformer
    in_blocks = sum(isinstance(m, torch.nn.Linear) for m in fresh.transformer_blocks.modules())
    trainer = Trainer(config, data_dir=engine_data_dir, device="cpu", callbacks=log)
    assert quantized_layer_count(trainer.transformer) == in_blocks > 0
    assert [line for line in log.lines if line.startswith("Frozen base quantised")] == [
        f"Frozen base quantised (int8): {in_blocks} Linear layers."]
