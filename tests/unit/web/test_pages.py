"""The studio's pages as a browser gets them: forms with CSRF, summaries, the caption form."""

from __future__ import annotations

import re

from app.templating import TEMPLATES_DIR
from tests.unit.web.helpers import create_dataset, run_pending_jobs, upload


def _csrf(client, path: str = "/datasets") -> str:
    html = client.get(path).text
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)


def test_create_dataset_from_the_form(browser_client):
    token = _csrf(browser_client)
    bad = browser_client.post("/datasets", data={"name": "Ema", "trigger": "ema voice", "csrf_token": token})
    assert bad.status_code == 422
    assert "has spaces" in bad.text and 'value="ema voice"' in bad.text  # what to fix, input kept
    ok = browser_client.post("/datasets", data={"name": "Ema", "trigger": "ema_voice", "csrf_token": token},
                             follow_redirects=False)
    assert ok.status_code == 303
    page = browser_client.get(ok.headers["location"])
    assert page.status_code == 200 and "ema_voice" in page.text and "0</strong> clips" in page.text
    refused = browser_client.post("/datasets", data={"name": "Ema", "trigger": "ema"})
    assert refused.status_code == 403  # no CSRF token


def test_dataset_page_summary_and_polling_ends(api, browser_client, media):
    dataset = create_dataset(api)
    upload(api, dataset["id"], media.talking_clip())
    upload(api, dataset["id"], media.clip(audio="none"))
    grid = browser_client.get(f"/datasets/{dataset['id']}/grid").text
    assert 'hx-trigger="every 2s"' in grid and "being checked" in grid
    run_pending_jobs()
    grid = browser_client.get(f"/datasets/{dataset['id']}/grid").text
    assert "every 2s" not in grid  # nothing pending: the polling stops itself
    text = " ".join(re.sub(r"<[^>]+>", " ", grid).split())
    assert "2 clips, 1 trainable, 1 blocked" in text
    assert "The trainer would drop" in text and "no_audio_track" in text


def test_clip_page_caption_form_save_and_next(api, browser_client, media):
    dataset = create_dataset(api)
    first = upload(api, dataset["id"], media.talking_clip()).json()[0]["id"]
    second = upload(api, dataset["id"], media.clip(audio="tone")).json()[0]["id"]
    run_pending_jobs()
    page = browser_client.get(f"/clips/{first}")
    assert page.status_code == 200
    assert "Waveform" in page.text and "Spectrogram" in page.text and "missing_transcript" in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)

    preview = browser_client.get(f"/clips/{first}/preview", params={"visual": "a woman", "transcript": "Hi"})
    assert preview.text == 'ema_voice, a woman. Speech: "Hi".'

    saved = browser_client.post(f"/clips/{first}/caption", data={
        "csrf_token": token, "visual": "a woman", "transcript": "Hi.", "voice": "", "sounds": "", "text": "",
        "go": "next"}, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == f"/clips/{second}?saved_from={first}"
    reloaded = browser_client.get(f"/clips/{first}").text
    assert "Hi." in reloaded and 'ema_voice, a woman. Speech: &#34;Hi.&#34;' in reloaded
    assert "missing_transcript" not in reloaded


def test_media_is_served_with_safe_types(api, media):
    dataset = create_dataset(api)
    clip_id = upload(api, dataset["id"], media.talking_clip(), names=["<img src=x onerror=alert(1)>.html"]).json()[0]["id"]
    run_pending_jobs()
    for kind, expected in (("source", "video/mp4"), ("poster", "image/jpeg"), ("waveform", "image/png")):
        response = api.get(f"/media/clips/{clip_id}/{kind}")
        assert response.status_code == 200
        assert response.headers["content-type"] == expected
        assert response.headers["x-content-type-options"] == "nosniff"
    seek = api.get(f"/media/clips/{clip_id}/source", headers={"Range": "bytes=0-99"})
    assert seek.status_code == 206 and len(seek.content) == 100  # players can seek
    assert api.get(f"/media/clips/{clip_id}/../../studio.sqlite3").status_code == 404
    assert api.get(f"/media/clips/{clip_id}/proxy").status_code == 404  # H.264/AAC needs no proxy
    page = api.get(f"/datasets/{dataset['id']}").text
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;.html" in page  # names are escaped


def test_templates_have_no_inline_scripts():
    for template in TEMPLATES_DIR.rglob("*.html"):
        for tag in re.findall(r"<script[^>]*>", template.read_text()):
            assert "src=" in tag, f"inline script in {template.name}"


def test_settings_and_bulk_forms(api, browser_client, media):
    dataset = create_dataset(api)
    a = upload(api, dataset["id"], media.talking_clip()).json()[0]["id"]
    b = upload(api, dataset["id"], media.clip(audio="tone")).json()[0]["id"]
    run_pending_jobs()
    token = _csrf(browser_client, f"/datasets/{dataset['id']}")

    bad = browser_client.post(f"/datasets/{dataset['id']}/settings",
                              data={"csrf_token": token, "buckets": "512x512x50", "trigger": "ema_voice"})
    assert bad.status_code == 422 and "8 plus 1" in bad.text
    saved = browser_client.post(f"/datasets/{dataset['id']}/settings", data={
        "csrf_token": token, "buckets": "64x64x121", "trigger": "ema_voice", "default_voice": "calm voice",
        "default_sounds": ""})
    assert saved.status_code == 200 and "Settings saved" in saved.text
    assert "2 clips, 0 trainable, 2 blocked" in " ".join(re.sub(r"<[^>]+>", " ", saved.text).split())
    assert api.get(f"/api/v1/clips/{a}").json()["caption"]["composed"] == "ema_voice, calm voice."

    bulk = browser_client.post(f"/datasets/{dataset['id']}/bulk", data={
        "csrf_token": token, "clip_ids": [str(b)], "sounds": "a steady tone", "action": "set",
        "include_rejected": "1"})  # both clips are rejected under these buckets
    assert bulk.status_code == 200 and "Updated 1 caption" in bulk.text
    assert api.get(f"/api/v1/clips/{b}").json()["caption"]["sounds"] == "a steady tone"
    assert api.get(f"/api/v1/clips/{a}").json()["caption"]["sounds"] == ""
    none_selected = browser_client.post(f"/datasets/{dataset['id']}/bulk", data={
        "csrf_token": token, "find": "tone", "replace": "hum", "action": "replace"})
    assert none_selected.status_code == 422 and "Select at least one clip" in none_selected.text
