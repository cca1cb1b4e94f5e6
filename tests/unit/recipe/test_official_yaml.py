"""Import/export of the official ltx-trainer YAML config."""

import pytest
import yaml

from core.recipe.official_yaml import (
    OfficialConfigError,
    from_official,
    from_official_yaml,
    to_official,
    to_official_yaml,
)
from core.recipe.run_config import RunConfig, preset_config

# The former official configs/ltx2_av_lora.yaml (Lightricks/LTX-2, packages/ltx-trainer), abridged.
OFFICIAL_AV_LORA = """
model: {model_path: m.safetensors, text_encoder_path: gemma, training_mode: lora, load_checkpoint: null}
lora: {rank: 32, alpha: 32, dropout: 0.0, target_modules: [to_k, to_q, to_v, to_out.0]}
training_strategy: {name: text_to_video, first_frame_conditioning_p: 0.5, with_audio: true,
                    audio_latents_dir: audio_latents}
optimization: {learning_rate: 1e-4, steps: 2000, batch_size: 1, gradient_accumulation_steps: 1,
               max_grad_norm: 1.0, optimizer_type: adamw, scheduler_type: linear, scheduler_params: {},
               enable_gradient_checkpointing: true}
acceleration: {mixed_precision_mode: bf16, quantization: null, load_text_encoder_in_8bit: false}
data: {preprocessed_data_root: /data/pre, num_dataloader_workers: 2}
validation:
  prompts: ["A woman speaks softly in a room."]
  negative_prompt: "worst quality"
  video_dims: [576, 576, 89]
  frame_rate: 25.0
  seed: 42
  inference_steps: 30
  interval: 100
  guidance_scale: 4.0
checkpoints: {interval: 250, keep_last_n: -1, precision: bfloat16}
flow_matching: {timestep_sampling_mode: shifted_logit_normal, timestep_sampling_params: {}}
seed: 42
output_dir: outputs/ltx2_av_lora
"""


def custom_config(**extra):
    return preset_config(
        "low-vram",
        data={"trigger": "ema_voice", "preprocessed_dir": "/data/pre"},
        lora={"rank": 8, "alpha": 8, "target_modules": ["to_k", "to_v", "ff.net.2"]},
        optimization={"learning_rate": 3e-5, "steps": 1234, "lr_end_factor": 0.25, "gradient_accumulation_steps": 4},
        training={"first_frame_conditioning_p": 0.2, "timesteps": {"std": 1.3}, **extra.pop("training", {})},
        validation={"prompts": ["{trigger}, a man says hello.", "{trigger}, a woman sings."], "seed": 7},
        seed=3,
        output_dir="runs/x",
        **extra,
    )


@pytest.mark.parametrize(("form", "independent"), [("text_to_video", False), ("flexible", True)])
def test_round_trip_ours_official_ours(form, independent):
    config = custom_config(training={"independent_audio_timesteps": independent})
    text = to_official_yaml(config, form)
    back = from_official_yaml(text, base=config)
    assert back == config
    # Fields the official file holds come back even from a neutral base.
    neutral = RunConfig(preset="low-vram", data={"trigger": "ema_voice"})
    assert from_official_yaml(text, base=neutral).model_dump(exclude={"data"}) == config.model_dump(exclude={"data"})


def test_export_uses_the_official_field_names():
    config = custom_config()
    legacy = to_official(config, "text_to_video").data
    assert legacy["training_strategy"] == {
        "name": "text_to_video", "first_frame_conditioning_p": 0.2, "with_audio": True,
        "audio_latents_dir": "audio_latents",
    }
    assert legacy["acceleration"]["quantization"] == "int8-quanto"
    assert legacy["optimization"]["optimizer_type"] == "adamw8bit"
    assert legacy["optimization"]["scheduler_params"] == {"start_factor": 1.0, "end_factor": 0.25}
    assert legacy["validation"]["prompts"][0] == "ema_voice, a man says hello."
    flexible = to_official(config, "flexible").data
    assert flexible["training_strategy"] == {
        "name": "flexible",
        "video": {"is_generated": True, "latents_dir": "latents",
                  "conditions": [{"type": "first_frame", "probability": 0.2}]},
        "audio": {"is_generated": True, "latents_dir": "audio_latents"},
    }
    assert flexible["validation"]["samples"] == [{"prompt": "ema_voice, a man says hello."},
                                                 {"prompt": "ema_voice, a woman sings."}]


def test_export_notes_what_does_not_carry_over():
    config = preset_config("full", data={"trigger": "ema"}, lora={"alpha": 64}, training={"audio_loss_weight": 2})
    notes = " | ".join(to_official(config).notes)
    assert "alpha (64) != rank (32)" in notes
    assert "--lora-trigger ema" in notes and "--resolution-buckets" in notes
    assert "audio_loss_weight" in notes
    assert "# NOTE: lora.alpha" in to_official_yaml(config)
    two = preset_config("full", data={"trigger": "ema"}, optimization={"num_processes": 2})
    assert "optimization.num_processes 2: launch the trainer on as many GPUs" in " | ".join(to_official(two).notes)
    assert "num_processes" not in " | ".join(to_official(config).notes)


def test_regex_targets_cannot_be_exported():
    config = preset_config("full", lora={"target_modules": r".*\.to_k"})
    with pytest.raises(OfficialConfigError, match="list"):
        to_official(config)


def test_import_the_official_av_lora_config():
    config = from_official_yaml(OFFICIAL_AV_LORA, base=RunConfig(data={"trigger": "ema"}))
    assert config.training.with_audio and config.training.first_frame_conditioning_p == 0.5
    assert config.validation.video_guidance_scale == config.validation.audio_guidance_scale == 4.0
    assert config.validation.video_dims == (576, 576, 89)
    assert config.data.preprocessed_dir == "/data/pre" and config.output_dir == "outputs/ltx2_av_lora"
    # validation every 100 with checkpoints every 250: samples at 100, 200, ... (not at every checkpoint)
    assert (config.validation.at_checkpoints, config.validation.interval) == (False, 100)


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ({"model": {"training_mode": "full"}}, "only LoRA"),
        ({"training_strategy": {"name": "video_to_video"}}, "video_to_video"),
        ({"acceleration": {"quantization": "int4-quanto"}}, "int4-quanto"),
        ({"optimization": {"scheduler_type": "cosine"}}, "cosine"),
        ({"training_strategy": {"name": "flexible", "video": {"is_generated": True, "latents_dir": "l"},
                                "audio": {"is_generated": False, "latents_dir": "a"}}}, "conditioning"),
        ({"lora": {"rank": 0}}, "lora.rank"),
        ({"validation": {"samples": [{"prompt": "p", "conditions": [{"type": "first_frame", "image_or_video": "a.png"}]}]}},
         "conditions on validation samples"),
    ],
)
def test_import_refuses_what_we_cannot_train(patch, fragment):
    data = yaml.safe_load(OFFICIAL_AV_LORA)
    for key, value in patch.items():
        data[key] = {**data[key], **value}
    with pytest.raises((OfficialConfigError, ValueError), match=fragment):
        from_official(data)
