"""verify-lora: every tensor of a file must be held by the model after diffusers loads it."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from avlora.cli import main as avlora
from worker.engine.lora.adapters import add_lora
from worker.engine.lora.files import extract_lora_weights, read_lora_file, save_diffusers, save_official
from worker.engine.lora.verify import VERIFY_ADAPTER, verify_lora_file
from worker.engine.model.pipelines import load_pipeline

TARGETS = ["to_k", "to_q", "to_v", "to_out.0", "net.0.proj", "net.2"]
BLOCK_FAMILIES = ["attn1", "attn2", "audio_attn1", "audio_attn2", "audio_to_video_attn",
                  "video_to_audio_attn", "ff", "audio_ff"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, engine_data_dir):
    """A LoRA on every family with non-zero, non-trivial B, exported in both layouts (alpha != rank)."""
    pipe = load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32)
    add_lora(pipe.transformer, rank=4, alpha=8, target_modules=TARGETS, init_seed=0)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(3)
        for name, param in pipe.transformer.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen))
    weights = extract_lora_weights(pipe.transformer)
    folder = tmp_path_factory.mktemp("lora")
    return {
        "official": save_official(weights, folder / "official.safetensors"),
        "diffusers": save_diffusers(weights, folder / "diffusers.safetensors"),
    }


def _verify(path, engine_data_dir, capsys, *extra):
    code = avlora(["verify-lora", str(path), "--preset", "toy", "--data-dir", str(engine_data_dir), "--json", *extra])
    report = json.loads(capsys.readouterr().out)
    return code, report


@pytest.mark.parametrize("layout", ["official", "diffusers"])
def test_exported_files_verify_with_nothing_dropped(layout, exported, engine_data_dir, capsys):
    code, report = _verify(exported[layout], engine_data_dir, capsys)
    assert code == 0, report["problems"]
    assert report["ok"] and report["layout"] == layout
    assert report["loaded_keys"] == report["total_keys"] == 2 * 2 * (6 * 4 + 2 * 2)
    for family in BLOCK_FAMILIES:
        counts = report["families"][family]
        assert counts["keys"] > 0 and counts["loaded"] == counts["keys"] and counts["not_loaded"] == []


def test_a_key_under_a_foreign_prefix_fails(exported, engine_data_dir, capsys, tmp_path):
    state = load_file(str(exported["official"]))
    foreign = "model.diffusion_model.transformer_blocks.0.audio_attn1.to_k.lora_A.weight"
    state[foreign] = state["diffusion_model.transformer_blocks.0.audio_attn1.to_k.lora_A.weight"].clone()
    path = tmp_path / "foreign.safetensors"
    save_file(state, str(path))
    code, report = _verify(path, engine_data_dir, capsys)
    assert code == 1
    assert report["families"]["audio_attn1"]["not_loaded"] == [foreign]
    assert "dropped" in report["reasons"][foreign]


def test_a_file_without_audio_families_fails(exported, engine_data_dir, capsys, tmp_path):
    state = {k: v for k, v in load_file(str(exported["official"])).items()
             if not any(f".{fam}." in k for fam in ("audio_attn1", "audio_attn2", "audio_ff", "video_to_audio_attn"))}
    path = tmp_path / "video_only.safetensors"
    save_file(state, str(path))
    code, report = _verify(path, engine_data_dir, capsys)
    assert code == 1 and report["loaded_keys"] == report["total_keys"]
    assert any("no audio-side keys" in p for p in report["problems"])
    assert _verify(path, engine_data_dir, capsys, "--allow-video-only")[0] == 0


def test_altered_values_fail(exported, engine_data_dir, capsys, tmp_path):
    tensors, metadata = read_lora_file(exported["diffusers"])
    key = "transformer.transformer_blocks.1.video_to_audio_attn.to_v.lora_B.weight"
    tensors[key] = tensors[key] * 1.01
    path = tmp_path / "altered.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    code, report = _verify(path, engine_data_dir, capsys)
    assert code == 1
    assert any("altered" in p for p in report["problems"])


def test_a_loader_that_changes_values_is_caught(exported, engine_data_dir):
    """Comparing against what the model holds catches a load that went wrong in the loader."""

    def broken_loader_pipeline():
        pipe = load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32)
        original = pipe.load_lora_weights

        def load_and_corrupt(*args, **kwargs):
            original(*args, **kwargs)
            layer = pipe.transformer.transformer_blocks[0].audio_ff.net[2]
            with torch.no_grad():
                layer.lora_B[VERIFY_ADAPTER].weight.mul_(0.5)

        pipe.load_lora_weights = load_and_corrupt
        return pipe

    report = verify_lora_file(exported["official"], broken_loader_pipeline)
    assert not report.ok
    bad = report.families["audio_ff"].not_loaded
    assert bad == ["diffusion_model.transformer_blocks.0.audio_ff.net.2.lora_B.weight"]
    assert "value differs" in report.reasons[bad[0]]


def test_kohya_alpha_keys_are_refused_by_the_loader(exported, engine_data_dir, capsys, tmp_path):
    state = load_file(str(exported["official"]))
    state["diffusion_model.transformer_blocks.0.attn1.to_k.alpha"] = torch.tensor(4.0)
    path = tmp_path / "alpha.safetensors"
    save_file(state, str(path))
    code, report = _verify(path, engine_data_dir, capsys)
    assert code == 1 and report["loaded_keys"] == 0
    assert any("refused" in p for p in report["problems"])


def test_connector_keys_in_the_official_layout_are_reported_dropped(exported, engine_data_dir, capsys, tmp_path):
    """diffusers routes diffusion_model.* connector keys to the transformer, where they cannot land."""
    state = load_file(str(exported["official"]))
    key = "diffusion_model.video_embeddings_connector.transformer_1d_blocks.0.attn1.to_q.lora_A.weight"
    state[key] = torch.zeros(4, 16, dtype=torch.bfloat16)
    state[key.replace("lora_A", "lora_B")] = torch.zeros(16, 4, dtype=torch.bfloat16)
    path = tmp_path / "connectors.safetensors"
    save_file(state, str(path))
    code, report = _verify(path, engine_data_dir, capsys)
    assert code == 1
    assert report["families"]["connectors"]["keys"] == 2 and report["families"]["connectors"]["loaded"] == 0


def test_an_unreadable_file_exits_2(engine_data_dir, tmp_path, capsys):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"not a safetensors file")
    assert avlora(["verify-lora", str(path), "--preset", "toy", "--data-dir", str(engine_data_dir)]) == 2
    assert "not a readable .safetensors" in capsys.readouterr().err
