"""The config-derived module list equals the real diffusers LTX-2 transformer's modules."""

import diffusers
import pytest
import torch

from core.recipe.architecture import (
    ArchitectureError,
    family_linear_counts,
    linear_module_names,
    module_family,
    transformer_modules,
)

from .small_configs import CONFIGS


def real_modules(config):
    torch.manual_seed(0)
    model = diffusers.LTX2VideoTransformer3DModel(**config)
    described = []
    for name, module in model.named_modules():
        if not name:
            continue
        if isinstance(module, torch.nn.Linear):
            described.append((name, "Linear", module.in_features, module.out_features, module.bias is not None))
        else:
            described.append((name, type(module).__name__, None, None, None))
    return described


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def config_and_real(request):
    torch.set_num_threads(1)
    config = CONFIGS[request.param]
    return config, real_modules(config)


def test_module_list_equals_the_real_model(config_and_real):
    config, real = config_and_real
    ours = [(m.name, m.kind, m.in_features, m.out_features, m.bias) for m in transformer_modules(config)]
    assert ours == real


def test_flags_change_the_layer_list():
    names_23 = set(linear_module_names(CONFIGS["2.3"]))
    names_20 = set(linear_module_names(CONFIGS["2.0"]))
    assert "transformer_blocks.1.video_to_audio_attn.to_gate_logits" in names_23 - names_20
    assert "prompt_adaln.linear" in names_23 - names_20
    assert "caption_projection.linear_1" in names_20 - names_23


def test_ltx25_has_every_ltx23_layer_and_only_the_video_ff_loses_its_bias():
    modules_23 = {m.name: m for m in transformer_modules(CONFIGS["2.3"])}
    modules_25 = {m.name: m for m in transformer_modules(CONFIGS["2.5"])}
    assert modules_25.keys() == modules_23.keys()  # prompt AdaLN included: a 2.3 target reaches 2.5 alike
    assert "prompt_adaln.linear" in modules_25 and "audio_prompt_adaln.linear" in modules_25
    changed = {name for name in modules_23 if modules_23[name] != modules_25[name]}
    assert changed == {f"transformer_blocks.{i}.ff.net.{j}" for i in range(2) for j in ("0.proj", "2")}
    assert all(modules_23[name].bias is True and modules_25[name].bias is False for name in changed)
    by_name = {m.name: m for m in transformer_modules("ltx-2.5")}
    assert by_name["transformer_blocks.0.ff.net.0.proj"].bias is False
    assert by_name["transformer_blocks.0.audio_ff.net.2"].bias is True
    assert by_name["prompt_adaln.emb.timestep_embedder.linear_1"].bias is True
    assert family_linear_counts("ltx-2.5") == family_linear_counts("ltx-2.3")


def test_the_ltx25_keyframe_embedding_is_a_parameter_of_the_real_model_not_a_layer():
    torch.manual_seed(0)
    model = diffusers.LTX2VideoTransformer3DModel(**CONFIGS["2.5"])
    assert tuple(model.keyframes_abs_pos_embedding.shape) == (1, 16)  # (1, inner_dim)
    assert not any("keyframes" in name for name, _ in model.named_modules())
    assert model.transformer_blocks[0].ff.net[0].proj.bias is None and model.prompt_adaln is not None


def test_full_size_counts_match_the_published_model():
    counts = family_linear_counts("ltx-2.3")
    # 48 blocks x (q, k, v, out, gate) per attention family; ff has two linears per block.
    for family in ("attn1", "audio_attn1", "attn2", "audio_attn2", "audio_to_video_attn", "video_to_audio_attn"):
        assert counts[family] == 48 * 5
    assert counts["ff"] == counts["audio_ff"] == 96
    assert family_linear_counts("ltx-2")["attn1"] == 48 * 4


def test_family_of_names():
    assert module_family("transformer_blocks.3.audio_attn1.to_k") == "audio_attn1"
    assert module_family("transformer_blocks.3.attn1.to_k") == "attn1"
    assert module_family("transformer_blocks.3.audio_ff.net.2") == "audio_ff"
    assert module_family("transformer_blocks.3.norm1") == "other"
    assert module_family("proj_in") == "other"


def test_bad_config_is_named():
    with pytest.raises(ArchitectureError, match="num_attention_heads"):
        transformer_modules({"num_attention_heads": 0})
    with pytest.raises(ArchitectureError, match="unknown model"):
        transformer_modules("ltx-9")
