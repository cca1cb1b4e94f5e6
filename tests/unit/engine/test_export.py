"""Export of a trained checkpoint: the zip layouts and the LoRA with its audio modules stripped or alone.

The stripped files are written without torch (app/services/export.py); here the engine proves
them: diffusers' loader takes every key, the digest still matches, and the families are right.
"""

from __future__ import annotations

import io

import pytest
import torch

from core.recipe.architecture import AUDIO_FAMILIES, VIDEO_FAMILIES
from core.services.export import write_lora_subset
from tests.unit.engine._trained_lora import train_toy_checkpoint
from worker.engine.lora.files import DIGEST_METADATA_KEY, read_lora_file, tensor_digest
from worker.engine.lora.verify import verify_lora_file
from worker.engine.model.pipelines import load_pipeline


@pytest.fixture(scope="module")
def trained(tmp_path_factory, engine_data_dir):
    torch.set_num_threads(2)
    return train_toy_checkpoint(tmp_path_factory.mktemp("trained"), engine_data_dir)


def _fresh_factory(engine_data_dir):
    return lambda: load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32)


def _subset(source, tmp_path, modules):
    buffer = io.BytesIO()
    counts = write_lora_subset(source, buffer, modules)
    path = tmp_path / f"{source.stem}-{modules}.safetensors"
    path.write_bytes(buffer.getvalue())
    return path, counts


def _families(report) -> dict[str, int]:
    """Families the file has keys in, with their key counts."""
    return {name: family.keys for name, family in report.families.items() if family.keys}


@pytest.mark.parametrize("layout", ["official", "diffusers"])
def test_stripped_and_audio_only_files_load_completely(layout, trained, engine_data_dir, tmp_path):
    source = trained[layout]
    full = verify_lora_file(source, _fresh_factory(engine_data_dir))
    assert full.ok, full.problems
    full_families = _families(full)
    assert set(full_families) == set(VIDEO_FAMILIES + AUDIO_FAMILIES) - {"ff", "audio_ff"}

    no_audio, counts = _subset(source, tmp_path, "no-audio")
    report = verify_lora_file(no_audio, _fresh_factory(engine_data_dir), require_audio=False)
    assert report.ok, report.problems  # the recomputed digest matches, every kept key loads
    assert set(_families(report)) == set(full_families) - set(AUDIO_FAMILIES)
    assert counts["kept"] == report.total_keys and counts["kept"] + counts["dropped"] == full.total_keys
    assert any("no audio-side keys" in p for p in verify_lora_file(no_audio, _fresh_factory(engine_data_dir)).problems)

    audio_only, _ = _subset(source, tmp_path, "audio-only")
    report = verify_lora_file(audio_only, _fresh_factory(engine_data_dir))
    assert report.ok, report.problems
    assert set(_families(report)) == set(full_families) & set(AUDIO_FAMILIES)


def test_stripped_tensors_are_the_originals_and_the_digest_is_the_engines(trained, tmp_path):
    tensors, _ = read_lora_file(trained["official"])
    path, _ = _subset(trained["official"], tmp_path, "audio-only")
    kept, metadata = read_lora_file(path)
    assert kept and set(kept) < set(tensors)
    for key, value in kept.items():
        assert value.dtype == tensors[key].dtype and torch.equal(value, tensors[key])
    assert metadata[DIGEST_METADATA_KEY] == tensor_digest(kept)
    assert metadata["avlora_modules"] == "audio-only"


def test_diffusers_header_lists_only_kept_modules(trained, tmp_path):
    import json

    path, _ = _subset(trained["diffusers"], tmp_path, "no-audio")
    tensors, metadata = read_lora_file(path)
    targets = json.loads(metadata["lora_adapter_metadata"])["transformer.target_modules"]
    assert targets and not any(f".{family}." in t for t in targets for family in AUDIO_FAMILIES)
    assert len(targets) == len(tensors) // 2


def test_nothing_left_is_refused_with_a_reason(trained, tmp_path):
    from core.errors import InvalidInput

    no_audio, _ = _subset(trained["official"], tmp_path, "no-audio")
    with pytest.raises(InvalidInput, match="no audio-side keys"):
        write_lora_subset(no_audio, io.BytesIO(), "audio-only")
