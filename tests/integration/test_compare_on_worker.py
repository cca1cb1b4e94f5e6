"""A toy run's compare data on real services (Postgres, Redis, a Celery worker process): the
training queues its own follow-ups, so samples get measured and checkpoints get key reports, and
the compare API serves base and checkpoint cells with metrics."""

from __future__ import annotations

import pytest

from tests.integration.test_training_jobs import FINAL, _client, _config, _preprocessed_dataset, _wait, _wait_final
from tests.support import celery_worker

pytestmark = pytest.mark.integration


def test_compare_data_of_a_toy_run_through_the_api(production_env, tmp_path, tmp_path_factory):
    from tests.media_factory import MediaFactory

    media = MediaFactory(tmp_path_factory.mktemp("media"))
    client = _client()
    with celery_worker(production_env, tmp_path / "worker.log", concurrency=2):
        dataset_id = _preprocessed_dataset(client, media)
        config = _config(client, dataset_id, steps=2, interval=2)
        config["validation"]["variants"] = ["lora", "base", "lora-audio-off", "v2a-lora", "v2a-base"]
        config["validation"]["v2a_clips"] = 1
        run = client.post("/api/v1/runs", json={"dataset_id": dataset_id, "config": config}).json()
        assert _wait_final(client, run["job_id"])["status"] == "succeeded"

        def measured():  # every sample measured, and the measuring jobs ended (their last act flags)
            jobs = client.get("/api/v1/jobs", params={"kind": "sample_metrics"}).json()
            samples = client.get(f"/api/v1/runs/{run['id']}").json()["samples"]
            done = jobs and all(job["status"] in FINAL for job in jobs)
            return samples if done and samples and all(s["metrics"] for s in samples) else None

        samples = _wait(measured, 120, "every sample measured by the follow-up job", interval=0.5)
        assert {(s["step"], s["variant"]) for s in samples} >= {
            (0, "base"), (2, "lora"), (2, "lora-audio-off"), (0, "v2a-base"), (2, "v2a-lora")}
        voice = {"speaker_similarity", "wer", "quality_mos"}
        for sample in samples:
            metrics = sample["metrics"]
            assert {"integrated_lufs", "buzz_score_db", "speech_ratio", "voice_distance"} | voice <= set(metrics)
            # the toy's samples are noise: each voice measure is a number or null with a reason
            assert all(metrics[k] is not None or k in (metrics.get("voice_reasons") or {}) for k in voice), metrics
            lora_off = sample["variant"] in ("base", "v2a-base")
            assert ("flags" in metrics) == (not lora_off)  # checked against the LoRA-off sample
            assert (sample["source_clip_id"] is not None) == sample["variant"].startswith("v2a")
        assert client.get(f"/api/v1/runs/{run['id']}").json()["voice_reference"]["clips"] >= 1

        def reported():
            answer = client.get(f"/api/v1/runs/{run['id']}/checkpoints/2/key-report")
            return answer.json() if answer.status_code == 200 and answer.json()["status"] == "done" else None

        report = _wait(reported, 120, "the checkpoint's key report", interval=0.5)
        assert report["ok"] and set(report["reports"]) == {"official", "diffusers"}
        for layout in report["reports"].values():
            assert layout["dropped_keys"] == 0 and layout["loaded_keys"] == layout["total_keys"] > 0
            assert layout["families"]["audio_attn1"] and layout["families"]["video_to_audio_attn"]

        grid = client.get(f"/api/v1/runs/{run['id']}/compare", params={"audio_off": True}).json()
        kinds = [column["kind"] for column in grid["columns"]]
        assert kinds[:2] == ["reference", "base"] and "lora" in kinds and "lora-audio-off" in kinds
        row = grid["rows"][0]  # the text prompt's row (then one row per video-to-audio clip)
        assert all(not cell["missing"] for cell in row["cells"])
        assert all(cell["metrics"] for cell in row["cells"][1:])  # base and checkpoint cells are measured
