"""The official ltx-trainer YAML for LTX-2.5: the split checkpoint paths, per-modality guidance
and the legacy guidance fields (Lightricks/LTX-2 ltx-trainer 1.2.0)."""

import pytest
import yaml

from core.recipe.official_models import version_of_model_path
from core.recipe.official_yaml import (
    OfficialConfigError,
    from_official_yaml,
    import_official,
    import_official_yaml,
    to_official,
    to_official_yaml,
)
from core.recipe.run_config import RunConfig, preset_config

# An official 2.5 flexible audio-video LoRA config in the split layout, abridged.
OFFICIAL_25 = """
model:
  model_path: /models/ltx-2.5/diffusion_models/ltx-2.5-22b-dev-transformer-bf16.safetensors
  text_encoder_path: /models/ltx-2.5/text_encoders/gemma4-12b-with-proj-ltx-2.5-bf16.safetensors
  video_vae_path: /models/ltx-2.5/vae/ltx-2.5-video-vae-bf16.safetensors
  audio_vae_path: /models/ltx-2.5/vae/ltx-2.5-audio-vae-bf16.safetensors
  training_mode: lora
  load_checkpoint: null
lora: {rank: 32, alpha: 32, dropout: 0.0, target_modules: [to_k, to_q, to_v, to_out.0]}
training_strategy:
  name: flexible
  video: {is_generated: true, latents_dir: latents}
  audio: {is_generated: true, latents_dir: audio_latents}
optimization: {learning_rate: 1e-4, steps: 2000, batch_size: 1, gradient_accumulation_steps: 1, max_grad_norm: 1.0,
               optimizer_type: adamw, scheduler_type: linear, scheduler_params: {}, enable_gradient_checkpointing: true}
data: {preprocessed_data_root: /data/pre, num_dataloader_workers: 2}
validation:
  samples: [{prompt: "A woman speaks softly in a quiet room."}]
  video_dims: [960, 544, 89]
  frame_rate: 24.0
  inference_steps: 30
  interval: 250
  video_cfg_scale: 3.5
  audio_cfg_scale: 6.0
  video_stg_scale: 1.0
  audio_stg_scale: 1.0
  stg_blocks: [28]
  guidance_rescale: 0.7
checkpoints: {interval: 250, keep_last_n: -1, precision: bfloat16}
"""


def ltx25_config(independent: bool = False):
    return preset_config("full", model="ltx-2.5", data={"trigger": "ema_voice", "preprocessed_dir": "/data/pre"},
                         validation={"video_dims": [960, 544, 89], "video_guidance_scale": 3.5}, output_dir="runs/x",
                         training={"independent_audio_timesteps": independent})


def test_export_writes_the_split_pack_and_no_stg():
    export = to_official(ltx25_config(), "flexible")
    model = export.data["model"]
    assert model["model_path"].endswith("ltx-2.5-22b-dev-transformer-bf16.safetensors")
    assert "gemma4" in model["text_encoder_path"]
    assert model["video_vae_path"].endswith("ltx-2.5-video-vae-bf16.safetensors")
    assert model["audio_vae_path"].endswith("ltx-2.5-audio-vae-bf16.safetensors")
    validation = export.data["validation"]
    assert (validation["video_cfg_scale"], validation["audio_cfg_scale"]) == (3.5, 7.0)
    assert (validation["video_stg_scale"], validation["audio_stg_scale"]) == (0.0, 0.0)
    notes = " | ".join(export.notes)
    assert "Gemma 4" in notes and "video_vae_path and audio_vae_path are required" in notes
    assert "STG is 0" in notes


def test_export_keeps_given_paths_and_the_unified_layout_of_older_models():
    export = to_official(ltx25_config(), model_path="/m/ltx-2.5-22b-dev.safetensors", text_encoder_path="/m/gemma4")
    assert export.data["model"]["model_path"] == "/m/ltx-2.5-22b-dev.safetensors"
    assert export.data["model"]["text_encoder_path"] == "/m/gemma4"
    older = to_official(preset_config("full", model="ltx-2.3")).data["model"]
    assert older == {"model_path": "path/to/ltx-2.3-22b-dev.safetensors", "text_encoder_path": "path/to/gemma-3-12b-it",
                     "training_mode": "lora", "load_checkpoint": None}
    assert "video_vae_path" not in to_official(preset_config("full", model="ltx-2")).data["model"]


@pytest.mark.parametrize("form", ["text_to_video", "flexible"])
def test_round_trip_keeps_ltx25_from_a_base_of_another_version(form):
    config = ltx25_config(independent=form == "flexible")  # the flexible form draws them per modality
    text = to_official_yaml(config, form)
    other = preset_config("full", data={"trigger": "ema_voice"})  # model ltx-2.3
    back = from_official_yaml(text, base=other)
    assert back.model == "ltx-2.5"
    assert back.model_dump(exclude={"data"}) == config.model_dump(exclude={"data"})
    assert from_official_yaml(text, base=config) == config


def test_a_toy_base_stays_a_toy_of_the_version_the_file_names():
    imported = import_official_yaml(OFFICIAL_25, base=RunConfig(model="toy"))
    assert imported.config.model == "toy-2.5"
    assert any("model toy-2.5" in note for note in imported.notes)
    assert import_official_yaml(OFFICIAL_25, base=RunConfig(model="toy-2.5")).config.model == "toy-2.5"


def test_import_the_official_25_config_with_notes_on_guidance():
    imported = import_official_yaml(OFFICIAL_25, base=RunConfig(data={"trigger": "ema"}))
    config = imported.config
    assert config.model == "ltx-2.5"
    assert (config.validation.video_guidance_scale, config.validation.audio_guidance_scale) == (3.5, 6.0)
    assert config.validation.video_dims == (960, 544, 89)
    assert config.training.with_audio and config.training.independent_audio_timesteps
    notes = " | ".join(imported.notes)
    assert "video_stg_scale 1, audio_stg_scale 1" in notes and "no spatio-temporal guidance" in notes
    assert "guidance_rescale" not in notes  # 0.7 is what our samples use too


def test_legacy_guidance_fields_are_migrated():
    data = yaml.safe_load(OFFICIAL_25)
    validation = data["validation"]
    for key in ("video_cfg_scale", "audio_cfg_scale", "video_stg_scale", "audio_stg_scale"):
        validation.pop(key)
    validation.update(guidance_scale=4.0, stg_scale=2.0, stg_mode="stg_v")
    imported = import_official(data)
    assert imported.config.validation.video_guidance_scale == imported.config.validation.audio_guidance_scale == 4.0
    assert any("video_stg_scale 2, audio_stg_scale 0" in note for note in imported.notes)
    validation.update(stg_scale=0.0, stg_mode="stg_av")
    assert not any("STG" in note for note in import_official(data).notes)


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ({"guidance_scale": 4.0}, "guidance_scale is the legacy form"),
        ({"stg_scale": 1.0}, "stg_scale / stg_mode are the legacy form"),
    ],
)
def test_mixing_legacy_and_new_guidance_is_refused(patch, fragment):
    data = yaml.safe_load(OFFICIAL_25)
    data["validation"].update(patch)
    with pytest.raises(OfficialConfigError, match=fragment):
        import_official(data)


def test_bad_stg_mode_is_named():
    data = yaml.safe_load(OFFICIAL_25)
    for key in ("video_stg_scale", "audio_stg_scale"):
        data["validation"].pop(key)
    data["validation"]["stg_mode"] = "stg_a"
    with pytest.raises(OfficialConfigError, match="stg_mode 'stg_a'"):
        import_official(data)


@pytest.mark.parametrize(
    ("path", "version"),
    [
        ("/models/ltx-2.5/diffusion_models/ltx-2.5-22b-dev-transformer-bf16.safetensors", "2.5"),
        ("/models/ltx-2.5/transformer.safetensors", "2.5"),
        ("path/to/ltx-2.3-22b-dev.safetensors", "2.3"),
        ("ltx-2-19b-distilled.safetensors", "2.0"),
        ("m.safetensors", None),
        ("", None),
    ],
)
def test_version_of_model_path(path, version):
    assert version_of_model_path(path) == version


def test_modality_guidance_goes_both_ways_and_a_split_one_is_said():
    """Our one modality-isolation scale (1 in the sanity preset: no third pass per step) is written
    as the official per-stream pair and read back; a pair that differs keeps the video's, with a note."""
    sanity = preset_config("sanity", model="ltx-2.5", data={"trigger": "ema"})
    exported = to_official(sanity, "flexible").data["validation"]
    assert (exported["video_modality_guidance_scale"], exported["audio_modality_guidance_scale"]) == (1.0, 1.0)
    assert from_official_yaml(to_official_yaml(sanity), base=sanity) == sanity
    data = yaml.safe_load(to_official_yaml(preset_config("full", model="ltx-2.5", data={"trigger": "ema"}), "flexible"))
    data["validation"]["audio_modality_guidance_scale"] = 2.0
    imported = import_official(data)
    assert imported.config.validation.modality_guidance_scale == 3.0
    assert any("modality guidance 3 (video) and 2 (audio)" in note for note in imported.notes)
