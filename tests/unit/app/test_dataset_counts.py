"""The dataset summary counts clips, not file names: identical uploads are each a clip to train on
(and each a duplicate to remove), so the advice must say how many there are."""

from __future__ import annotations

from tests.unit.web.helpers import create_dataset, run_pending_jobs, upload


def test_identical_uploads_are_each_counted_in_the_advice(api, media):
    """Three uploads of one file are three clips under one name: the advice says 3, not 1."""
    dataset = create_dataset(api)
    clip = media.clip(audio="noise")  # no speech: analysed in a second, and advised about (low_speech)
    assert upload(api, dataset["id"], clip, clip, clip).status_code == 201
    run_pending_jobs()
    summary = api.get(f"/api/v1/datasets/{dataset['id']}").json()["summary"]
    assert summary["clips"] == 3
    advice = {a["code"]: a for a in summary["advice"]}
    for code in ("low_speech", "duplicate_clip"):
        assert advice[code]["count"] == 3 and advice[code]["clips"] == [clip.name]
    assert f"3 clips: {clip.name}" in api.get(f"/datasets/{dataset['id']}/grid").text  # the page says so too


def test_identical_blocked_uploads_are_each_counted_in_the_reasons(api, media):
    dataset = create_dataset(api)
    mute = media.clip(audio="none")
    upload(api, dataset["id"], mute, mute)
    run_pending_jobs()
    summary = api.get(f"/api/v1/datasets/{dataset['id']}").json()["summary"]
    assert summary["blocked"] == 2
    reason = next(r for r in summary["blocked_reasons"] if r["code"] == "no_audio_track")
    assert reason["count"] == 2 and reason["clips"] == [mute.name]
