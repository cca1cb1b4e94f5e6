"""LTX-2.5: the ``toy-2.5`` preset is the real diffusers 2.5 architecture (Gemma 4 text encoder, no
video feed-forward bias, 2.3's prompt AdaLN, the keyframe embedding), and it goes end to end:
preprocess a generated clip, train, sample, export the LoRA in both layouts and verify them."""

from __future__ import annotations

import json

import pytest
import torch

from avlora.cli import main as avlora
from tests.unit.engine._train_data import build_precomputed, run_config
from worker.engine.model.pipelines import PRESETS, load_pipeline, model_identity, resolve_model_path

CHECKED_FAMILIES = ("audio_attn1", "audio_attn2", "video_to_audio_attn", "audio_to_video_attn", "audio_ff", "ff")


@pytest.fixture(scope="module")
def toy25(engine_data_dir):
    return load_pipeline("toy-2.5", data_dir=engine_data_dir, device="cpu", dtype=torch.float32)


def test_toy_25_is_the_ltx25_architecture_saved_in_diffusers_layout(engine_data_dir, toy25):
    from diffusers.pipelines.ltx2.vocoder import LTX2VocoderWithBWE
    from transformers import Gemma4UnifiedForConditionalGeneration

    directory = resolve_model_path("toy-2.5", data_dir=engine_data_dir)
    index = json.loads((directory / "model_index.json").read_text())
    assert index["text_encoder"] == ["transformers", "Gemma4UnifiedForConditionalGeneration"]
    assert isinstance(toy25.text_encoder, Gemma4UnifiedForConditionalGeneration)

    transformer = toy25.transformer
    config = transformer.config
    assert config.ff_bias is False and config.audio_ff_bias is True
    assert config.use_prompt_adaln_single is True and config.use_keyframes_abs_pos_embedding is True
    for flag in ("gated_attn", "audio_gated_attn", "cross_attn_mod", "audio_cross_attn_mod", "perturbed_attn"):
        assert config[flag] is True, flag
    block = transformer.transformer_blocks[0]
    assert block.ff.net[0].proj.bias is None and block.ff.net[2].bias is None
    assert block.audio_ff.net[2].bias is not None
    # The timestep-dependent prompt modulation is there (as in 2.3), on top of the per-layer table.
    inner, audio_inner = (config.num_attention_heads * config.attention_head_dim,
                          config.audio_num_attention_heads * config.audio_attention_head_dim)
    assert transformer.prompt_adaln.linear.out_features == 2 * inner
    assert transformer.audio_prompt_adaln.linear.out_features == 2 * audio_inner
    assert block.prompt_scale_shift_table.shape[0] == 2
    assert tuple(transformer.keyframes_abs_pos_embedding.shape) == (1, inner)
    assert toy25.connectors.config.per_modality_projections is True
    assert isinstance(toy25.vocoder, LTX2VocoderWithBWE)
    assert model_identity("toy-2.5", data_dir=engine_data_dir).startswith("toy-2.5@2.5:")


def test_toy_25_generates_video_and_48k_audio(toy25):
    output = toy25(
        prompt="ema_voice, a woman says hello", num_frames=25, height=64, width=64, frame_rate=25.0,
        num_inference_steps=2, guidance_scale=1.0, output_type="pt", max_sequence_length=64,
        generator=torch.Generator().manual_seed(0),
    )
    assert output.frames.shape == (1, 25, 3, 64, 64) and torch.isfinite(output.frames).all()
    assert abs(output.audio.shape[-1] / PRESETS["toy-2.5"].audio_sample_rate - 1.0) < 0.05


def test_gemma4_captions_get_one_leading_bos(toy25, toy_pipeline):
    from worker.engine.data.text import gemma_hidden_states, tokenize_caption

    # Like the published Gemma 4 tokenizer, the toy's emits no BOS; LTX-2.5 was trained with one.
    assert toy25.tokenizer("hi").input_ids[0] != toy25.tokenizer.bos_token_id
    ids, mask = tokenize_caption(toy25.tokenizer, "hi", max_sequence_length=16)
    first = int(mask[0].argmax())
    assert ids[0, first] == toy25.tokenizer.bos_token_id and int(mask.sum()) == 3  # <bos> h i
    # Gemma 3's tokenizer already emits it: no second BOS, and the features are the pipeline's own.
    ids3, mask3 = tokenize_caption(toy_pipeline.tokenizer, "hi", max_sequence_length=16)
    assert int(mask3.sum()) == 3
    ours, our_mask = gemma_hidden_states(toy_pipeline, "a red square", max_sequence_length=64)
    theirs, their_mask = toy_pipeline._get_gemma_prompt_embeds(["a red square"], max_sequence_length=64)
    assert torch.equal(our_mask.cpu(), their_mask.cpu()) and torch.allclose(ours, theirs, atol=1e-5)


@pytest.fixture(scope="module")
def trained25(tmp_path_factory, engine_data_dir):
    """Preprocess one generated clip with toy-2.5, train 2 steps (attention and the bias-free video
    feed-forward included), sample at the checkpoint."""
    from worker.engine.lora.checkpoint import checkpoint_paths
    from worker.engine.train import train_run

    def fresh():
        return load_pipeline("toy-2.5", data_dir=engine_data_dir, device="cpu", dtype=torch.float32)

    root = tmp_path_factory.mktemp("ltx25")
    precomputed = build_precomputed(root / "dataset", engine_data_dir, fresh(), preset="toy-2.5")
    config = run_config(
        root / "run", precomputed, model="toy-2.5",
        lora={"rank": 4, "alpha": 4, "target_modules": ["to_k", "to_q", "to_v", "to_out.0", "net.0.proj", "net.2"]},
        optimization={"steps": 2, "learning_rate": 1e-2}, checkpoints={"interval": 2},
        validation={"at_checkpoints": True},
    )
    result = train_run(config, data_dir=engine_data_dir, pipeline=fresh())
    assert result.status == "completed" and result.checkpoints == [2], result
    paths = checkpoint_paths(root / "run", 2)
    return {"run": root / "run", "precomputed": precomputed, "official": paths.official,
            "diffusers": paths.diffusers, "losses": result.losses}


def test_toy_25_preprocesses_trains_and_samples(trained25, toy25):
    from tests.unit.engine._train_data import TRIGGER

    condition = torch.load(next((trained25["precomputed"] / "conditions").rglob("*.pt")))
    width = toy25.transformer.config.cross_attention_dim
    assert condition["video_prompt_embeds"].shape[-1] == condition["connector_video_embeds"].shape[-1] == width
    assert torch.isfinite(condition["connector_video_embeds"].float()).all()
    # The cached caption is its tokens plus the leading BOS that Gemma 4's tokenizer leaves out.
    caption = f"{TRIGGER}, a red square hums a low tone"
    assert int(condition["prompt_attention_mask"].sum()) == len(toy25.tokenizer(caption).input_ids) + 1
    assert next((trained25["precomputed"] / "audio_latents").rglob("*.pt"))
    assert trained25["losses"] and all(torch.isfinite(torch.tensor(loss)) for _, loss, _ in trained25["losses"])
    samples = sorted(p.name for p in (trained25["run"] / "samples").iterdir())
    assert {"step_000002_01.mp4", "step_000002_01.wav"} <= set(samples), samples


@pytest.mark.parametrize("layout", ["official", "diffusers"])
def test_toy_25_lora_exports_verify_with_audio_keys(layout, trained25, engine_data_dir, capsys):
    code = avlora(["verify-lora", str(trained25[layout]), "--preset", "toy-2.5",
                   "--data-dir", str(engine_data_dir), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report["problems"]
    assert report["ok"] and report["layout"] == layout
    assert report["loaded_keys"] == report["total_keys"] > 0
    for family in CHECKED_FAMILIES:
        counts = report["families"][family]
        assert counts["keys"] > 0 and counts["loaded"] == counts["keys"], family


def _header_only(path, metadata: dict | None = None):
    """A valid safetensors file with one tiny tensor (and ``metadata``), standing for a real file."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"model.diffusion_model.proj.weight": torch.zeros(1)}, path, metadata=metadata)
    return path


def test_ltx25_without_weights_lists_the_official_files(tmp_path):
    from worker.engine.model.pipelines import ModelFilesMissing

    with pytest.raises(ModelFilesMissing) as error:
        load_pipeline("ltx-2.5", data_dir=tmp_path, model_dir=tmp_path)
    message = str(error.value)
    assert "model_index.json" in message and "(LTX-2.5)" in message
    for expected in (
        "diffusion_models/ltx-2.5-22b-dev-transformer-bf16.safetensors",
        "ltx-2.5-22b-distilled-transformer-bf16.safetensors",
        "text_encoders/gemma4-12b-with-proj-ltx-2.5-bf16.safetensors",
        "vae/ltx-2.5-video-vae-conv-bf16.safetensors",
        "vae/ltx-2.5-audio-vae-bf16.safetensors",
    ):
        assert expected in message, expected
    assert "gemma-3" not in message.lower()

    # Part of the files: the message says which were found and which component is missing.
    _header_only(tmp_path / "diffusion_models" / "ltx-2.5-22b-distilled-transformer-bf16.safetensors")
    _header_only(tmp_path / "ltx-2.5-audio-vae-bf16.safetensors")  # a flat download is found too
    with pytest.raises(ModelFilesMissing, match="no text_encoder, vae file"):
        load_pipeline("ltx-2.5", data_dir=tmp_path, model_dir=tmp_path)


def test_ltx25_official_files_are_found_and_fingerprinted_but_named_unsupported(tmp_path):
    from core.model_files import resolve_real_model
    from worker.engine.model.single_file import CheckpointMismatch

    metadata = {"model_version": "2.5.0", "config": json.dumps({"transformer": {"ff_bias": False}})}
    _header_only(tmp_path / "diffusion_models" / "ltx-2.5-22b-dev-transformer-bf16.safetensors", metadata)
    _header_only(tmp_path / "text_encoders" / "gemma4-12b-with-proj-ltx-2.5-bf16.safetensors")
    _header_only(tmp_path / "vae" / "ltx-2.5-video-vae-bf16.safetensors")
    _header_only(tmp_path / "vae" / "ltx-2.5-audio-vae-bf16.safetensors")
    location = resolve_real_model(PRESETS["ltx-2.5"], tmp_path)
    assert location.kind == "split" and [c for c, _ in location.files] == ["transformer", "text_encoder", "vae",
                                                                         "audio_vae"]
    first = model_identity("ltx-2.5", data_dir=tmp_path, model_dir=tmp_path)
    _header_only(tmp_path / "vae" / "ltx-2.5-audio-vae-bf16.safetensors", {"changed": "yes"})
    assert model_identity("ltx-2.5", data_dir=tmp_path, model_dir=tmp_path) != first  # every file counts
    with pytest.raises(CheckpointMismatch, match="no .gemma_config. metadata: not a packed text-encoder file"):
        load_pipeline("ltx-2.5", data_dir=tmp_path, model_dir=tmp_path)


def test_checkpoint_generation_is_read_from_the_header(tmp_path):
    from core.model_files_25 import checkpoint_version

    declared = _header_only(tmp_path / "a.safetensors", {"model_version": "2.5.1"})
    flags = _header_only(tmp_path / "b.safetensors", {"config": json.dumps({"transformer": {"ff_bias": False}})})
    plain = _header_only(tmp_path / "c.safetensors")
    assert checkpoint_version(declared) == checkpoint_version(flags) == "2.5"
    assert checkpoint_version(plain) == "2.0"


def test_ltx25_loads_a_diffusers_pipeline_and_refuses_another_generation(tmp_path, engine_data_dir):
    import shutil

    from worker.engine.model.pipelines import ModelFilesMissing

    model_dir = tmp_path / "ltx-2.5"
    shutil.copytree(resolve_model_path("toy-2.5", data_dir=engine_data_dir), model_dir)
    pipe = load_pipeline("ltx-2.5", data_dir=tmp_path, model_dir=model_dir, device="cpu")
    assert type(pipe.text_encoder).__name__ == "Gemma4UnifiedForConditionalGeneration"
    assert pipe.transformer.config.ff_bias is False and pipe.transformer.config.use_prompt_adaln_single is True

    older = tmp_path / "ltx-2.3"
    shutil.copytree(resolve_model_path("toy", data_dir=engine_data_dir), older)
    with pytest.raises(ModelFilesMissing, match="a diffusers-format LTX-2.3 pipeline \\(preset 'ltx-2.3'\\)"):
        load_pipeline("ltx-2.5", data_dir=tmp_path, model_dir=older)
