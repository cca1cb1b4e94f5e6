"""Helpers for the training tests (not collected): a probed toy dataset, tiny run configs."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.unit.web.helpers import create_dataset, run_pending_jobs, upload

TOY_BUCKET = "64x64x9"
TRIGGER = "ema_voice"


def ready_dataset(api: TestClient, media, count: int = 1) -> dict:
    """A dataset with ``count`` talking clips, analysed and captioned, bucket 64x64x9."""
    dataset = create_dataset(api, trigger=TRIGGER, buckets=TOY_BUCKET)
    for index in range(count):
        (entry,) = upload(api, dataset["id"], media.talking_clip(), names=[f"take{index}.mp4"]).json()
        assert run_pending_jobs() == ["succeeded"]
        saved = api.put(f"/api/v1/clips/{entry['id']}/caption", json={
            "visual": "a woman looks at the camera", "voice": "speaks calmly",
            "transcript": "Hello there, how are you today?", "sounds": "quiet room"})
        assert saved.status_code == 200, saved.text
    return dataset


def toy_config(api: TestClient, dataset_id: int, *, steps: int = 4, interval: int = 2, **sections) -> dict:
    """The sanity preset shrunk for the toy model: rank 4, a few steps, tiny validation samples."""
    config = api.get(f"/api/v1/presets/sanity?model=toy&dataset_id={dataset_id}").json()
    config["lora"].update(rank=4, alpha=4)
    config["optimization"].update(steps=steps, gradient_checkpointing=False)
    config["checkpoints"]["interval"] = interval
    config["validation"].update(video_dims=[64, 64, 9], inference_steps=2, variants=["lora", "base"],
                                prompts=["{trigger}, a woman speaks calmly: hello there"])
    for name, values in sections.items():
        config[name].update(values)
    return config


def preprocessed(api: TestClient, dataset_id: int, **body) -> dict:
    """Queue preprocessing, run it in this process, return the preprocess run."""
    response = api.post(f"/api/v1/datasets/{dataset_id}/preprocess", json=body)
    assert response.status_code == 202, response.text
    assert run_pending_jobs() == ["succeeded"]
    return api.get(f"/api/v1/preprocess/{response.json()['run_id']}").json()
