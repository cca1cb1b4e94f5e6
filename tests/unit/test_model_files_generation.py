"""An official checkpoint of another LTX generation than the preset's is refused before any job is
queued, naming what was found and the preset that loads it; a file whose generation cannot be told
is still accepted (``core/model_files.py``, read from the header alone: no torch)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from safetensors.numpy import save_file

from core.model_files import ModelFilesMissing, resolve_real_model
from core.model_files_25 import checkpoint_version
from core.presets import PRESETS

# Tensor names as each generation's official file has them (one tiny tensor each).
NAMES_20 = ("model.diffusion_model.transformer_blocks.0.attn1.to_q.weight",
            "text_embedding_projection.aggregate_embed.weight", "vocoder.conv_pre.weight")
NAMES_23 = ("model.diffusion_model.transformer_blocks.0.attn1.to_q.weight",
            "model.diffusion_model.prompt_adaln_single.linear.weight",
            "text_embedding_projection.video_aggregate_embed.weight", "vocoder.bwe_generator.conv_pre.weight")
NAMES_25 = ("model.diffusion_model.transformer_blocks.0.attn1.to_q.weight",)
# A transformer file's names as LTX-2.3 and LTX-2.5 write them: both have the prompt AdaLN; only
# 2.5's video feed-forward has no bias (its audio one keeps it) and 2.5 adds the keyframe embedding.
_FF = tuple(f"model.diffusion_model.transformer_blocks.0.{f}.net.{n}" for f in ("ff", "audio_ff") for n in ("0.proj", "2"))
TRANSFORMER_23 = ("model.diffusion_model.prompt_adaln_single.linear.weight",
                  *(f"{m}.{p}" for m in _FF for p in ("weight", "bias")))
TRANSFORMER_25 = ("model.diffusion_model.prompt_adaln_single.linear.weight",
                  "model.diffusion_model.keyframes_abs_pos_embedding",
                  *(f"{m}.weight" for m in _FF), *(f"{m}.bias" for m in _FF if ".audio_ff." in m))
SPLIT_25 = {"text_encoders/gemma4-12b-with-proj-ltx-2.5-bf16.safetensors": ("model.embed_tokens.weight",),
            "vae/ltx-2.5-video-vae-conv-bf16.safetensors": ("encoder.conv_in.conv.weight",),
            "vae/ltx-2.5-audio-vae-bf16.safetensors": ("audio_vae.encoder.conv_in.conv.weight",)}


def _checkpoint(path, names, metadata=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({name: np.zeros(1, dtype=np.float32) for name in names}, str(path), metadata=metadata)
    return path


def _gemma3(model_dir):
    gemma = model_dir / "gemma-3-12b-it"
    gemma.mkdir(parents=True)
    (gemma / "config.json").write_text(json.dumps({"model_type": "gemma3"}))
    (gemma / "tokenizer.json").write_text("{}")


def _refused(preset, model_dir) -> str:
    with pytest.raises(ModelFilesMissing) as error:
        resolve_real_model(PRESETS[preset], model_dir)
    return " ".join(str(error.value).split())


def test_an_ltx25_or_ltx20_file_under_the_ltx23_name_is_refused_naming_its_preset(tmp_path):
    _gemma3(tmp_path)
    checkpoint = tmp_path / "ltx-2.3-22b-dev.safetensors"
    _checkpoint(checkpoint, NAMES_25, {"model_version": "2.5.0"})
    said = _refused("ltx-2.3", tmp_path)
    assert "Found: ltx-2.3-22b-dev.safetensors is an LTX-2.5 checkpoint (preset 'ltx-2.5'), not LTX-2.3" in said
    assert "gemma-3-12b-it" in said  # the layouts that would load, as for missing weights

    _checkpoint(checkpoint, NAMES_25, {"config": json.dumps({"transformer": {"ff_bias": False}})})  # flags only
    assert "is an LTX-2.5 checkpoint (preset 'ltx-2.5')" in _refused("ltx-2.3", tmp_path)

    _checkpoint(checkpoint, NAMES_20)  # an LTX-2.0 file: no metadata, its tensor names say it
    assert "ltx-2.3-22b-dev.safetensors is an LTX-2.0 checkpoint (preset 'ltx-2'), not LTX-2.3" in _refused(
        "ltx-2.3", tmp_path)


@pytest.mark.parametrize("metadata", [None, {"model_version": "2.3.0"}, {"model_version": "2.3.rc1"},
                                      {"model_version": "2.4-rc2"}, {"model_version": "ltx-2.3"}],
                         ids=["names only", "2.3.0", "2.3.rc1", "2.4 (no preset): names decide", "unparsed"])
def test_a_real_ltx23_file_is_never_refused_under_ltx23(tmp_path, metadata):
    _gemma3(tmp_path)
    checkpoint = _checkpoint(tmp_path / "ltx-2.3-22b-dev.safetensors", NAMES_23, metadata)
    assert checkpoint_version(checkpoint) in ("2.3", "2.4")
    location = resolve_real_model(PRESETS["ltx-2.3"], tmp_path)
    assert (location.kind, location.path) == ("single_file", checkpoint)
    _checkpoint(tmp_path / "ltx-2-19b-dev.safetensors", NAMES_23, metadata)  # the same file, for LTX-2.0
    assert "ltx-2-19b-dev.safetensors is an LTX-2.3 checkpoint (preset 'ltx-2.3')" in _refused("ltx-2", tmp_path)


def test_ltx2_takes_an_ltx20_file_and_refuses_an_ltx23_one(tmp_path):
    _gemma3(tmp_path)
    dev = _checkpoint(tmp_path / "ltx-2-19b-dev.safetensors", NAMES_20)
    assert checkpoint_version(dev) == "2.0"
    assert resolve_real_model(PRESETS["ltx-2"], tmp_path).path == dev
    _checkpoint(dev, NAMES_23)
    said = _refused("ltx-2", tmp_path)
    assert "ltx-2-19b-dev.safetensors is an LTX-2.3 checkpoint (preset 'ltx-2.3'), not LTX-2.0" in said
    # another accepted name beside it is used instead, the wrong one is not
    distilled = _checkpoint(tmp_path / "ltx-2-19b-distilled.safetensors", NAMES_20, {"model_version": "2.0.0"})
    assert resolve_real_model(PRESETS["ltx-2"], tmp_path).path == distilled


@pytest.mark.parametrize("content", [b"\0" * 16, b"not a safetensors file at all"], ids=["zeros", "junk"])
def test_a_file_whose_generation_cannot_be_told_is_still_accepted(tmp_path, content):
    _gemma3(tmp_path)
    (tmp_path / "ltx-2.3-22b-dev.safetensors").write_bytes(content)
    assert resolve_real_model(PRESETS["ltx-2.3"], tmp_path).kind == "single_file"
    _checkpoint(tmp_path / "ltx-2.3-22b-dev.safetensors", ("first_stage_model.weight",))  # no LTX tensor names
    assert resolve_real_model(PRESETS["ltx-2.3"], tmp_path).kind == "single_file"


def _split_25(model_dir, transformer_names, metadata):
    for relative, names in SPLIT_25.items():
        _checkpoint(model_dir / relative, names)
    return _checkpoint(model_dir / "diffusion_models" / "ltx-2.5-22b-dev-transformer-bf16.safetensors",
                       transformer_names, metadata)


def test_the_ltx25_transformer_file_is_checked_the_same_way(tmp_path):
    transformer = _split_25(tmp_path / "declared", NAMES_25, {"model_version": "2.3.0"})
    said = _refused("ltx-2.5", tmp_path / "declared")
    assert f"{transformer.name} is an LTX-2.3 checkpoint (preset 'ltx-2.3'), not LTX-2.5" in said
    assert not re.search(r"but no \w+ file", said)  # every file is there: only the generation is wrong

    _split_25(tmp_path / "combined", NAMES_23, None)  # a combined 2.3 checkpoint renamed
    assert "is an LTX-2.3 checkpoint (preset 'ltx-2.3')" in _refused("ltx-2.5", tmp_path / "combined")

    # Without metadata: a real 2.5 transformer's names (prompt AdaLN included) say 2.5, and names
    # that show no feed-forward cannot tell 2.5 from 2.3 or 2.0: neither is held against it.
    for names in (TRANSFORMER_25, NAMES_25, (*NAMES_25, "model.diffusion_model.prompt_adaln_single.linear.weight")):
        _split_25(tmp_path / "plain", names, None)
        assert resolve_real_model(PRESETS["ltx-2.5"], tmp_path / "plain").kind == "split"
    _split_25(tmp_path / "plain", NAMES_25, {"model_version": "2.5.1"})
    assert resolve_real_model(PRESETS["ltx-2.5"], tmp_path / "plain").kind == "split"

    # An LTX-2.3 transformer (its video feed-forward has its bias) is refused, metadata or not.
    _split_25(tmp_path / "only23", TRANSFORMER_23, None)
    assert "is an LTX-2.3 checkpoint (preset 'ltx-2.3')" in _refused("ltx-2.5", tmp_path / "only23")


def test_a_2_5_transformer_is_told_by_what_only_2_5_has(tmp_path):
    """Not by the prompt AdaLN, which 2.3 and 2.5 files both carry: by the bias-free video
    feed-forward, a declared ``ff_bias`` false or the Gemma 4 ``gemma_source_checkpoint``."""
    assert checkpoint_version(_checkpoint(tmp_path / "a.safetensors", TRANSFORMER_25)) == "2.5"
    assert checkpoint_version(_checkpoint(tmp_path / "b.safetensors", TRANSFORMER_23)) == "2.3"
    source = {"gemma_source_checkpoint": json.dumps({"gemma_version": "gemma4-12b-ltx-v1"})}
    assert checkpoint_version(_checkpoint(tmp_path / "c.safetensors", NAMES_23, source)) == "2.5"

    _gemma3(tmp_path)
    _checkpoint(tmp_path / "ltx-2.3-22b-dev.safetensors", TRANSFORMER_25)  # no metadata: the names say it
    said = _refused("ltx-2.3", tmp_path)
    assert "ltx-2.3-22b-dev.safetensors is an LTX-2.5 checkpoint (preset 'ltx-2.5'), not LTX-2.3" in said
