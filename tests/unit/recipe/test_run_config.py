"""Run config schema, presets, YAML round trip and the resume fingerprint."""

import pytest

from core.recipe.config_yaml import ConfigFileError
from core.recipe.fingerprint import config_fingerprint, resume_differences
from core.recipe.run_config import (
    RunConfig,
    parse_run_config,
    preset_config,
    run_config_from_yaml,
    run_config_to_yaml,
)


def test_defaults_are_the_official_recipe():
    config = RunConfig()
    assert (config.lora.rank, config.lora.alpha, config.lora.dropout) == (32, 32, 0.0)
    assert config.lora.target_modules == ["to_k", "to_q", "to_v", "to_out.0"]
    opt = config.optimization
    assert (opt.learning_rate, opt.optimizer, opt.scheduler, opt.max_grad_norm) == (1e-4, "adamw", "linear", 1.0)
    assert (opt.mixed_precision, opt.gradient_checkpointing, opt.batch_size) == ("bf16", True, 1)
    assert config.seed == 42 and config.validation.seed == 42 and config.validation.at_checkpoints
    assert config.training.with_audio and config.training.audio_loss_weight == 1.0
    assert config.quantization == "none"
    assert config.data.buckets == "512x512x49;512x512x89"


def test_presets():
    sanity = preset_config("sanity")
    assert (sanity.optimization.steps, sanity.checkpoints.interval) == (500, 100)
    assert sanity.checkpoint_steps() == [100, 200, 300, 400, 500]
    low = preset_config("low-vram")
    assert (low.lora.rank, low.lora.alpha, low.optimization.optimizer, low.quantization) == (16, 16, "adamw8bit", "int8")
    assert low.load_text_encoder_in_8bit
    full = preset_config("full", model="toy", data={"trigger": "ema"})
    assert (full.model, full.data.trigger, full.preset) == ("toy", "ema", "full")
    # the v2a voice test: on in full (2 training clips), off in sanity
    assert full.validation.variants == ["lora", "v2a-lora", "v2a-base"] and full.validation.v2a_clips == 2
    assert not {"v2a-lora", "v2a-base"} & set(sanity.validation.variants)
    with pytest.raises(ValueError, match="unknown preset"):
        preset_config("fast")


@pytest.mark.parametrize("name", ["sanity", "full", "low-vram"])
def test_yaml_round_trip_is_exact_and_commented(name):
    config = preset_config(name, data={"trigger": "ema_voice", "buckets": "768x448x49"})
    text = run_config_to_yaml(config)
    assert "# LoRA rank r" in text  # descriptions become comments
    assert run_config_from_yaml(text) == config


def test_validation_prompts_get_the_trigger():
    config = preset_config("full", data={"trigger": "ema"})
    assert all(p.startswith("ema, ") for p in config.validation_prompts())
    assert not any("{trigger}" in p for p in RunConfig().validation_prompts())


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"lora": {"rank": 0}}, "lora.rank"),
        ({"lora": {"rnak": 8}}, "lora.rnak: unknown setting"),
        ({"optimization": {"optimizer": "sgd"}}, "optimization.optimizer"),
        ({"quantization": "int4"}, "quantization"),
        ({"data": {"buckets": "512x512x48"}}, "multiple of 8 plus 1"),
        ({"data": {"trigger": "two words"}}, "two_words"),
        ({"optimization": {"steps": 10, "warmup_steps": 10}}, "warmup_steps"),
        ({"checkpoints": {"keep_last_n": 0}}, "keep_last_n"),
        ({"validation": {"video_dims": [500, 512, 49]}}, "multiples of 32"),
        ({"lora": {"target_modules": []}}, "at least one"),
        ({"model": "ltx-9"}, "model"),
    ],
)
def test_bad_settings_are_refused_with_the_field_named(data, fragment):
    with pytest.raises(ConfigFileError, match=fragment):
        parse_run_config(data)


def test_bad_yaml_names_the_line():
    with pytest.raises(ConfigFileError, match="line 3"):
        run_config_from_yaml("lora:\n  rank: 32\n    alpha: 32\n")
    with pytest.raises(ConfigFileError, match="empty"):
        run_config_from_yaml("")


def test_fingerprint_changes_only_with_settings_that_break_resume():
    base = preset_config("full", data={"trigger": "ema"})
    same = preset_config(
        "full", data={"trigger": "ema", "preprocessed_dir": "/elsewhere"}, output_dir="/new/place",
        checkpoints={"interval": 50}, validation={"prompts": ["{trigger} speaks"]},
    )
    assert config_fingerprint(base) == config_fingerprint(same)
    assert resume_differences(base, same) == []
    for change in ({"lora": {"rank": 16}}, {"optimization": {"learning_rate": 2e-4}}, {"model": "ltx-2"},
                   {"data": {"trigger": "other", "buckets": "512x512x49;512x512x89"}},
                   {"training": {"with_audio": False}}, {"seed": 1}):
        other = preset_config("full", **{"data": {"trigger": "ema"}, **change})
        assert config_fingerprint(other) != config_fingerprint(base), change
        assert resume_differences(base, other)
    assert len(config_fingerprint(base)) == 16
    diff = resume_differences(base, preset_config("full", data={"trigger": "ema"}, lora={"rank": 16}))
    assert diff == ["lora.rank: was 32, now 16"]
