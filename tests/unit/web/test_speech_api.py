"""The speech API as a script uses it: transcribe clips, plan a split, cut a clip, voice findings.

Clips are spoken by espeak-ng at test time; jobs run in this process with the worker's handlers.
"""

from __future__ import annotations

from core.recipe.speech_rules import LONGEST_PART_S
from tests.media_factory import ClipSpec, write_clip
from tests.unit.web.helpers import create_dataset, run_pending_jobs, upload

LINES = ("please call me tomorrow morning. i would like a cup of coffee. "
         "we are going to the store. the children are playing in the park.")


def _clip(api, dataset_id, path, name):
    (entry,) = upload(api, dataset_id, path, names=[name]).json()
    assert run_pending_jobs() == ["succeeded"]
    return api.get(f"/api/v1/clips/{entry['id']}").json()


def _words(text: str) -> set[str]:
    return {w.strip(".,").lower() for w in text.split()}


def test_transcribe_fills_an_automatic_transcript_with_timed_words(api, tmp_path):
    dataset = create_dataset(api, buckets="64x64x9")
    source = write_clip(tmp_path / "line.mp4", ClipSpec(duration=4.0, text="please call me tomorrow morning", voice="en-us",
                                                          pause_s=2.0))
    clip = _clip(api, dataset["id"], source, "line.mp4")
    assert "missing_transcript" in [f["code"] for f in clip["findings"]]

    answer = api.post(f"/api/v1/clips/{clip['id']}/transcribe")
    assert answer.status_code == 202, answer.text
    assert run_pending_jobs() == ["succeeded"]
    clip = api.get(f"/api/v1/clips/{clip['id']}").json()

    assert clip["caption"]["transcript_source"] == "auto"
    assert len(_words(clip["caption"]["transcript"]) & _words("please call me tomorrow morning")) >= 3
    assert clip["words"] and all(0 <= w["start_s"] < w["end_s"] <= 4.05 for w in clip["words"])
    assert "missing_transcript" not in [f["code"] for f in clip["findings"]]

    # confirming (or editing) the transcript makes it the person's; transcribing again keeps it and aligns it
    saved = api.put(f"/api/v1/clips/{clip['id']}/caption",
                    json={"transcript": "please call me tomorrow morning", "transcript_source": "user"})
    assert saved.json()["caption"]["transcript_source"] == "user"
    assert api.post(f"/api/v1/datasets/{dataset['id']}/transcribe", json={}).status_code == 202
    assert run_pending_jobs() == ["succeeded"]
    clip = api.get(f"/api/v1/clips/{clip['id']}").json()
    assert clip["caption"]["transcript"] == "please call me tomorrow morning"
    assert [w["word"] for w in clip["words"]] == ["please", "call", "me", "tomorrow", "morning"]
    assert "transcript_mismatch" not in [f["code"] for f in clip["findings"]]

    # a typed transcript of other words is flagged (info), with the word error rate
    api.put(f"/api/v1/clips/{clip['id']}/caption", json={"transcript": "the weather is nice on the island"})
    api.post(f"/api/v1/clips/{clip['id']}/transcribe")
    assert run_pending_jobs() == ["succeeded"]
    findings = {f["code"]: f for f in api.get(f"/api/v1/clips/{clip['id']}").json()["findings"]}
    assert findings["transcript_mismatch"]["severity"] == "info"
    assert findings["transcript_mismatch"]["detail"]["wer"] >= 0.5


def test_a_long_clip_is_planned_and_split_into_clips_that_meet_the_rules(api, tmp_path):
    dataset = create_dataset(api, buckets="64x64x49")
    source = write_clip(tmp_path / "long.mov", ClipSpec(duration=20.0, fps=25, text=LINES, pause_s=0.8, voice="en-us",
                                                          container="mov", audio_codec="pcm_s16le"))
    clip = _clip(api, dataset["id"], source, "long.mov")
    assert "long_clip" in [f["code"] for f in clip["findings"]]
    assert api.get(f"/api/v1/clips/{clip['id']}/split-plan").status_code == 409  # none yet

    assert api.post(f"/api/v1/clips/{clip['id']}/split-plan").status_code == 202
    assert run_pending_jobs() == ["succeeded"]
    parts = api.get(f"/api/v1/clips/{clip['id']}/split-plan").json()["parts"]
    assert len(parts) >= 3
    for part in parts:
        length = part["end_s"] - part["start_s"]
        assert 49 / 25 - 1e-6 <= length <= LONGEST_PART_S
        assert part["frames"] % 8 == 1 and abs(part["frames"] / 25 - length) < 1e-3
        assert part["transcript"]
    assert all(a["end_s"] <= b["start_s"] + 1e-6 for a, b in zip(parts, parts[1:]))

    bad = api.post(f"/api/v1/clips/{clip['id']}/split", json={"parts": [{"start_s": 1.0, "end_s": 1.5}]})
    assert bad.status_code == 422 and "smallest bucket" in bad.json()["error"]["message"]

    answer = api.post(f"/api/v1/clips/{clip['id']}/split", json={"parts": parts})
    assert answer.status_code == 202
    statuses = run_pending_jobs()
    assert statuses[0] == "succeeded"
    assert run_pending_jobs() == ["succeeded"] * len(parts)  # the new clips' probes
    original = api.get(f"/api/v1/clips/{clip['id']}").json()
    assert original["status"] == "split" and len(original["split_into"]) == len(parts)
    for new_id, part in zip(original["split_into"], parts):
        new = api.get(f"/api/v1/clips/{new_id}").json()
        assert new["status"] == "ready", new["findings"]
        assert new["split_from_id"] == clip["id"]
        assert new["facts"]["frames"] == part["frames"]
        assert new["caption"]["transcript"] == part["transcript"]
    summary = api.get(f"/api/v1/datasets/{dataset['id']}").json()["summary"]
    assert summary["split"] == 1 and summary["trainable"] == len(parts)


def test_the_odd_voice_out_is_flagged_and_the_voices_are_counted(api, tmp_path):
    dataset = create_dataset(api, buckets="64x64x9")
    ids = {}
    for name, voice, text in (("a1.mp4", "en-us+m3", "please call me tomorrow morning"),
                              ("a2.mp4", "en-us+m3", "i would like a cup of coffee"),
                              ("a3.mp4", "en-us+m3", "we are going to the store"),
                              ("b1.mp4", "en-us+f4", "the children are playing in the park")):
        path = write_clip(tmp_path / name, ClipSpec(duration=3.0, voice=voice, text=text))
        ids[name] = _clip(api, dataset["id"], path, name)["id"]
    data = api.get(f"/api/v1/datasets/{dataset['id']}").json()
    findings = {c["name"]: {f["code"]: f for f in c["findings"]} for c in data["clips"]}
    assert "other_speaker" in findings["b1.mp4"]
    assert findings["b1.mp4"]["other_speaker"]["detail"]["similarity"] < 0.75
    assert not any("other_speaker" in findings[n] for n in ("a1.mp4", "a2.mp4", "a3.mp4"))
    assert data["voices"]["distinct"] == 2


def test_two_voices_in_one_clip_raise_several_speakers(api, tmp_path):
    from tests.media_factory import write_two_voice_clip

    dataset = create_dataset(api, buckets="64x64x9")
    path = write_two_voice_clip(tmp_path / "dialog.mp4", ("en-us+m3", "please call me tomorrow morning"),
                                ("en-us+f4", "the children are playing in the park"))
    clip = _clip(api, dataset["id"], path, "dialog.mp4")
    findings = {f["code"]: f for f in clip["findings"]}
    assert "several_speakers" in findings
    turns = findings["several_speakers"]["detail"]["turns"]
    assert {t["voice"] for t in turns} == {0, 1}


def test_speech_jobs_refuse_clips_without_sound_with_a_clear_message(api, tmp_path):
    dataset = create_dataset(api, buckets="64x64x9")
    clip = _clip(api, dataset["id"], write_clip(tmp_path / "mute.mp4", ClipSpec(audio="none")), "mute.mp4")
    answer = api.post(f"/api/v1/clips/{clip['id']}/transcribe")
    assert answer.status_code == 422 and "no audio track" in answer.json()["error"]["message"]
    assert api.post("/api/v1/clips/999999/split-plan").status_code == 404
