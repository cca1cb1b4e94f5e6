"""The recipe linter flags the known silent failures before a run starts."""

from core.recipe.lint import ClipShape, DatasetSummary, lint_run_config, lint_run_config_data
from core.recipe.run_config import preset_config


def codes(issues):
    return {issue.code for issue in issues}


def good_config(**overrides):
    overrides["data"] = {"trigger": "ema_voice", **overrides.get("data", {})}
    return preset_config("full", **overrides)


def test_the_default_recipe_with_a_trigger_is_clean():
    dataset = DatasetSummary(clip_count=12, has_audio=True, clips=[ClipShape("a.mp4", 1920, 1080, 120)])
    assert lint_run_config(good_config(), dataset) == []


def test_narrow_targets_miss_audio_and_cross_modal_with_counts():
    config = good_config(lora={"target_modules": ["attn1.to_k", "attn1.to_q", "attn1.to_v", "attn1.to_out.0"]})
    issues = {i.code: i for i in lint_run_config(config)}
    assert issues["targets_miss_audio"].severity == "error"
    assert issues["targets_miss_cross_modal"].severity == "warning"
    per_family = issues["targets_miss_audio"].detail["per_family"]
    assert per_family["attn1"] == 192 and per_family["audio_attn1"] == 0
    assert "attn1 192/240" in issues["targets_miss_audio"].message


def test_video_only_training_does_not_need_audio_targets():
    config = good_config(lora={"target_modules": ["attn1.to_k"]}, training={"with_audio": False})
    assert "targets_miss_audio" not in codes(lint_run_config(config))


def test_targets_counted_on_the_given_transformer_config():
    small = {"num_layers": 2, "num_attention_heads": 2, "attention_head_dim": 8, "cross_attention_dim": 16,
             "audio_num_attention_heads": 2, "audio_attention_head_dim": 4, "audio_cross_attention_dim": 8}
    config = good_config(lora={"target_modules": ["attn1.to_k"]}, model="toy")
    issue = next(i for i in lint_run_config(config, transformer_config=small) if i.code == "targets_miss_audio")
    assert issue.detail["per_family"]["attn1"] == 2


def test_single_string_target_is_a_regex_and_matches_nothing():
    issues = lint_run_config(good_config(lora={"target_modules": "to_k"}))
    assert "targets_match_nothing" in codes(issues)
    assert "regular expression" in next(i.message for i in issues if i.code == "targets_match_nothing")


def test_non_linear_targets_and_unused_entries():
    found = codes(lint_run_config(good_config(lora={"target_modules": ["to_out", "to_k", "typo_proj"]})))
    assert {"targets_unsupported", "targets_unused"} <= found


def test_empty_trigger_and_prompts_without_trigger_or_sound():
    config = preset_config("full", validation={"prompts": ["a cat on a sofa", "{trigger} says hi"]})
    found = codes(lint_run_config(config))
    assert "trigger_empty" in found
    config = good_config(validation={"prompts": ["a cat on a sofa", "ema_voice says hi"]})
    issues = lint_run_config(config)
    assert [i.detail["prompt_index"] for i in issues if i.code == "prompt_missing_trigger"] == [1]
    assert [i.detail["prompt_index"] for i in issues if i.code == "prompt_missing_audio"] == [1]
    # a trigger that is only part of a longer word does not count
    config = good_config(validation={"prompts": ['ema_voice2 speaks: "hi"']})
    assert "prompt_missing_trigger" in codes(lint_run_config(config))


def test_several_buckets_need_batch_one():
    assert "several_buckets_batch" in codes(lint_run_config(good_config(optimization={"batch_size": 2})))
    single = good_config(optimization={"batch_size": 2}, data={"trigger": "ema_voice", "buckets": "512x512x49"})
    assert "several_buckets_batch" not in codes(lint_run_config(single))


def test_alpha_not_rank_and_other_advice():
    found = codes(lint_run_config(good_config(lora={"alpha": 16}, optimization={"learning_rate": 1e-3},
                                              checkpoints={"interval": 5000},
                                              training={"audio_loss_weight": 0})))
    assert {"alpha_not_rank", "learning_rate_high", "checkpoint_after_end", "audio_loss_weight_zero"} <= found


def test_dataset_audio_checks():
    assert "with_audio_off" in codes(
        lint_run_config(good_config(training={"with_audio": False}), DatasetSummary(3, has_audio=True)))
    assert "no_audio_in_dataset" in codes(lint_run_config(good_config(), DatasetSummary(3, has_audio=False)))
    partial = DatasetSummary(3, has_audio=True, clips_without_audio=1)
    assert "clips_without_audio" in codes(lint_run_config(good_config(), partial))


def test_dataset_short_clips_and_blocked_findings():
    dataset = DatasetSummary(
        clip_count=2, has_audio=True,
        clips=[ClipShape("ok.mp4", 512, 512, 60), ClipShape("short.mp4", 512, 512, 30)],
        findings=[{"code": "corrupt_media", "severity": "error"}, {"code": "mono_audio", "severity": "info"}],
    )
    issues = {i.code: i for i in lint_run_config(good_config(), dataset)}
    assert issues["clips_too_short"].detail["clips"] == [{"name": "short.mp4", "reason": "49 frames needed, clip has 30"}]
    assert issues["clips_blocked"].detail["by_code"] == {"corrupt_media": 1}


def test_errors_come_first():
    issues = lint_run_config(good_config(lora={"alpha": 16, "target_modules": ["attn1.to_k"]}))
    severities = [i.severity for i in issues]
    assert severities == sorted(severities, key=lambda s: s != "error") and severities[0] == "error"


def test_raw_form_data_gets_specific_bucket_codes():
    issues = lint_run_config_data({"data": {"trigger": "ema", "buckets": "500x512x49;512x512x1;512x512x48"}})
    assert [(i.code, i.detail["bucket"]) for i in issues] == [
        ("bucket_size", "500x512x49"), ("bucket_frames", "512x512x1"), ("bucket_frames", "512x512x48")]
    issues = lint_run_config_data({"lora": {"rank": -1}})
    assert [(i.code, i.detail["field"]) for i in issues] == [("invalid_setting", "lora.rank")]
    assert "targets_miss_audio" in codes(lint_run_config_data({"lora": {"target_modules": ["attn2.to_k"]}}))


def test_the_v2a_voice_test_needs_audio_and_enough_cached_clips():
    v2a = {"variants": ["lora", "v2a-lora", "v2a-base"], "v2a_clips": 3}
    issues = {i.code: i for i in lint_run_config(good_config(validation=v2a, training={"with_audio": False}),
                                                 DatasetSummary(clip_count=2, has_audio=True))}
    assert issues["v2a_needs_audio"].severity == "warning" and "with_audio" in issues["v2a_needs_audio"].message
    assert issues["v2a_few_clips"].detail == {"v2a_clips": 3, "clip_count": 2}
    assert "cached video latents" in issues["v2a_few_clips"].message
    clean = lint_run_config(good_config(validation=v2a), DatasetSummary(clip_count=3, has_audio=True))
    assert not codes(clean) & {"v2a_needs_audio", "v2a_few_clips"}
    sanity = preset_config("sanity", data={"trigger": "ema_voice"}, training={"with_audio": False})
    assert "v2a_needs_audio" not in codes(lint_run_config(sanity))  # v2a is off in the sanity preset
