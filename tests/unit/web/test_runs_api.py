"""JSON API v1 for training: presets, preprocessing, runs, checkpoints and samples (SQLite, in-process jobs)."""

from __future__ import annotations

import io

import soundfile
from safetensors import safe_open

from tests.unit.web.helpers import run_pending_jobs
from tests.unit.web.training_support import preprocessed, ready_dataset, toy_config


def test_presets_are_run_configs(api):
    from core.recipe.run_config import parse_run_config

    sanity = api.get("/api/v1/presets/sanity?model=toy")
    assert sanity.status_code == 200
    config = parse_run_config(sanity.json())
    assert config.model == "toy" and config.optimization.steps == 500
    low = api.get("/api/v1/presets/low-vram").json()
    assert low["lora"]["rank"] == 16 and low["optimization"]["optimizer"] == "adamw8bit"
    assert "steps: 2000" in api.get("/api/v1/presets/full?format=yaml").text
    assert api.get("/api/v1/presets/turbo").status_code == 404


def test_preprocess_reports_every_clip_and_serves_decoded_previews(api, media):
    dataset = ready_dataset(api, media, count=2)
    clips = api.get(f"/api/v1/datasets/{dataset['id']}").json()["clips"]
    response = api.post(f"/api/v1/datasets/{dataset['id']}/preprocess", json={"model": "toy"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert api.get(f"/api/v1/jobs/{body['job_id']}").json()["status"] == "queued"
    again = api.post(f"/api/v1/datasets/{dataset['id']}/preprocess", json={"model": "toy"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_preprocessing"
    # a clip deleted after queuing is dropped with its reason, the other one is preprocessed
    assert api.delete(f"/api/v1/clips/{clips[1]['id']}").status_code == 204

    assert run_pending_jobs() == ["succeeded"]
    run = api.get(f"/api/v1/preprocess/{body['run_id']}").json()
    assert run["status"] == "succeeded" and run["buckets"] == "64x64x9" and run["model"] == "toy"
    kept, dropped = run["clips"]
    assert kept["status"] == "ok" and kept["bucket"] == "64x64x9"
    assert kept["caption"].startswith("ema_voice, a woman looks at the camera")
    assert dropped["status"] == "error" and "deleted" in dropped["reason"]
    assert run["dropped"] == [{"clip_id": clips[1]["id"], "name": "take1.mp4", "code": "missing_file",
                               "reason": dropped["reason"]}]
    audio = api.get(kept["decoded_audio_url"])
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    wave, rate = soundfile.read(io.BytesIO(audio.content))
    assert rate == 48000 and wave.shape[0] > 0.3 * rate  # the toy vocoder's rate, about the bucket's 9 frames
    video = api.get(kept["decoded_video_url"])
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    assert api.get(f"/api/v1/preprocess/{body['run_id']}/clips/{clips[1]['id']}/decoded_audio").status_code == 404
    listed = api.get(f"/api/v1/datasets/{dataset['id']}/preprocess").json()
    assert [r["id"] for r in listed] == [body["run_id"]]
    log = " ".join(line["text"] for line in api.get(f"/api/v1/jobs/{body['job_id']}/log").json())
    assert "take0.mp4: ok" in log and "_take0.mp4" not in log  # clips by their names, not the run folder's files


def test_training_is_offered_only_after_matching_preprocessing(api, media):
    dataset = ready_dataset(api, media)
    config = toy_config(api, dataset["id"])
    never = api.post("/api/v1/runs", json={"dataset_id": dataset["id"], "config": config})
    assert never.status_code == 409 and never.json()["error"]["code"] == "preprocess_needed"

    pre = preprocessed(api, dataset["id"], model="toy")
    other = dict(config, data={**config["data"], "buckets": "64x64x17"})
    mismatch = api.post("/api/v1/runs", json={"dataset_id": dataset["id"], "preprocess_run_id": pre["id"],
                                              "config": other})
    assert mismatch.status_code == 409 and mismatch.json()["error"]["code"] == "preprocess_mismatch"
    assert api.post("/api/v1/runs", json={"dataset_id": dataset["id"], "config": other}).status_code == 409

    clip_id = api.get(f"/api/v1/datasets/{dataset['id']}").json()["clips"][0]["id"]
    api.put(f"/api/v1/clips/{clip_id}/caption", json={"transcript": "Something else entirely."})
    outdated = api.post("/api/v1/runs", json={"dataset_id": dataset["id"], "preprocess_run_id": pre["id"],
                                              "config": config})
    assert outdated.status_code == 409 and outdated.json()["error"]["code"] == "preprocess_outdated"
    assert api.get(f"/api/v1/preprocess/{pre['id']}").json()["current"] is False

    preprocessed(api, dataset["id"], model="toy")
    created = api.post("/api/v1/runs", json={"dataset_id": dataset["id"], "config": config})
    assert created.status_code == 201, created.text
    assert api.get(f"/api/v1/jobs/{created.json()['job_id']}").json()["kind"] == "train"


def test_linter_errors_block_a_run_with_their_messages(api, media):
    dataset = ready_dataset(api, media)
    preprocessed(api, dataset["id"], model="toy")
    config = toy_config(api, dataset["id"], lora={"target_modules": ["attn1.to_q", "attn1.to_k"]})
    config["data"]["buckets"] = "64x64x10"
    response = api.post("/api/v1/runs", json={"dataset_id": dataset["id"], "config": config})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_config"
    codes = {issue["code"] for issue in error["detail"]["issues"] if issue["severity"] == "error"}
    assert "bucket_frames" in codes
    assert "8k+1" in error["message"]  # the linter's own words reach the person
    assert api.get("/api/v1/jobs?kind=train").json() == []  # nothing was queued

    unknown = api.post("/api/v1/runs", json={"dataset_id": dataset["id"], "config": {"optimisation": {}}})
    assert unknown.status_code == 422 and "optimisation" in unknown.json()["error"]["message"]


def test_a_short_run_records_metrics_checkpoints_and_samples(api, media, migrated_env):
    from pathlib import Path

    dataset = ready_dataset(api, media)
    preprocessed(api, dataset["id"], model="toy")
    created = api.post("/api/v1/runs", json={"dataset_id": dataset["id"], "config": toy_config(api, dataset["id"])})
    assert created.status_code == 201, created.text
    assert run_pending_jobs() == ["succeeded"]

    run = api.get(f"/api/v1/runs/{created.json()['id']}").json()
    assert run["status"] == "succeeded" and run["job"]["step"] == 4
    assert [m["step"] for m in run["metrics"]] == [1, 2, 3, 4]
    assert all(m["loss_audio"] is not None and m["loss_video"] > 0 and m["gpu_mem"] > 0 for m in run["metrics"])
    assert [c["step"] for c in run["checkpoints"]] == [2, 4]
    assert {(s["step"], s["variant"]) for s in run["samples"]} == {(0, "base"), (0, "lora"), (2, "lora"), (4, "lora")}
    data_dir = Path(migrated_env["AVLORA_DATA_DIR"])
    assert (data_dir / run["output_dir"] / "checkpoints" / "lora_weights_step_00004.safetensors").is_file()

    comfy = api.get(run["checkpoints"][1]["downloads"]["comfy"])
    diffusers = api.get(run["checkpoints"][1]["downloads"]["diffusers"])
    assert comfy.status_code == diffusers.status_code == 200
    keys = {}
    for name, response in (("comfy", comfy), ("diffusers", diffusers)):
        path = data_dir / f"{name}.safetensors"
        path.write_bytes(response.content)
        with safe_open(str(path), "pt") as handle:
            keys[name] = list(handle.keys())
    assert all(k.startswith("diffusion_model.") for k in keys["comfy"])
    assert all(k.startswith("transformer.") for k in keys["diffusers"])
    assert len(keys["comfy"]) == len(keys["diffusers"]) > 0
    missing = api.get(f"/api/v1/runs/{run['id']}/checkpoints/3/lora")
    assert missing.status_code == 404 and "2, 4" in missing.json()["error"]["message"]
    sample = api.get(run["samples"][-1]["mp4_url"])
    assert sample.status_code == 200 and sample.headers["content-type"] == "video/mp4"

    clone = api.post(f"/api/v1/runs/{run['id']}/clone", json={"changes": {"seed": 7}})
    assert clone.status_code == 201, clone.text
    cloned = api.get(f"/api/v1/runs/{clone.json()['id']}").json()
    assert cloned["parent_run_id"] == run["id"] and cloned["config"]["seed"] == 7
    assert cloned["output_dir"] != run["output_dir"] and cloned["status"] == "queued"
    listed = api.get(f"/api/v1/runs?dataset_id={dataset['id']}").json()
    assert [(r["id"], r["status"], r["checkpoints"]) for r in listed] == [
        (cloned["id"], "queued", []), (run["id"], "succeeded", [2, 4])]


def test_preflight_refuses_a_full_disk_and_missing_weights(api, media, monkeypatch):
    from core.services import preflight

    dataset = ready_dataset(api, media)
    missing = api.post(f"/api/v1/datasets/{dataset['id']}/preprocess", json={"model": "ltx-2.3"})
    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "model_files_missing"
    assert "ltx-2.3-22b-dev.safetensors" in missing.json()["error"]["message"]

    monkeypatch.setattr(preflight, "free_bytes", lambda _path: 10 * 2**20)
    full = api.post(f"/api/v1/datasets/{dataset['id']}/preprocess", json={"model": "toy"})
    assert full.status_code == 507
    assert full.json()["error"]["code"] == "disk_full"
    assert "Free some space" in full.json()["error"]["message"]
    assert api.get("/api/v1/jobs").json()[0]["kind"] == "probe_clip"  # no GPU job was queued


def test_a_disk_that_fills_up_during_training_fails_the_job_with_what_happened(api, media, monkeypatch,
                                                                               migrated_env):
    import errno
    from pathlib import Path

    import torch

    dataset = ready_dataset(api, media)
    preprocessed(api, dataset["id"], model="toy")
    created = api.post("/api/v1/runs", json={"dataset_id": dataset["id"],
                                             "config": toy_config(api, dataset["id"])}).json()

    def full_disk(_state, path):
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(torch, "save", full_disk)
    assert run_pending_jobs() == ["failed"]
    job = api.get(f"/api/v1/jobs/{created['job_id']}").json()
    assert job["error"].startswith("the disk holding DATA_DIR is full: ")  # named, whatever torch raised
    run = api.get(f"/api/v1/runs/{created['id']}").json()
    assert run["status"] == "failed" and run["checkpoints"] == []
    folder = Path(migrated_env["AVLORA_DATA_DIR"]) / run["output_dir"] / "checkpoints"
    assert not list(folder.glob("*.tmp")) and not list(folder.glob("training_state_*"))  # nothing half-written
