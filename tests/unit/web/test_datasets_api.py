"""JSON API v1 flows: datasets, upload -> analysis -> findings, captions, bulk edits, jobs."""

from __future__ import annotations

from tests.unit.web.helpers import create_dataset, run_pending_jobs, upload


def test_create_dataset_validates_trigger_and_buckets(api):
    bad_trigger = api.post("/api/v1/datasets", json={"name": "Ema", "trigger": "ema voice"})
    assert bad_trigger.status_code == 422
    assert bad_trigger.json()["error"]["code"] == "invalid_trigger"
    assert "ema_voice" in bad_trigger.json()["error"]["message"]  # tells what to type instead

    bad_buckets = api.post("/api/v1/datasets", json={"name": "Ema", "trigger": "ema", "buckets": "500x512x48"})
    assert bad_buckets.status_code == 422
    assert bad_buckets.json()["error"]["code"] == "invalid_buckets"

    dataset = create_dataset(api, buckets="512x288x49; 512x512x49")
    assert dataset["buckets"] == "512x288x49;512x512x49"
    got = api.get(f"/api/v1/datasets/{dataset['id']}").json()
    assert got["summary"]["clips"] == 0 and got["trigger"] == "ema_voice"
    assert api.get("/api/v1/datasets/999").status_code == 404


def test_upload_probe_caption_flow(api, media):
    dataset = create_dataset(api)
    response = upload(api, dataset["id"], media.talking_clip(), names=["ema take 1.mp4"])
    assert response.status_code == 201, response.text
    (entry,) = response.json()
    assert entry["status"] == "uploaded" and entry["name"] == "ema take 1.mp4"
    job = api.get(f"/api/v1/jobs/{entry['job_id']}").json()
    assert job["status"] == "queued"

    assert run_pending_jobs() == ["succeeded"]
    clip = api.get(f"/api/v1/clips/{entry['id']}").json()
    assert clip["status"] == "ready"
    assert clip["facts"]["frames"] == 100 and clip["facts"]["bucket"] == "512x512x89"
    codes = {f["code"] for f in clip["findings"]}
    assert "missing_transcript" in codes  # espeak speech was found and no words are written yet
    assert {"poster", "waveform", "spectrogram"} <= set(clip["media"])
    assert api.get(f"/api/v1/jobs/{entry['job_id']}").json()["status"] == "succeeded"

    saved = api.put(f"/api/v1/clips/{clip['id']}/caption", json={
        "visual": "a young woman looks at the camera", "voice": "speaks in a soft, calm voice",
        "transcript": "I think we should start again from the beginning.", "sounds": "quiet room tone"})
    assert saved.status_code == 200, saved.text
    caption = saved.json()["caption"]
    assert caption["composed"] == ('ema_voice, a young woman looks at the camera, speaks in a soft, calm voice. '
                                   'Speech: "I think we should start again from the beginning." '
                                   'Sounds: quiet room tone.')
    assert "missing_transcript" not in {f["code"] for f in saved.json()["findings"]}
    # a partial update keeps the other fields
    again = api.put(f"/api/v1/clips/{clip['id']}/caption", json={"sounds": "no music"}).json()
    assert again["caption"]["visual"] == "a young woman looks at the camera"
    assert again["caption"]["composed"].endswith("Sounds: no music.")
    unknown = api.put(f"/api/v1/clips/{clip['id']}/caption", json={"speech": "hi"})
    assert unknown.status_code == 422

    summary = api.get(f"/api/v1/datasets/{dataset['id']}").json()["summary"]
    assert (summary["clips"], summary["trainable"], summary["blocked"]) == (1, 1, 0)


def test_duplicate_upload_is_flagged_on_both_clips(api, media):
    dataset = create_dataset(api)
    clip = media.talking_clip()
    first = upload(api, dataset["id"], clip).json()[0]
    second = upload(api, dataset["id"], clip, names=["copy.mp4"]).json()[0]
    assert "duplicate_clip" in {f["code"] for f in second["findings"]}
    run_pending_jobs()
    for clip_id in (first["id"], second["id"]):
        codes = {f["code"] for f in api.get(f"/api/v1/clips/{clip_id}").json()["findings"]}
        assert "duplicate_clip" in codes
    api.delete(f"/api/v1/clips/{second['id']}")
    codes = {f["code"] for f in api.get(f"/api/v1/clips/{first['id']}").json()["findings"]}
    assert "duplicate_clip" not in codes


def test_changing_buckets_recomputes_findings(api, media):
    dataset = create_dataset(api)
    clip_id = upload(api, dataset["id"], media.talking_clip()).json()[0]["id"]
    run_pending_jobs()
    assert api.get(f"/api/v1/clips/{clip_id}").json()["status"] == "ready"

    changed = api.patch(f"/api/v1/datasets/{dataset['id']}", json={"buckets": "64x64x121"})
    assert changed.status_code == 200
    clip = api.get(f"/api/v1/clips/{clip_id}").json()
    assert clip["status"] == "rejected"
    assert "too_short_for_buckets" in {f["code"] for f in clip["findings"]}
    summary = changed.json()["summary"]
    assert summary["blocked"] == 1 and summary["blocked_reasons"][0]["code"] == "too_short_for_buckets"
    assert changed.json()["dropped"][0]["clip_id"] == clip_id

    api.patch(f"/api/v1/datasets/{dataset['id']}", json={"buckets": "64x64x49"})
    clip = api.get(f"/api/v1/clips/{clip_id}").json()
    assert clip["status"] == "ready" and clip["facts"]["bucket"] == "64x64x49"


def test_defaults_bulk_set_and_find_replace(api, media):
    dataset = create_dataset(api)
    a = upload(api, dataset["id"], media.talking_clip()).json()[0]["id"]
    b = upload(api, dataset["id"], media.talking_clip(seed=0, text="Hello there, how are you today?")).json()[0]["id"]
    api.put(f"/api/v1/clips/{a}/caption", json={"visual": "a woman in a red coat", "transcript": "Hi."})
    api.put(f"/api/v1/clips/{b}/caption", json={"visual": "a woman in a red hat", "transcript": "Bye."})

    api.patch(f"/api/v1/datasets/{dataset['id']}", json={"default_voice": "calm voice", "default_sounds": "room tone"})
    composed = api.get(f"/api/v1/clips/{a}").json()["caption"]["composed"]
    assert composed == 'ema_voice, a woman in a red coat, calm voice. Speech: "Hi." Sounds: room tone.'

    set_voice = api.post(f"/api/v1/datasets/{dataset['id']}/captions/bulk", json={"clip_ids": [b], "voice": "bright voice"})
    assert set_voice.json() == {"changed": 1}
    assert "bright voice" in api.get(f"/api/v1/clips/{b}").json()["caption"]["composed"]
    assert "calm voice" in api.get(f"/api/v1/clips/{a}").json()["caption"]["composed"]  # not selected

    replaced = api.post(f"/api/v1/datasets/{dataset['id']}/captions/replace",
                        json={"clip_ids": [a, b], "find": "red", "replace": "blue"})
    assert replaced.json() == {"changed": 2}
    assert api.get(f"/api/v1/clips/{b}").json()["caption"]["visual"] == "a woman in a blue hat"
    nothing = api.post(f"/api/v1/datasets/{dataset['id']}/captions/replace",
                       json={"clip_ids": [], "find": "red", "replace": "x"})
    assert nothing.status_code == 422 and "Select" in nothing.json()["error"]["message"]


def test_cancel_a_queued_probe_job(api, media):
    dataset = create_dataset(api)
    entry = upload(api, dataset["id"], media.talking_clip()).json()[0]
    cancelled = api.post(f"/api/v1/jobs/{entry['job_id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert run_pending_jobs() == []
    assert api.get("/api/v1/jobs/4242").status_code == 404


def test_state_changes_need_a_token(browser_client):
    refused = browser_client.post("/api/v1/datasets", json={"name": "x", "trigger": "x"})
    assert refused.status_code == 403


def test_a_cancelled_analysis_is_reported_and_can_be_restarted(api, browser_client, media):
    dataset = create_dataset(api)
    entry = upload(api, dataset["id"], media.talking_clip()).json()[0]
    api.post(f"/api/v1/jobs/{entry['job_id']}/cancel")
    clip = api.get(f"/api/v1/clips/{entry['id']}").json()
    assert clip["status"] == "uploaded" and clip["probe_problem"]["job_status"] == "cancelled"
    summary = api.get(f"/api/v1/datasets/{dataset['id']}").json()["summary"]
    assert summary["checking"] == 0 and summary["not_analysed"] == 1
    grid = browser_client.get(f"/datasets/{dataset['id']}/grid").text
    assert "every 2s" not in grid and "Analyse again" in grid  # no endless polling

    again = api.post(f"/api/v1/clips/{entry['id']}/reprobe")
    assert again.status_code == 202 and again.json()["job_id"] != entry["job_id"]
    assert run_pending_jobs() == ["succeeded"]
    assert api.get(f"/api/v1/clips/{entry['id']}").json()["status"] == "ready"
