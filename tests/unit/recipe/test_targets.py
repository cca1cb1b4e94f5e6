"""Our target_modules matcher agrees with PEFT on a small real LTX-2 transformer."""

import copy

import diffusers
import peft
import pytest
import torch
from peft.tuners.tuners_utils import BaseTunerLayer, check_target_module_exists

from core.recipe.targets import TargetError, match_targets

from .small_configs import CONFIGS

TARGET_SPECS = [
    ["to_k", "to_q", "to_v", "to_out.0"],
    ["attn1.to_k", "attn1.to_q", "attn1.to_v", "attn1.to_out.0"],
    ["ff.net.0.proj", "ff.net.2"],
    ["to_gate_logits", "proj_in"],
    r".*\.(attn1|audio_attn1)\.to_(q|k|v)",
    "to_k",  # a single plain string is a whole-name regex in PEFT: matches nothing
    "all-linear",
    ["to_out"],  # a ModuleList: PEFT refuses it
]


@pytest.fixture(scope="module", params=["2.3", "2.0"])
def pristine_model(request):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = CONFIGS[request.param]
    return diffusers.LTX2VideoTransformer3DModel(**config), config


@pytest.fixture
def model_and_config(pristine_model):
    """A fresh copy per test: injecting adapters changes the model in place."""
    model, config = pristine_model
    return copy.deepcopy(model), config


@pytest.mark.parametrize("targets", TARGET_SPECS, ids=str)
def test_name_rule_equals_peft_check(model_and_config, targets):
    model, config = model_and_config
    lora_config = peft.LoraConfig(r=4, lora_alpha=4, target_modules=targets)
    if isinstance(targets, str) and targets == "all-linear":
        expected = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    else:
        expected = {n for n, _ in model.named_modules() if n and check_target_module_exists(lora_config, n)}
    result = match_targets(targets, config)
    assert {m.name for m in result.matched + result.unsupported} == expected


@pytest.mark.parametrize(
    "targets",
    [["to_k", "to_q", "to_v", "to_out.0"], ["attn1.to_k", "ff.net.0.proj"], r".*audio.*\.to_v", "all-linear"],
    ids=str,
)
def test_applying_peft_wraps_exactly_the_matched_layers(model_and_config, targets):
    model, config = model_and_config
    wrapped = peft.inject_adapter_in_model(peft.LoraConfig(r=4, lora_alpha=4, target_modules=targets), model)
    lora_layers = {n for n, m in wrapped.named_modules() if isinstance(m, BaseTunerLayer)}
    result = match_targets(targets, config)
    assert lora_layers == set(result.matched_names)
    rank_params = sum(p.numel() for n, p in wrapped.named_parameters() if "lora_" in n)
    assert rank_params == result.lora_parameters(4)


def test_peft_refuses_what_we_call_unsupported(model_and_config):
    model, config = model_and_config
    result = match_targets(["to_out"], config)
    assert result.matched == [] and len(result.unsupported) == 6 * config["num_layers"]
    with pytest.raises(ValueError):
        peft.inject_adapter_in_model(peft.LoraConfig(r=4, target_modules=["to_out"]), model)


def test_default_targets_reach_all_six_attention_families():
    result = match_targets(["to_k", "to_q", "to_v", "to_out.0"], "ltx-2.3")
    per_family = result.per_family
    for family in ("attn1", "audio_attn1", "attn2", "audio_attn2", "audio_to_video_attn", "video_to_audio_attn"):
        assert per_family[family] == 4 * 48
    assert per_family["ff"] == per_family["audio_ff"] == per_family["other"] == 0
    assert len(result.matched) == 1152
    # DOMAIN.md: a rank-32 LoRA on q/k/v/out of every attention is about 214 M parameters.
    assert round(result.lora_parameters(32) / 1e6) == 214


def test_narrow_targets_miss_the_audio_and_cross_modal_families():
    result = match_targets(["attn1.to_k", "attn1.to_q", "attn1.to_v", "attn1.to_out.0"], "ltx-2.3")
    assert result.per_family["attn1"] == 192
    assert set(result.missed_families) == {
        "audio_attn1", "attn2", "audio_attn2", "audio_to_video_attn", "video_to_audio_attn", "ff", "audio_ff"
    }
    assert result.per_side == {"video": 192, "audio": 0}


def test_unused_list_entries_and_bad_regex_are_reported():
    result = match_targets(["to_k", "to_kk"], "ltx-2")
    assert result.unused_targets == ["to_kk"]
    with pytest.raises(TargetError, match="regular expression"):
        match_targets("to_(k", "ltx-2")


def test_exclude_modules_wins_over_targets():
    result = match_targets(["to_k"], "ltx-2", exclude_modules=["audio_attn1.to_k"])
    assert result.per_family["audio_attn1"] == 0 and result.per_family["attn1"] == 48
