"""The linter knows where LTX-2.5 differs from LTX-2.3 and LTX-2 (core/recipe/lint_versions.py)."""

import pytest

from core.names import MODEL_PRESETS
from core.presets import get_preset
from core.recipe.lint import lint_run_config
from core.recipe.lint_versions import VAE_SCALE_FACTORS, version_label
from core.recipe.run_config import DEFAULT_TARGET_MODULES, preset_config


def issues_of(model, targets):
    config = preset_config("full", model=model, data={"trigger": "ema"}, lora={"target_modules": targets})
    return {issue.code: issue for issue in lint_run_config(config)}


@pytest.mark.parametrize("model", ["ltx-2.5", "toy-2.5"])
def test_the_official_targets_lint_clean_on_ltx25(model):
    issues = issues_of(model, list(DEFAULT_TARGET_MODULES))
    assert not [i for i in issues.values() if i.severity == "error"]
    assert "targets_other_version" not in issues


def test_a_prompt_adaln_target_reaches_ltx25_like_ltx23_and_is_explained_on_ltx2():
    targets = [*DEFAULT_TARGET_MODULES, "prompt_adaln.linear"]
    for model in ("ltx-2.5", "toy-2.5", "ltx-2.3"):
        issues = issues_of(model, targets)
        assert "targets_other_version" not in issues and "targets_unused" not in issues, model
    issue = issues_of("ltx-2", targets)["targets_other_version"]
    assert issue.severity == "warning"
    assert "'prompt_adaln.linear' reaches no layer of LTX-2 (ltx-2)" in issue.message
    assert "LTX-2.3, LTX-2.5" in issue.message and "LTX-2.5 keeps it" in issue.message
    assert issue.detail["versions"] == ["2.3", "2.5"]


def test_a_regex_that_only_reaches_another_version_is_explained():
    issues = issues_of("ltx-2", r"(audio_)?prompt_adaln\.linear")
    assert issues["targets_match_nothing"].severity == "error"
    assert "prompt_adaln" in issues["targets_other_version"].detail["modules"]
    assert "targets_match_nothing" not in issues_of("ltx-2.5", r"(audio_)?prompt_adaln\.linear")


def test_gated_attention_targets_on_ltx2():
    issue = issues_of("ltx-2", [*DEFAULT_TARGET_MODULES, "to_gate_logits"])["targets_other_version"]
    assert issue.detail["versions"] == ["2.3", "2.5"]
    assert "LTX-2.3, LTX-2.5" in issue.message and "gated attention" in issue.message


def test_a_target_absent_everywhere_is_not_a_version_matter():
    assert "targets_other_version" not in issues_of("ltx-2.5", [*DEFAULT_TARGET_MODULES, "to_nothing"])


def test_every_version_shares_the_bucket_rules():
    for model in MODEL_PRESETS:
        assert VAE_SCALE_FACTORS[get_preset(model).version] == (8, 32, 32)
    assert version_label("toy-2.5") == version_label("ltx-2.5") == "LTX-2.5"
    assert version_label("ltx-2") == "LTX-2"
