"""Preprocessing again after one caption edit reuses every unchanged cache entry of the earlier
run (video and audio latents, decoded previews, other captions) and computes only that caption's
text conditions; the job's result, the API and the page say how many were reused and computed."""

from __future__ import annotations

import time

from tests.unit.web.helpers import create_dataset, run_pending_jobs, upload
from tests.unit.web.training_support import TOY_BUCKET, TRIGGER

CLIPS = 2
ENTRIES_PER_CLIP = 5  # video latents, audio latents, text conditions, decoded video, decoded audio


def _dataset(api, media) -> tuple[int, list[dict]]:
    """Two different analysed, captioned talking clips."""
    dataset = create_dataset(api, trigger=TRIGGER, buckets=TOY_BUCKET)
    clips = []
    for index in range(CLIPS):
        clip = media.talking_clip(seed=index, text=f"Take number {index + 1}, hello there.")
        (entry,) = upload(api, dataset["id"], clip, names=[f"take{index}.mp4"]).json()
        assert run_pending_jobs() == ["succeeded"]
        saved = api.put(f"/api/v1/clips/{entry['id']}/caption", json={
            "visual": "a woman looks at the camera", "transcript": f"Take number {index + 1}, hello there."})
        assert saved.status_code == 200, saved.text
        clips.append(entry)
    return dataset["id"], clips


def _preprocess(api, dataset_id: int) -> tuple[dict, dict, float]:
    """Queue and run a preprocessing; returns the run, its job (with result) and the seconds it took."""
    started = api.post(f"/api/v1/datasets/{dataset_id}/preprocess", json={"model": "toy"})
    assert started.status_code == 202, started.text
    began = time.perf_counter()
    assert run_pending_jobs() == ["succeeded"]
    seconds = time.perf_counter() - began
    body = started.json()
    return (api.get(f"/api/v1/preprocess/{body['run_id']}").json(),
            api.get(f"/api/v1/jobs/{body['job_id']}").json(), seconds)


def _entry(data_dir, run: dict, clip_id: int, kind: str) -> bytes:
    media = next(c["media"] for c in run["clips"] if c["clip_id"] == clip_id)
    return (data_dir / run["output_dir"] / ".precomputed" / kind / media).with_suffix(".pt").read_bytes()


def test_a_caption_edit_recomputes_only_that_clips_text(api, browser_client, media, migrated_env):
    from pathlib import Path

    data_dir = Path(migrated_env["AVLORA_DATA_DIR"])
    dataset_id, clips = _dataset(api, media)
    first, first_job, first_s = _preprocess(api, dataset_id)
    everything = CLIPS * ENTRIES_PER_CLIP
    assert first_job["result"]["computed"] == everything and first_job["result"]["reused"] == 0

    edited = clips[1]
    api.put(f"/api/v1/clips/{edited['id']}/caption", json={"visual": "a woman smiles at the camera"})
    outdated = api.get(f"/api/v1/preprocess/{first['id']}").json()
    assert outdated["current"] is False
    assert outdated["outdated"] == [{"clip_id": edited["id"], "name": "take1.mp4", "change": "caption"}]
    page = browser_client.get(f"/preprocess/{first['id']}").text
    assert "The caption of take1.mp4 changed" in page and "only its text conditions" in page

    second, second_job, second_s = _preprocess(api, dataset_id)
    result = second_job["result"]
    assert (result["reused"], result["computed"]) == (everything - 1, 1)
    assert (result["clips_reused"], result["clips_computed"]) == (CLIPS - 1, 1)
    assert result["computed_kinds"] == {"conditions": 1}
    assert [c["status"] for c in second["clips"]] == ["cached", "ok"]
    for clip in clips:
        for kind in ("latents", "audio_latents"):
            assert _entry(data_dir, second, clip["id"], kind) == _entry(data_dir, first, clip["id"], kind)
        same_text = _entry(data_dir, second, clip["id"], "conditions") == _entry(data_dir, first, clip["id"], "conditions")
        assert same_text is (clip is not edited)
    assert all(c["decoded_video_url"] and c["decoded_audio_url"] for c in second["clips"])
    assert api.get(second["clips"][0]["decoded_audio_url"]).status_code == 200
    assert f"{everything - 1} reused, 1 computed" in browser_client.get(f"/preprocess/{second['id']}").text
    print(f"\npreprocess of {CLIPS} toy clips: first {first_s:.2f} s, again after one caption edit {second_s:.2f} s")


def test_the_outdated_line_says_what_changed_and_what_is_computed_again():
    from types import SimpleNamespace

    from core.services.preprocess_runs import outdated_text

    run = SimpleNamespace(trigger="ema_voice", dataset=SimpleNamespace(trigger="ema_voice"))

    def changed(kind, *names):
        return [{"clip_id": i, "name": name, "change": kind} for i, name in enumerate(names)]

    assert outdated_text(run, changed("caption", "a.mp4", "b.mp4")) == (
        "The captions of a.mp4 and b.mp4 changed after this run: preprocess again before training "
        "(only their text conditions are computed again; everything else is reused).")
    assert outdated_text(run, changed("removed", "a.mp4") + changed("media", "b.mp4")) == (
        "The file of b.mp4 changed; clip a.mp4 was removed after this run: preprocess again before training "
        "(what did not change is reused).")
    assert outdated_text(run, changed("added", *"abcde")).startswith("5 clips were added after this run")
    run.dataset.trigger = "ema"
    assert outdated_text(run, changed("caption", *"abcd")).startswith(
        "The trigger changed; the captions of 4 clips changed after this run")
