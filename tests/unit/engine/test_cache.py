"""The preprocessing cache recomputes exactly the entries whose inputs changed, and nothing stale survives."""

from __future__ import annotations

import json

import pytest

from worker.engine.data import cache
from worker.engine.data.preprocess import preprocess_dataset

KINDS = ("latents", "audio_latents", "conditions")


def write_rows(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture
def project(tmp_path, make_clip):
    make_clip("a.mp4", frames=12, width=96, height=64)
    make_clip("b.mp4", frames=20, audio="mono", color=(10, 90, 200))
    rows = [{"caption": "a woman speaks", "media_path": "a.mp4"}, {"caption": "a man sings", "media_path": "b.mp4"}]
    return tmp_path, rows


def run(tmp_path, rows, toy_pipeline, engine_data_dir, *, buckets="64x64x9;64x64x17", trigger="ema_voice"):
    metadata = write_rows(tmp_path / "dataset.jsonl", rows)
    result = preprocess_dataset(
        metadata, out_dir=tmp_path / "out", preset="toy", buckets=buckets, trigger=trigger,
        data_dir=engine_data_dir, pipeline=toy_pipeline,
    )
    assert result.ok, result.to_dict()
    return {clip.name: sorted(clip.recomputed) for clip in result.clips}, result


def snapshot(tmp_path):
    root = tmp_path / "out" / ".precomputed"
    return {p.relative_to(root): p.stat().st_mtime_ns for p in root.rglob("*.pt")}


def test_each_change_recomputes_only_the_entries_it_shapes(project, toy_pipeline, engine_data_dir, make_clip):
    tmp_path, rows = project
    first, _ = run(tmp_path, rows, toy_pipeline, engine_data_dir)
    assert first == {"a.mp4": sorted(KINDS), "b.mp4": sorted(KINDS)}

    before = snapshot(tmp_path)
    again, result = run(tmp_path, rows, toy_pipeline, engine_data_dir)
    assert again == {"a.mp4": [], "b.mp4": []}
    assert [c.status for c in result.clips] == ["cached", "cached"]
    assert snapshot(tmp_path) == before  # nothing rewritten

    # A new trigger: only the conditions.
    changed, _ = run(tmp_path, rows, toy_pipeline, engine_data_dir, trigger="ben_voice")
    assert changed == {"a.mp4": ["conditions"], "b.mp4": ["conditions"]}

    # A new bucket for the wide clip (same frame count): only its video latents.
    changed, result = run(tmp_path, rows, toy_pipeline, engine_data_dir, buckets="96x64x9;64x64x17", trigger="ben_voice")
    assert changed == {"a.mp4": ["latents"], "b.mp4": []}
    assert result.clips[0].bucket == "96x64x9"

    # A bucket with fewer frames changes the audio duration too: latents and audio latents.
    changed, _ = run(tmp_path, rows, toy_pipeline, engine_data_dir, buckets="96x64x9;64x64x9", trigger="ben_voice")
    assert changed == {"a.mp4": [], "b.mp4": ["audio_latents", "latents"]}

    # One caption edited: only that clip's conditions.
    rows[1]["caption"] = "a man sings loudly"
    changed, _ = run(tmp_path, rows, toy_pipeline, engine_data_dir, buckets="96x64x9;64x64x9", trigger="ben_voice")
    assert changed == {"a.mp4": [], "b.mp4": ["conditions"]}

    # One clip's content replaced: only that clip's media entries.
    make_clip("a.mp4", frames=12, width=96, height=64, color=(250, 250, 0), tone_hz=600)
    changed, _ = run(tmp_path, rows, toy_pipeline, engine_data_dir, buckets="96x64x9;64x64x9", trigger="ben_voice")
    assert changed == {"a.mp4": ["audio_latents", "latents"], "b.mp4": []}


def test_a_tampered_or_missing_fingerprint_is_not_trusted(project, toy_pipeline, engine_data_dir):
    tmp_path, rows = project
    run(tmp_path, rows, toy_pipeline, engine_data_dir)
    root = tmp_path / "out" / ".precomputed"
    sidecar = cache.sidecar_path(root / "latents" / "a.pt")
    record = json.loads(sidecar.read_text())
    record["fingerprint"] = "0" * 64
    sidecar.write_text(json.dumps(record))
    cache.sidecar_path(root / "conditions" / "b.pt").unlink()  # as if a run died between the two writes
    changed, _ = run(tmp_path, rows, toy_pipeline, engine_data_dir)
    assert changed == {"a.mp4": ["latents"], "b.mp4": ["conditions"]}


def test_entries_of_dropped_or_broken_clips_are_removed(project, toy_pipeline, engine_data_dir, make_clip):
    tmp_path, rows = project
    run(tmp_path, rows, toy_pipeline, engine_data_dir)
    root = tmp_path / "out" / ".precomputed"

    _, result = run(tmp_path, rows[:1], toy_pipeline, engine_data_dir)
    assert sorted(result.removed) == ["audio_latents/b.pt", "conditions/b.pt", "latents/b.pt"]
    assert not list(root.rglob("b.pt*"))

    # A clip that loses its audio track must not keep its old, now stale, entries.
    make_clip("a.mp4", frames=12, width=96, height=64, audio=None)
    metadata = write_rows(tmp_path / "dataset.jsonl", rows[:1])
    result = preprocess_dataset(
        metadata, out_dir=tmp_path / "out", preset="toy", buckets="64x64x9", trigger="ema_voice",
        data_dir=engine_data_dir, pipeline=toy_pipeline,
    )
    assert not result.ok and result.clips[0].code == "no_audio_track"
    assert not list(root.rglob("*.pt"))


def test_reconcile_fails_when_an_entry_did_not_land(project, toy_pipeline, engine_data_dir, monkeypatch):
    tmp_path, rows = project
    real_save = cache.save_tensors

    def lose_conditions(entry, payload, inputs):
        if entry.parent.name == "conditions" and entry.stem == "b":
            return "lost"
        return real_save(entry, payload, inputs)

    monkeypatch.setattr(cache, "save_tensors", lose_conditions)
    metadata = write_rows(tmp_path / "dataset.jsonl", rows)
    result = preprocess_dataset(
        metadata, out_dir=tmp_path / "out", preset="toy", buckets="64x64x9", trigger="ema_voice",
        data_dir=engine_data_dir, pipeline=toy_pipeline,
    )
    assert not result.ok
    assert result.missing == ["b.mp4: conditions/b.pt"]


def test_fingerprint_is_order_independent_and_value_sensitive():
    assert cache.fingerprint({"a": 1, "b": [1, 2]}) == cache.fingerprint({"b": [1, 2], "a": 1})
    assert cache.fingerprint({"a": 1}) != cache.fingerprint({"a": 2})


def test_failed_write_leaves_neither_entry_nor_fingerprint(tmp_path):
    entry = tmp_path / "latents" / "x.pt"

    def explode(temp):
        temp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        cache.write_entry(entry, explode, {"k": 1})
    assert list((tmp_path / "latents").iterdir()) == []

    cache.write_entry(entry, lambda temp: temp.write_bytes(b"done"), {"k": 1})
    assert cache.is_fresh(entry, cache.fingerprint({"k": 1}))
    assert not cache.is_fresh(entry, cache.fingerprint({"k": 2}))
    assert json.loads(cache.sidecar_path(entry).read_text())["inputs"] == {"k": 1}


def test_prune_removes_temporaries_a_crash_left_behind(tmp_path):
    kept = tmp_path / "latents" / "x.pt"
    cache.write_entry(kept, lambda temp: temp.write_bytes(b"done"), {"k": 1})
    leftovers = [kept.with_name(".x.pt.k3j9_2ab.tmp"), kept.with_name(".x.pt.tmp.4242")]  # atomic_write's, older
    for leftover in leftovers:
        leftover.write_bytes(b"half")
    assert cache.prune(tmp_path / "latents", {kept}, (".pt",)) == []
    assert sorted(p.name for p in (tmp_path / "latents").iterdir()) == ["x.pt", "x.pt.json"]
