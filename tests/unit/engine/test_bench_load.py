"""avlora bench load: the trainer's model load from local files, against the disk, on the toy (CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from avlora.cli import main as avlora
from worker.engine.bench.load import LoadBenchSpec, bench_load, load_table
from worker.engine.bench.page_cache import cached_fraction, drop_from_cache, read_sequential


@pytest.fixture(scope="module")
def load_data_dir(tmp_path_factory) -> Path:
    """A DATA_DIR of this module alone: no other test maps its toy files, so they can be dropped."""
    return tmp_path_factory.mktemp("load-data")


def _trainer_components(preset: str, data_dir: Path) -> set[str]:
    """The modules the trainer's own load call gives it (``Trainer._load_pipeline``)."""
    from worker.engine.model.pipelines import load_pipeline

    pipe = load_pipeline(preset, data_dir=data_dir, device="cpu", dtype=torch.float32, with_text_encoder=False)
    return {name for name, part in pipe.components.items() if isinstance(part, torch.nn.Module)}


def _sizes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


@pytest.mark.parametrize("preset", ["toy", "toy-2.5"])
def test_every_component_the_trainer_loads_is_timed_with_its_files_bytes(preset, load_data_dir):
    expected = _trainer_components(preset, load_data_dir)
    result = bench_load(LoadBenchSpec(preset=preset, device="cpu"), data_dir=load_data_dir)
    toy = load_data_dir / "models" / preset
    rows = {row.name: row for row in result.components}
    assert set(result.loaded_components) == expected and "text_encoder" not in expected  # the trainer loads no Gemma
    assert set(rows) == expected
    for name, row in rows.items():
        assert row.components == [name]
        assert row.bytes == _sizes(toy / name) > 0
        assert row.load_s > 0 and row.total_s >= row.load_s and row.gb_per_s > 0
        assert row.disk_s > 0 and row.disk_gb_per_s > 0 and row.share_of_disk_speed > 0
        assert row.total_s == pytest.approx(row.load_s + row.to_device_s + row.touch_s)
        assert row.conversion == "none"  # float32 files, float32 on the CPU: no dtype pass
    assert result.pipeline.bytes == sum(row.bytes for row in rows.values())
    assert result.pipeline.total_s >= sum(row.load_s for row in rows.values())
    text = result.text_encoder
    assert text.components == ["text_encoder"] and text.bytes == _sizes(toy / "text_encoder") > 0
    assert text.total_s > 0 and text.gb_per_s > 0 and text.disk_gb_per_s > 0
    # the weights stay mapped from the files: host memory peaks near 1x their bytes, a copy would be 2x
    assert result.memory["pipeline"]["weights_bytes"] == result.pipeline.bytes
    assert 0 < result.memory["pipeline"]["peak_over_weights"] < 2.0
    assert result.device == "cpu" and result.dtype == "float32" and result.repeats == 1
    if _on_tmpfs(load_data_dir):  # memory-backed: nothing to drop
        assert result.pipeline.cached_before_load == 1.0
    else:  # each measurement reads from the disk, not the page cache
        assert result.pipeline.cached_before_load < 0.05 and result.pipeline.cached_before_disk < 0.05
        assert text.cached_before_load < 0.05 and "before the loads: cold" in result.cache


def test_a_warm_run_says_its_files_were_cached(load_data_dir):
    warm = bench_load(LoadBenchSpec(preset="toy", device="cpu", cold=False, repeats=2), data_dir=load_data_dir)
    assert warm.pipeline.cached_before_load == 1.0 and "before the loads: warm" in warm.cache
    assert warm.repeats == 2


def test_a_dtype_pass_is_named_and_the_audio_parts_stay_float32(load_data_dir):
    result = bench_load(LoadBenchSpec(preset="toy", device="cpu", dtype="bfloat16"), data_dir=load_data_dir)
    rows = {row.name: row for row in result.components}
    for name in ("transformer", "connectors", "vae"):
        assert rows[name].conversion == "as asked (float32 -> bfloat16)"
        assert rows[name].converted["bfloat16"] == rows[name].file_dtypes["float32"]
    for name in ("audio_vae", "vocoder"):  # the official trainer runs them in float32: no pass
        assert rows[name].conversion == "none" and set(rows[name].loaded_dtypes) == {"float32"}
    assert result.text_encoder.conversion == "as asked (float32 -> bfloat16)"
    assert any("vae" in note and "float32 -> bfloat16" in note for note in result.notes)
    table = load_table(result.to_dict())
    assert "text encoder alone" in table and "pipeline (trainer's load)" in table


def test_the_command_prints_json_and_refuses_a_real_preset_without_weights(load_data_dir, capsys, monkeypatch):
    code = avlora(["bench", "load", "--preset", "toy", "--device", "cpu", "--data-dir", str(load_data_dir), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    result = json.loads(out.out)
    assert {row["name"] for row in result["components"]} >= {"transformer", "vae", "audio_vae"}
    assert result["text_encoder"]["name"] == "text_encoder"
    monkeypatch.delenv("AVLORA_MODEL_DIR", raising=False)
    assert avlora(["bench", "load", "--preset", "ltx-2.3", "--data-dir", str(load_data_dir)]) == 2
    assert "MODEL_DIR" in capsys.readouterr().err
    assert avlora(["bench", "load", "--preset", "toy", "--repeats", "0", "--data-dir", str(load_data_dir)]) == 2


def _on_tmpfs(path: Path) -> bool:
    best, kind = "", ""
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, fs = line.split()[:3]
        if str(path.resolve()).startswith(mount) and len(mount) > len(best):
            best, kind = mount, fs
    return kind in ("tmpfs", "ramfs")


def test_a_dropped_file_is_read_from_the_disk_again(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(bytes(range(256)) * 16384)  # 4 MiB
    assert read_sequential(path, bytearray(1 << 20)) > 0
    assert cached_fraction(path) == 1.0  # just read
    assert drop_from_cache(path)
    assert cached_fraction(path) == (1.0 if _on_tmpfs(tmp_path) else 0.0)


def test_ltx_25_official_files_are_one_row_and_the_packed_text_encoder_is_counted(load_data_dir, tmp_path,
                                                                                  monkeypatch):
    from tests.unit.engine._official_25 import TEXT_ENCODER, write_official_25
    from worker.engine.model import single_file_25
    from worker.engine.model.pipelines import load_pipeline

    toy25 = load_pipeline("toy-2.5", data_dir=load_data_dir, device="cpu", dtype=torch.float32)
    paths = write_official_25(toy25, tmp_path)
    configs = {name: dict(getattr(toy25, name).config)
               for name in ("transformer", "connectors", "vae", "audio_vae", "vocoder", "scheduler")}
    del toy25
    monkeypatch.setattr(single_file_25, "split_configs", lambda *_: configs)  # the toy's sizes, not 22B
    result = bench_load(LoadBenchSpec(preset="ltx-2.5", device="cpu"), data_dir=load_data_dir, model_dir=tmp_path)
    assert result.layout.startswith("split")
    [row] = result.components  # one load call reads every file: no per-component split of its time
    assert set(row.components) == {"transformer", "connectors", "vae", "audio_vae", "vocoder"}
    assert row.bytes == sum(p.stat().st_size for p in paths.values()) == result.pipeline.bytes
    assert row.load_s == result.pipeline.load_s > 0 and row.gb_per_s > 0
    assert result.text_encoder.bytes == paths[TEXT_ENCODER].stat().st_size
    assert any("packed text-encoder file" in note for note in result.notes)
