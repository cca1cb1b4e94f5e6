"""The speech controls of the clip and dataset pages: Transcribe, an automatic transcript marked
with its unsure words and confirmed, the split plan and a split original linking its parts, bulk
transcription, the dataset's language and voices.

The speech results are written into the database as the worker would leave them, so these tests
check what the pages show without running the recogniser (tests/unit/web/test_speech_api.py does).
"""

from __future__ import annotations

import json
import re
from html import unescape

from tests.unit.web.helpers import create_dataset, run_pending_jobs, upload

WORDS = [("please", 0.95), ("call", 0.31), ("me", 0.9), ("tomorrow", 0.55), ("morning", 0.88)]


def _change_clip(clip_id: int, **fields) -> None:
    from core.db import session_scope
    from core.models import Clip

    with session_scope() as session:
        clip = session.get(Clip, clip_id)
        for name, value in fields.items():
            if name == "transcript":
                clip.caption.transcript, clip.caption.transcript_source = value
            else:
                setattr(clip, name, value)


def _ready_clip(api, media, dataset_id: int, name: str = "take.mp4") -> int:
    (entry,) = upload(api, dataset_id, media.talking_clip(), names=[name]).json()
    assert run_pending_jobs() == ["succeeded"]
    return entry["id"]


def _text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_an_automatic_transcript_is_marked_with_its_unsure_words_until_it_is_confirmed(api, browser_client, media):
    dataset = create_dataset(api)
    clip_id = _ready_clip(api, media, dataset["id"])
    page = browser_client.get(f"/clips/{clip_id}").text
    assert f'data-transcribe="/api/v1/clips/{clip_id}/transcribe"' in page and 'id="transcribe"' in page
    assert "automatic — check it" not in page and 'id="heard-words"' not in page

    api.put(f"/api/v1/clips/{clip_id}/caption", json={"visual": "a woman"})  # makes the caption row
    words = [{"word": w, "start_s": i * 0.5, "end_s": i * 0.5 + 0.4, "confidence": c} for i, (w, c) in enumerate(WORDS)]
    _change_clip(clip_id, transcript=("please call me tomorrow morning", "auto"),
                 speech={"text": "please call me tomorrow morning", "words": words, "source": "recognised"})
    page = browser_client.get(f"/clips/{clip_id}").text
    block = re.search(r'<div id="transcript-block".*?</textarea>.*?</div>\s*</div>', page, re.S).group(0)
    assert 'class="badge warning" id="transcript-auto">automatic — check it<' in block
    assert 'id="confirm-transcript"' in block and "please call me tomorrow morning</textarea>" in block
    heard = re.search(r'<p class="heard-words" id="heard-words">.*?</p>', page, re.S).group(0)
    assert re.findall(r"<mark[^>]*>(\w+)</mark>", heard) == ["call", "tomorrow"]
    assert "2 unsure words marked" in _text(heard) and 'title="31 % sure, at 0.50 s"' in heard

    # "Confirm transcript" saves the form and makes the transcript the person's
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    saved = browser_client.post(f"/clips/{clip_id}/caption", follow_redirects=False, data={
        "csrf_token": token, "visual": "a woman", "transcript": "please call me tomorrow morning", "voice": "",
        "sounds": "", "text": "", "confirm_transcript": "1"})
    assert saved.status_code == 303
    assert api.get(f"/api/v1/clips/{clip_id}").json()["caption"]["transcript_source"] == "user"
    page = browser_client.get(f"/clips/{clip_id}").text
    assert "automatic — check it" not in page and 'id="confirm-transcript"' not in page
    assert 'id="heard-words"' in page  # the timed words stay, unsure ones still marked


def test_findings_offer_their_action_and_the_page_carries_the_split_plan(api, browser_client, media):
    dataset = create_dataset(api, buckets="64x64x9")
    clip_id = _ready_clip(api, media, dataset["id"])
    findings = [
        {"code": "missing_transcript", "severity": "warning", "message": "Speech but no transcript.",
         "detail": {"action": "transcribe"}},
        {"code": "long_clip", "severity": "warning", "message": "Longer than 10 s.", "detail": {"action": "split"}},
        {"code": "transcript_mismatch", "severity": "info", "message": "The transcript differs from what is heard.",
         "detail": {"wer": 0.8, "heard": "please call me"}},
    ]
    plan = {"parts": [{"start_s": 0.0, "end_s": 1.96, "frames": 49, "transcript": "please call"},
                      {"start_s": 2.1, "end_s": 4.0, "frames": 45, "transcript": "me tomorrow's"}]}
    _change_clip(clip_id, findings=findings, split_plan=plan)
    page = browser_client.get(f"/clips/{clip_id}").text
    section = re.search(r'<section class="findings".*?</section>', page, re.S).group(0)
    assert re.search(r'missing_transcript.*?<button type="button" class="finding-action" data-transcribe=', section, re.S)
    assert re.search(r"long_clip.*?data-plan-split>Plan a split</button>", section, re.S)
    assert "Heard: “please call me”" in section
    assert browser_client.get(f"/clips/{clip_id}/status").text.count("data-plan-split") == 1  # the polled partial too

    split = re.search(r'<section class="panel split" id="split".*?</section>', page, re.S).group(0)
    assert json.loads(unescape(re.search(r"data-plan='([^']*)'", split).group(1))) == plan["parts"]
    assert 'id="apply-split"' in split and 'role="alert"' in split and ">Plan again<" in split
    assert 'data-min-s="1.0"' in split and 'data-max-s="10.0"' in split  # never under 1 s, never over 10 s
    assert 'id="split-regions"' in page and "/js/split.js" in page


def test_a_split_original_links_its_parts_and_the_grid_counts_it_apart(api, browser_client, media):
    dataset = create_dataset(api)
    original = _ready_clip(api, media, dataset["id"], "long.mp4")
    first, second = (_ready_clip(api, media, dataset["id"], f"long_part0{n}.mov") for n in (1, 2))
    _change_clip(original, status="split", split_into=[first, second])
    for part in (first, second):
        _change_clip(part, split_from_id=original)

    page = browser_client.get(f"/clips/{original}").text
    split = re.search(r'<section class="panel split" id="split">.*?</section>', page, re.S).group(0)
    assert "Split into 2 clips" in split
    assert f'<a href="/clips/{first}">long_part01.mov</a>' in split and f'<a href="/clips/{second}">' in split
    assert 'id="plan-split"' not in page and 'id="transcribe"' not in page
    child = browser_client.get(f"/clips/{first}").text
    assert f'<dt>Cut from</dt><dd><a href="/clips/{original}">long.mp4</a></dd>' in child

    grid = browser_client.get(f"/datasets/{dataset['id']}/grid").text
    card = re.search(rf'<li class="card status-split" id="clip-{original}">.*?</li>\s*(?=<li class="card|</ul>)', grid, re.S)
    assert "Split into 2" in _text(card.group(0)) and "data-speech" not in card.group(0)
    summary = _text(re.search(r'<p class="summary-line".*?</p>', grid, re.S).group(0))
    assert summary.startswith("3 clips, 2 trainable") and "1 split into parts" in summary


def test_the_dataset_page_transcribes_selected_clips_and_saves_language_and_auto_transcription(api, browser_client,
                                                                                                media):
    dataset = create_dataset(api)
    clip_ids = [_ready_clip(api, media, dataset["id"], name) for name in ("a.mp4", "b.mp4", "c.mp4")]
    page = browser_client.get(f"/datasets/{dataset['id']}").text
    assert re.search(rf'<button type="button" id="transcribe-selected" data-transcribe="/api/v1/datasets/'
                     rf'{dataset["id"]}/transcribe"\s+data-selected', page)
    assert page.count("data-speech") == 3 and "/js/caption.js" in page
    assert 'id="set-language" name="language" value="en"' in page
    assert re.search(r'name="auto_transcribe" value="1"\s*>', page)  # unchecked

    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = {"csrf_token": token, "trigger": "ema_voice", "buckets": dataset["buckets"], "language": "de",
            "auto_transcribe": "1"}
    assert browser_client.post(f"/datasets/{dataset['id']}/settings", data=form, follow_redirects=False).status_code == 303
    data = api.get(f"/api/v1/datasets/{dataset['id']}").json()
    assert data["language"] == "de" and data["auto_transcribe"] is True
    assert re.search(r'name="auto_transcribe" value="1"\s*checked>', browser_client.get(f"/datasets/{dataset['id']}").text)
    bad = browser_client.post(f"/datasets/{dataset['id']}/settings", data={**form, "language": "german!"})
    assert bad.status_code == 422 and "not a language code" in bad.text
    del form["auto_transcribe"]
    browser_client.post(f"/datasets/{dataset['id']}/settings", data={**form, "language": ""})
    data = api.get(f"/api/v1/datasets/{dataset['id']}").json()
    assert data["language"] == "de" and data["auto_transcribe"] is False  # an empty language keeps it

    # two voices: the summary says so
    for clip_id, vector in zip(clip_ids, ([1.0, 0.0, 0.0], [0.99, 0.1, 0.0], [0.0, 0.0, 1.0])):
        analysis = api.get(f"/api/v1/clips/{clip_id}").json()["analysis"]
        _change_clip(clip_id, analysis={**analysis, "voice": {"embedding": vector}})
    summary = re.search(r'<p class="summary-line".*?</p>', browser_client.get(f"/datasets/{dataset['id']}/grid").text,
                        re.S).group(0)
    assert "· 2 distinct voices" in _text(summary)
