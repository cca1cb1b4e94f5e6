"""memory_plan: auto: the memory model against docs/benchmarks.md's measured rows, and its choices."""

import pytest

from core.recipe.memory_plan import (
    DEFAULTS,
    GIB,
    MemorySetting,
    bucket_tokens,
    candidates,
    plan_memory,
    predicted_gib,
    setting_fits,
)
from core.recipe.run_config import ConfigFileError, parse_run_config

SMALL, LARGE = bucket_tokens(512, 512, 49), bucket_tokens(768, 768, 121)
H200_FREE = int(139 * GIB)
H100_FREE = int(79 * GIB)  # an 80 GB card with its CUDA context
CARD_48GB = int(44.5 * GIB)


def _mix(policy, ratio, rest="attention"):
    return MemorySetting(policy=policy, ratio=ratio, rest_policy=rest)


# (tokens, setting, reserved GiB measured by avlora bench train on the H100, docs/benchmarks.md)
MEASURED = [
    (SMALL, DEFAULTS, 40.7),
    (LARGE, DEFAULTS, 46.5),
    (SMALL, MemorySetting(gradient_checkpointing=False), 67.4),
    (LARGE, MemorySetting(policy="attention"), 53.7),
    (LARGE, MemorySetting(policy="attention"), 54.1),
    (LARGE, _mix("none", 0.15), 70.4),
    (LARGE, _mix("none", 0.19), 75.5),
    (LARGE, _mix("matmul", 0.25), 71.0),
    (LARGE, _mix("matmul", 0.30), 74.3),
]


def test_tokens_are_counted_as_the_bench_counts_them():
    assert (SMALL, LARGE) == (1_792 + 51, 9_216 + 126)
    assert bucket_tokens(512, 512, 49, with_audio=False) == 1_792


@pytest.mark.parametrize(("tokens", "setting", "measured"), MEASURED)
def test_the_model_reproduces_every_measured_row_never_below(tokens, setting, measured):
    predicted = predicted_gib(setting, tokens, trainer=False)  # the bench's step: the transformer alone
    assert measured - 0.05 <= predicted <= measured + 1.0, (setting.describe(), predicted)


def test_the_low_vram_row_and_the_trainers_other_components():
    low_vram = predicted_gib(DEFAULTS, SMALL, quantization="int8", optimizer="adamw8bit", trainer=False)
    assert low_vram == pytest.approx(23.2, abs=0.1)
    # the trainer keeps connectors, VAEs and vocoder on the card too
    assert predicted_gib(DEFAULTS, SMALL) - predicted_gib(DEFAULTS, SMALL, trainer=False) == pytest.approx(7.94)
    assert predicted_gib(DEFAULTS, SMALL, rank=16) < predicted_gib(DEFAULTS, SMALL)


def test_512_on_a_139_gib_card_trains_without_checkpointing():
    plan = plan_memory(H200_FREE, SMALL, model="ltx-2.3")
    assert plan.setting == MemorySetting(gradient_checkpointing=False)
    assert plan.reason == "free 139 GiB, bucket 1,843 tokens: no checkpointing (needs ~75 GiB)"
    assert plan_memory(H200_FREE, SMALL, model="ltx-2.5").setting == plan.setting


def test_768_on_an_80_gb_card_keeps_a_selective_mix_that_fits():
    plan = plan_memory(H100_FREE, LARGE)
    assert plan.setting.gradient_checkpointing and plan.setting.policy == "matmul"
    assert plan.setting.rest_policy == "attention" and 0 < plan.setting.ratio < 0.25
    # faster than the measured attention-everywhere row would be, and still under the card with the margin
    assert predicted_gib(MemorySetting(policy="attention"), LARGE) < plan.needs_gib < 79 - 4.7
    # the measured fastest mix (matmul on 25%) does not fit beside the trainer's other components
    assert not setting_fits(_mix("matmul", 0.25), H100_FREE, LARGE)[0]


def test_512_on_an_80_gb_card_keeps_the_matmuls_instead_of_everything():
    plan = plan_memory(H100_FREE, SMALL)
    assert plan.setting == MemorySetting(policy="matmul")  # no checkpointing (~75 GiB) leaves no margin


def test_what_does_not_fit_or_was_not_measured_keeps_the_defaults():
    too_small = plan_memory(CARD_48GB, LARGE)
    assert too_small.setting == DEFAULTS and "expect out of memory" in too_small.reason
    assert plan_memory(None, SMALL).setting == DEFAULTS  # the CPU
    assert plan_memory(None, SMALL).reason == "on the CPU: the defaults"
    assert plan_memory(H200_FREE, SMALL, quantization="int8").setting == DEFAULTS
    assert plan_memory(H200_FREE, SMALL, compiled=False).setting == DEFAULTS
    assert plan_memory(H200_FREE, SMALL, model="toy").setting == DEFAULTS


def test_candidates_go_from_the_least_recompute_to_the_defaults():
    ladder = candidates()
    needs = [predicted_gib(s, LARGE) for s in ladder]
    assert ladder[0] == MemorySetting(gradient_checkpointing=False) and ladder[-1] == DEFAULTS
    assert needs == sorted(needs, reverse=True)  # each step down needs no more memory
    for setting in ladder:  # every candidate is a valid config
        parse_run_config({"optimization": setting.fields()})


def test_the_config_field_validates():
    assert parse_run_config({}).optimization.memory_plan == "manual"
    assert parse_run_config({"optimization": {"memory_plan": "auto"}}).optimization.memory_plan == "auto"
    with pytest.raises(ConfigFileError, match="memory_plan"):
        parse_run_config({"optimization": {"memory_plan": "fastest"}})
