"""Model load: weights go straight into their target dtype, with no whole-model cast afterwards."""

import torch

from worker.engine.model.pipelines import load_pipeline


def test_the_pipeline_loads_in_the_target_dtype_without_a_cast_pass(engine_data_dir, toy_pipeline, monkeypatch):
    # the toy's files are float32 (toy_pipeline saved them): a bf16 load must convert tensor by tensor
    # as it reads them, never build the float32 model and cast it (a model-wide .to(dtype))
    casts = []
    original = torch.nn.Module.to

    def spy(self, *args, **kwargs):
        if any(isinstance(a, torch.dtype) for a in args) or "dtype" in kwargs:
            casts.append(type(self).__name__)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", spy)
    pipe = load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.bfloat16)
    assert casts == []
    dtypes = {name: {p.dtype for p in part.parameters()} for name, part in pipe.components.items()
              if isinstance(part, torch.nn.Module)}
    assert dtypes["transformer"] == dtypes["text_encoder"] == dtypes["connectors"] == {torch.bfloat16}
    assert dtypes["audio_vae"] == dtypes["vocoder"] == {torch.float32}  # the audio side stays float32
