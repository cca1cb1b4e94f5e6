"""Training modes in the recipe: presets, the linter's rules, the fingerprint, the official YAML."""

import pytest
import yaml

from core.recipe.fingerprint import config_fingerprint, fingerprint_payload
from core.recipe.lint import lint_run_config
from core.recipe.modes import TRAINING_MODES, mode_choices, rules_of
from core.recipe.official_yaml import OfficialConfigError, import_official_yaml, to_official
from core.recipe.run_config import preset_config


def _config(preset="full", **sections):
    return preset_config(preset, data={"trigger": "ema_voice"}, **sections)


def _codes(config, severity=None):
    return [i.code for i in lint_run_config(config) if severity is None or i.severity == severity]


@pytest.mark.parametrize("mode", TRAINING_MODES)
def test_each_modes_preset_lints_clean(mode):
    config = _config(rules_of(mode).preset)
    assert config.training.mode == mode
    assert _codes(config) == []


@pytest.mark.parametrize(("training", "lora", "code"), [
    ({"mode": "voice"}, {"target_modules": ["attn1.to_k", "attn2.to_v", "ff.net.2"]}, "mode_targets_none"),
    ({"mode": "audio_only"}, {"target_modules": ["video_to_audio_attn.to_k"]}, "mode_targets_none"),
    ({"mode": "audio_only", "first_frame_conditioning_p": 0.3}, {}, "mode_first_frame_without_video"),
    ({"mode": "voice", "with_audio": False}, {}, "mode_needs_audio"),
    ({"mode": "audio_video", "video_frozen": True, "with_audio": False}, {}, "video_frozen_without_audio"),
])
def test_the_linter_refuses_a_modes_contradictions(training, lora, code):
    assert code in _codes(_config(training=training, lora=lora), "error")


def test_targets_reaching_both_sides_are_narrowed_with_a_warning():
    config = _config(training={"mode": "voice", "first_frame_conditioning_p": 0.0})  # to_k... on every side
    issues = {i.code: i for i in lint_run_config(config)}
    assert issues["mode_targets_narrowed"].severity == "warning"
    assert "attn1" in issues["mode_targets_narrowed"].message and issues["mode_targets_narrowed"].detail["kept"] > 0
    assert "targets_miss_video" not in issues  # the point of a voice LoRA, not a problem


def test_settings_a_mode_ignores_are_named():
    config = _config(training={"mode": "voice", "audio_loss_weight": 2.0, "video_frozen": True},
                     lora={"target_modules": ["audio_attn1.to_k"]}, validation={"variants": ["lora", "lora-audio-off"]})
    issues = {i.code: i for i in lint_run_config(config)}
    assert {"audio_loss_weight", "video_frozen", "first_frame_conditioning_p"} <= set(issues["mode_setting_ignored"].detail["settings"])
    assert issues["mode_audio_off_sample"].severity == "warning"


def test_the_default_mode_keeps_the_fingerprint_of_older_runs():
    config = _config()
    assert "mode" not in fingerprint_payload(config)["training"]
    assert config_fingerprint(_config(training={"mode": "voice"})) != config_fingerprint(config)
    assert config_fingerprint(_config(training={"video_frozen": True})) != config_fingerprint(config)


def test_the_form_offers_each_mode_with_one_sentence_and_a_preset():
    choices = mode_choices()
    assert [c["value"] for c in choices] == list(TRAINING_MODES)
    assert all(c["sentence"].endswith(".") and c["sentence"].count(". ") == 0 for c in choices)
    assert all(_config(c["preset"]).training.mode == c["value"] for c in choices)


@pytest.mark.parametrize(("preset", "official"), [
    ("voice", {"video": {"is_generated": False, "latents_dir": "latents"}}),
    ("audio-only", {}),
])
def test_official_export_maps_the_mode_to_its_flexible_strategy_and_back(preset, official):
    config = _config(preset)
    export = to_official(config, "flexible")
    strategy = export.data["training_strategy"]
    assert strategy == {"name": "flexible", **official, "audio": {"is_generated": True, "latents_dir": "audio_latents"}}
    assert all(t.startswith(("audio_", "video_to_audio_attn.")) for t in export.data["lora"]["target_modules"])
    back = import_official_yaml(export.to_yaml(), base=_config()).config
    assert back.training.mode == config.training.mode
    with pytest.raises(OfficialConfigError, match="flexible"):
        to_official(config, "text_to_video")


def test_video_frozen_exports_audio_side_targets():
    export = to_official(_config(training={"video_frozen": True}), "flexible")
    targets = export.data["lora"]["target_modules"]
    assert targets and not any(t.startswith(("attn1", "attn2", "ff.", "audio_to_video_attn")) for t in targets)
    assert any("video_frozen" in note for note in export.notes)


@pytest.mark.parametrize(("strategy", "mode"), [
    ({"video": {"is_generated": False, "latents_dir": "latents"}, "audio": {"is_generated": True, "latents_dir": "a"}},
     "voice"),
    ({"audio": {"is_generated": True, "latents_dir": "audio_latents"}}, "audio_only"),
    ({"video": {"is_generated": True, "latents_dir": "latents"}, "audio": {"is_generated": True, "latents_dir": "a"}},
     "audio_video"),
])
def test_official_flexible_strategies_import_as_our_modes(strategy, mode):
    """The official trainer's v2a / t2a / t2v recipes (configs/v2a_lora.yaml, t2a_lora.yaml, t2v_lora.yaml)."""
    sample = {"prompt": "ema_voice, a woman speaks"}
    if mode == "voice":
        sample["conditions"] = [{"type": "video_to_audio", "video": "/clips/one.mp4"}]
    data = {"lora": {"rank": 32, "alpha": 32, "target_modules": ["audio_attn1.to_k", "audio_attn2.to_q"]},
            "training_strategy": {"name": "flexible", **strategy}, "validation": {"samples": [sample]}}
    result = import_official_yaml(yaml.safe_dump(data), base=_config(training={"mode": "voice"}))
    assert result.config.training.mode == mode
    assert not [i for i in lint_run_config(result.config) if i.severity == "error" and i.code.startswith("mode")]
    assert any("/clips/one.mp4" in note for note in result.notes) == (mode == "voice")
