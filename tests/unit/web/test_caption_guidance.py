"""What a newcomer was left guessing about (issue 19): an empty caption is refused with what is
missing, "Save and next" passes by the clips that cannot train (naming them) and says when the
dataset is done, bulk edits leave rejected clips out unless asked, findings read as words first,
and the OpenAPI page is served from the studio itself."""

from __future__ import annotations

import re

from tests.unit.web.helpers import create_dataset, run_pending_jobs, upload


def _csrf(client, path: str) -> str:
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', client.get(path).text).group(1)


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _clips(api, media) -> tuple[int, dict[str, int]]:
    """A dataset of four analysed clips, in this order: a clip that can train, one without sound
    (rejected), a byte-for-byte copy of the first, and a second clip that can train. (A tone
    stands in for speech: it trains as well and skips the slow voice analysis.)"""
    dataset = create_dataset(api)
    names = ["take1.mp4", "mute.mp4", "take1-again.mp4", "take2.mp4"]
    files = [media.clip(audio="tone"), media.clip(audio="none"), media.clip(audio="tone"),
             media.clip(audio="tone", duration=3.6)]
    ids = {}
    for name, path in zip(names, files):
        ids[name] = upload(api, dataset["id"], path, names=[name]).json()[0]["id"]
    run_pending_jobs()
    return dataset["id"], ids


def test_save_and_next_and_bulk_edits_pass_by_what_cannot_train(api, browser_client, media):
    dataset_id, ids = _clips(api, media)
    _save_and_next_says_what_it_passed_and_when_done(browser_client, dataset_id, ids)
    _bulk_edits_leave_rejected_clips_out_unless_asked(api, browser_client, dataset_id, ids)


def _save_and_next_says_what_it_passed_and_when_done(browser_client, dataset_id: int, ids: dict[str, int]):
    first, mute, copy, second = ids.values()
    token = _csrf(browser_client, f"/clips/{first}")

    def save_next(clip_id: int, visual: str):
        return browser_client.post(f"/clips/{clip_id}/caption", data={"csrf_token": token, "visual": visual,
                                                                        "go": "next"})

    # the last clip that can train, while the first still has no caption: named, with a link
    at_last = save_next(second, "a man by a window")
    assert at_last.url.path == f"/clips/{second}" and "last=1" in at_last.url.query.decode()
    progress = _text(re.search(r'<p id="dataset-progress">.*?</p>', at_last.text, re.S).group(0))
    assert "No clip after this one can train. 1 of 2 clips that can train still have no caption: take1.mp4" in progress
    assert f'href="/clips/{first}"' in at_last.text

    # from the first: the rejected clip and the copy are passed by, and named with why
    moved = save_next(first, "a woman looks up")
    assert moved.url.path == f"/clips/{second}"
    passed = _text(re.search(r'<p id="passed-clips">.*?</p>', moved.text, re.S).group(0))
    assert "Passed by 2 clips that cannot train" in passed
    assert "mute.mp4 (rejected: no audio track)" in passed
    assert f"take1-again.mp4 (the same file as clip #{first})" in passed
    assert f'href="/clips/{mute}"' in moved.text and f'href="/clips/{copy}"' in moved.text
    assert "Caption of take1.mp4 saved." in _text(moved.text)

    done = save_next(second, "a man by a window, smiling")
    assert "Captioning done: every clip of this dataset that can train (2) has a caption." in _text(done.text)
    assert f'href="/datasets/{dataset_id}#training-panel"' in done.text


def _bulk_edits_leave_rejected_clips_out_unless_asked(api, browser_client, dataset_id: int, ids: dict[str, int]):
    first, mute = ids["take1.mp4"], ids["mute.mp4"]
    token = _csrf(browser_client, f"/datasets/{dataset_id}")

    def bulk(*clip_ids: int, **extra):
        return browser_client.post(f"/datasets/{dataset_id}/bulk", data={
            "csrf_token": token, "clip_ids": [str(i) for i in clip_ids], "sounds": "room tone", "action": "set",
            **extra})

    def sounds(clip_id: int) -> str:
        return api.get(f"/api/v1/clips/{clip_id}").json()["caption"]["sounds"]

    both = bulk(first, mute)
    assert both.status_code == 200
    assert "Updated 1 caption(s); left out 1 rejected clip(s)" in both.text
    assert (sounds(first), sounds(mute)) == ("room tone", "")

    only_rejected = bulk(mute)
    assert only_rejected.status_code == 422 and "Include rejected clips" in only_rejected.text
    assert sounds(mute) == ""

    asked = bulk(mute, include_rejected="1")
    assert asked.status_code == 200 and "Updated 1 caption(s)" in asked.text and sounds(mute) == "room tone"


def test_an_empty_caption_is_refused_and_findings_read_as_words_first(api, browser_client, media):
    dataset = create_dataset(api)
    clip_id = upload(api, dataset["id"], media.clip(audio="none"), names=["mute.mp4"]).json()[0]["id"]
    run_pending_jobs()

    refused = api.put(f"/api/v1/clips/{clip_id}/caption", json={"visual": "   ", "transcript": ""})
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "empty_caption"
    assert "visual description" in error["message"] and "transcript" in error["message"]
    assert api.get(f"/api/v1/clips/{clip_id}").json()["caption"]["updated_at"] is None  # nothing stored

    token = _csrf(browser_client, f"/clips/{clip_id}")
    page = browser_client.post(f"/clips/{clip_id}/caption", data={"csrf_token": token, "visual": " ", "go": "stay"},
                               follow_redirects=False)
    assert page.status_code == 422
    assert "Caption saved" not in page.text
    said = re.search(r'<p class="error" role="alert" id="caption-error">([^<]+)</p>', page.text).group(1)
    assert "only the trigger" in said and "transcript" in said

    # findings: words first, what they mean one click away (not a hover), the code last
    from core.media.findings import FINDING_CODES
    from core.services.clip_findings import FINDING_LABELS

    assert set(FINDING_CODES) <= set(FINDING_LABELS)
    assert all("_" not in label for label in FINDING_LABELS.values())
    page = browser_client.get(f"/datasets/{dataset['id']}").text
    dropped = _text(re.search(r'<div class="dropped">.*?</div>', page, re.S).group(0))
    assert re.search(r"No audio track · 1 clip: mute\.mp4 — .* no_audio_track$", dropped)
    card = _text(re.search(r'<details class="card-findings">.*?</details>', page, re.S).group(0))
    assert card.startswith("No audio track ") and "why? No audio track: The clip has no audio track." in card


def test_the_api_page_uses_the_studios_own_assets(api):
    page = api.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(url.startswith("/static/") for url in assets), assets
    for url in assets:
        assert api.get(url).status_code == 200, url
    assert api.get("/redoc").status_code == 404  # ReDoc exists only on a CDN: off
