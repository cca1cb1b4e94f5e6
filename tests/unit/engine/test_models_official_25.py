"""LTX-2.5's official one-file-per-component weights load into the diffusers pipeline.

The toy-2.5 pipeline is written out as the four official files (transformer, packed Gemma 4 text
encoder with its config / tokenizer / text projection, video VAE, audio VAE + vocoder; see
``_official_25.py``), loaded back through ``single_file_25`` and compared with the toy: every
weight, the tokenizer and a 2-step sample.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from core.model_files import ModelFilesMissing, RealModelLocation, resolve_real_model
from core.presets import PRESETS
from tests.unit.engine._official_25 import AUDIO_VAE, TEXT_ENCODER, TRANSFORMER, VIDEO_VAE, write_official_25
from worker.engine.model.packed_gemma import gemma_key
from worker.engine.model.pipelines import load_pipeline
from worker.engine.model.single_file import CheckpointMismatch
from worker.engine.model.single_file_25 import load_split_pipeline

COMPONENTS = ("transformer", "connectors", "vae", "audio_vae", "vocoder", "text_encoder")


@pytest.fixture(scope="module")
def toy25(engine_data_dir):
    return load_pipeline("toy-2.5", data_dir=engine_data_dir, device="cpu", dtype=torch.float32)


@pytest.fixture(scope="module")
def official25(tmp_path_factory, toy25):
    model_dir = tmp_path_factory.mktemp("official-25")
    return model_dir, write_official_25(toy25, model_dir)


def _toy_configs(pipe):
    names = ("transformer", "connectors", "vae", "audio_vae", "vocoder", "scheduler")
    return {name: dict(getattr(pipe, name).config) for name in names}


def _load(model_dir, toy25, dtype=torch.float32):
    location = resolve_real_model(PRESETS["ltx-2.5"], model_dir)
    return load_split_pipeline(PRESETS["ltx-2.5"], location, dtype=dtype, component_configs=_toy_configs(toy25))


def _sample(pipe):
    return pipe(prompt="ema_voice, a woman says hello", num_frames=9, height=64, width=64, num_inference_steps=2,
                guidance_scale=1.0, output_type="pt", max_sequence_length=64,
                generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    ("official", "expected"),
    [
        ("model.layers.3.self_attn.q_proj.weight", "model.language_model.layers.3.self_attn.q_proj.weight"),
        ("model.embed_tokens.weight", "model.language_model.embed_tokens.weight"),
        ("model.norm.weight", "model.language_model.norm.weight"),
        ("model.language_model.norm.weight", "model.language_model.norm.weight"),
        ("vision_model.patch_dense.weight", "model.embed_vision.patch_dense.weight"),
        ("multi_modal_projector.embedding_projection.weight",
         "model.embed_vision.multimodal_embedder.embedding_projection.weight"),
        ("model.embed_vision.embedding_projection.weight",
         "model.embed_vision.multimodal_embedder.embedding_projection.weight"),
        ("audio_projector.embedding_projection.weight", "model.embed_audio.embedding_projection.weight"),
        ("tokenizer_json", None),
        ("hf_asset__tokenizer_config.json", None),
        ("text_embedding_projection.video_aggregate_embed.weight", None),
    ],
)
def test_packed_gemma_names_become_transformers_names(official, expected):
    assert gemma_key(official) == expected


def test_official_25_files_load_every_weight_and_sample_like_the_toy(official25, toy25):
    model_dir, paths = official25
    transformer_keys = set(load_file(str(paths[TRANSFORMER])).keys())
    # The released 2.5 transformer's names: 2.3's prompt AdaLN, the keyframe embedding, no video FF bias.
    prefix = "model.diffusion_model."
    assert {f"{prefix}prompt_adaln_single.linear.weight", f"{prefix}audio_prompt_adaln_single.linear.weight",
            f"{prefix}keyframes_abs_pos_embedding"} <= transformer_keys
    assert f"{prefix}transformer_blocks.0.ff.net.0.proj.weight" in transformer_keys
    assert f"{prefix}transformer_blocks.0.ff.net.0.proj.bias" not in transformer_keys
    assert f"{prefix}transformer_blocks.0.audio_ff.net.0.proj.bias" in transformer_keys
    assert any("embeddings_connector" in k for k in transformer_keys)
    assert not any(k.startswith("vae.") for k in load_file(str(paths[VIDEO_VAE])))  # the prefix-less form

    loaded = _load(model_dir, toy25)
    for component in COMPONENTS:
        ours, theirs = getattr(loaded, component).state_dict(), getattr(toy25, component).state_dict()
        assert ours.keys() == theirs.keys(), component
        for key, value in theirs.items():
            assert torch.equal(ours[key], value), f"{component}.{key}"
    assert type(loaded.text_encoder).__name__ == "Gemma4UnifiedForConditionalGeneration"
    caption = "ema_voice, a red square hums"
    assert loaded.tokenizer(caption).input_ids == toy25.tokenizer(caption).input_ids
    assert loaded.tokenizer.padding_side == "left"
    assert loaded.text_encoder.lm_head.weight is loaded.text_encoder.model.language_model.embed_tokens.weight

    ours, theirs = _sample(loaded), _sample(toy25)
    assert ours.frames.shape == (1, 9, 3, 64, 64)
    assert torch.allclose(ours.frames, theirs.frames, atol=1e-5)
    assert torch.allclose(ours.audio, theirs.audio, atol=1e-5)


def test_official_25_files_are_read_in_the_target_dtype(official25, toy25):
    loaded = _load(official25[0], toy25, dtype=torch.bfloat16)
    assert loaded.transformer.dtype == loaded.text_encoder.dtype == loaded.connectors.dtype == torch.bfloat16
    assert loaded.audio_vae.dtype == loaded.vocoder.dtype == torch.float32  # as the official trainer


def _copy_dir(source, target, skip=()):
    """Link ``source``'s official files into ``target``, except the ``skip`` ones."""
    for path in source.rglob("*.safetensors"):
        relative = path.relative_to(source).as_posix()
        if relative not in skip:
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            (target / relative).symlink_to(path)


def test_a_missing_component_file_is_named(official25, tmp_path):
    _copy_dir(official25[0], tmp_path, skip={AUDIO_VAE})
    with pytest.raises(ModelFilesMissing, match="no audio_vae file"):
        load_pipeline("ltx-2.5", data_dir=tmp_path, model_dir=tmp_path, device="cpu")


def test_another_generation_or_missing_weights_are_refused(official25, toy25, tmp_path):
    model_dir, paths = official25
    transformer = load_file(str(paths[TRANSFORMER]))
    older = tmp_path / "older"
    older.mkdir()
    _copy_dir(model_dir, older, skip={TRANSFORMER})
    (older / TRANSFORMER).parent.mkdir(parents=True, exist_ok=True)
    save_file(transformer, str(older / TRANSFORMER), metadata={"model_version": "2.3.0"})
    with pytest.raises(ModelFilesMissing, match=r"is an LTX-2\.3 checkpoint \(preset 'ltx-2\.3'\), not LTX-2\.5"):
        _load(older, toy25)  # the preflight's refusal; the loader says it too when called without it
    unchecked = RealModelLocation("split", older / TRANSFORMER, files=tuple(
        (component, older / relative) for component, relative in (("transformer", TRANSFORMER),
                                                                  ("text_encoder", TEXT_ENCODER),
                                                                  ("vae", VIDEO_VAE), ("audio_vae", AUDIO_VAE))))
    with pytest.raises(CheckpointMismatch, match=r"LTX-2\.3 transformer .* use --preset ltx-2\.3"):
        load_split_pipeline(PRESETS["ltx-2.5"], unchecked, dtype=torch.float32, component_configs=_toy_configs(toy25))

    gemma3 = tmp_path / "gemma3"
    gemma3.mkdir()
    encoder = load_file(str(paths[TEXT_ENCODER]))
    config = {**json.loads(load_metadata(paths[TEXT_ENCODER])["gemma_config"]), "model_type": "gemma3"}
    _copy_dir(model_dir, gemma3, skip={TEXT_ENCODER})
    (gemma3 / TEXT_ENCODER).parent.mkdir(parents=True, exist_ok=True)
    save_file(encoder, str(gemma3 / TEXT_ENCODER), metadata={"gemma_config": json.dumps(config)})
    with pytest.raises(CheckpointMismatch, match="packs a 'gemma3' text encoder; LTX-2.5 needs its Gemma 4"):
        _load(gemma3, toy25)

    partial = tmp_path / "partial"
    partial.mkdir()
    _copy_dir(model_dir, partial, skip={TRANSFORMER})
    (partial / TRANSFORMER).parent.mkdir(parents=True, exist_ok=True)
    kept = {k: v for k, v in transformer.items() if "transformer_blocks.1.audio_attn2" not in k}
    save_file(kept, str(partial / TRANSFORMER), metadata={"model_version": "2.5.0"})
    with pytest.raises(CheckpointMismatch, match=r"no weights for transformer: transformer_blocks\.1\.audio_attn2"):
        _load(partial, toy25)


def load_metadata(path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return handle.metadata() or {}


def test_the_trainers_load_reads_no_gemma_yet_the_same_connectors(official25, toy25, monkeypatch):
    """A run loads its pipeline without the text encoder: Gemma 4 is then neither built nor read
    from the packed file (before, it was built, cast and dropped), yet the connectors' projection
    it also holds is loaded as with the text encoder."""
    import worker.engine.model.single_file_25 as split

    model_dir, _paths = official25
    location = resolve_real_model(PRESETS["ltx-2.5"], model_dir)
    whole = load_split_pipeline(PRESETS["ltx-2.5"], location, dtype=torch.float32,
                                component_configs=_toy_configs(toy25))

    def no_gemma(*_args, **_kwargs):
        raise AssertionError("Gemma 4 was built for a load without the text encoder")

    monkeypatch.setattr(split, "read_packed_gemma", no_gemma)
    lean = load_split_pipeline(PRESETS["ltx-2.5"], location, dtype=torch.float32,
                               component_configs=_toy_configs(toy25), with_text_encoder=False)
    assert lean.text_encoder is None
    caption = "ema_voice, a red square hums"
    assert lean.tokenizer(caption).input_ids == whole.tokenizer(caption).input_ids
    for component in ("connectors", "transformer"):
        ours, theirs = getattr(lean, component).state_dict(), getattr(whole, component).state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], v) for k, v in theirs.items()), component
