"""Bad input as a new user would try it: each gets a clear finding or error, nothing else in the
dataset changes, and no partial file stays behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support import reset_app_caches
from tests.unit.web.helpers import create_dataset, run_pending_jobs, stored_files, upload


@pytest.fixture
def dataset_with_good_clip(api, media, migrated_env):
    """A dataset holding one analysed, captioned clip; returns (dataset id, clip before, data dir)."""
    dataset = create_dataset(api)
    clip_id = upload(api, dataset["id"], media.talking_clip()).json()[0]["id"]
    run_pending_jobs()
    api.put(f"/api/v1/clips/{clip_id}/caption", json={"transcript": "I think we should start again."})
    return dataset["id"], api.get(f"/api/v1/clips/{clip_id}").json(), Path(migrated_env["AVLORA_DATA_DIR"])


def assert_good_clip_unchanged(api, before: dict) -> None:
    after = api.get(f"/api/v1/clips/{before['id']}").json()
    assert {k: after[k] for k in ("status", "findings", "caption", "probe")} == \
           {k: before[k] for k in ("status", "findings", "caption", "probe")}


REFUSED = {
    "text file named .mp4": (lambda m: m.text_file("notes.mp4"), "not_media", "not a video"),
    "zero-byte file": (lambda m: m.empty_file("empty.mp4"), "not_media", "empty"),
    "svg named .mp4": (lambda m: _svg(m.root), "not_media", "not a video"),
}


def _svg(root: Path) -> Path:
    path = root / "evil.mp4"
    path.write_text("<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>")
    return path


@pytest.mark.parametrize("case", list(REFUSED))
def test_non_media_is_refused_and_nothing_is_kept(case, api, media, dataset_with_good_clip):
    dataset_id, before, data_dir = dataset_with_good_clip
    make, code, words = REFUSED[case]
    files_before = stored_files(data_dir)
    response = upload(api, dataset_id, make(media))
    assert response.status_code == 415
    error = response.json()["error"]
    assert error["code"] == code and words in error["message"]
    assert stored_files(data_dir) == files_before
    assert api.get(f"/api/v1/datasets/{dataset_id}").json()["summary"]["clips"] == 1
    assert_good_clip_unchanged(api, before)


REJECTED = {
    # name -> (media factory call, finding code that blocks it)
    "video without audio": (lambda m: m.clip(audio="none"), "no_audio_track"),
    "audio-only file": (lambda m: m.audio_only(), "no_video_stream"),
    "1-frame video": (lambda m: m.one_frame_video(), "too_short_for_buckets"),
    "silent audio": (lambda m: m.clip(audio="silent"), "silent_audio"),
}


@pytest.mark.parametrize("case", list(REJECTED))
def test_media_breaking_a_rule_becomes_a_rejected_clip(case, api, media, dataset_with_good_clip):
    dataset_id, before, _data_dir = dataset_with_good_clip
    make, code = REJECTED[case]
    entry = upload(api, dataset_id, make(media)).json()[0]
    run_pending_jobs()
    clip = api.get(f"/api/v1/clips/{entry['id']}").json()
    assert clip["status"] == "rejected"
    finding = next(f for f in clip["findings"] if f["code"] == code)
    assert finding["severity"] == "error" and finding["message"]
    summary = api.get(f"/api/v1/datasets/{dataset_id}").json()["summary"]
    assert (summary["clips"], summary["trainable"], summary["blocked"]) == (2, 1, 1)
    assert_good_clip_unchanged(api, before)


def test_truncated_mp4_gets_a_clear_answer(api, media, dataset_with_good_clip):
    dataset_id, before, data_dir = dataset_with_good_clip
    response = upload(api, dataset_id, media.truncated(keep=0.5), names=["cut.mp4"])
    if response.status_code == 201:  # the header survived: the worker finds the damage
        run_pending_jobs()
        clip = api.get(f"/api/v1/clips/{response.json()[0]['id']}").json()
        assert clip["status"] == "rejected"
        finding = next(f for f in clip["findings"] if f["code"] == "corrupt_media")
        assert "'cut.mp4'" in finding["message"]  # named as uploaded, not by its stored name
    else:
        assert response.status_code == 415
        assert response.json()["error"]["code"] == "corrupt_media"
    assert_good_clip_unchanged(api, before)


def test_path_in_the_name_is_never_used_as_a_path(api, media, dataset_with_good_clip):
    dataset_id, _before, data_dir = dataset_with_good_clip
    entry = upload(api, dataset_id, media.talking_clip(), names=["../../x.mp4"]).json()[0]
    assert entry["name"] == "x.mp4"
    assert not (data_dir / "x.mp4").exists() and not (data_dir.parent / "x.mp4").exists()
    stored = [p for p in stored_files(data_dir) if p.suffix == ".mp4"]
    assert all(p.parent == data_dir / "clips" / str(dataset_id) for p in stored)
    assert all(p.stem != "x" for p in stored)


@pytest.mark.parametrize("case,make,code,fact", [
    ("44.1 kHz mono", lambda m: m.clip(channels="mono", sample_rate=44100), "mono_audio", ("sample_rate", 44100)),
    ("5.1 audio", lambda m: m.clip(channels="5.1"), "surround_audio", ("channels", 6)),
    ("vertical 720x1280 WebM", lambda m: m.vertical_webm(), "too_short_for_buckets", ("height", 1280)),
    ("10-minute clip", lambda m: m.clip(duration=600.0, fps=1, size=(32, 32), audio="none"), "long_clip",
     ("frames", 600)),
])
def test_unusual_media_is_described(case, make, code, fact, api, media, dataset_with_good_clip):
    dataset_id, before, _data_dir = dataset_with_good_clip
    entry = upload(api, dataset_id, make(media)).json()[0]
    run_pending_jobs()
    clip = api.get(f"/api/v1/clips/{entry['id']}").json()
    assert code in {f["code"] for f in clip["findings"]}, clip["findings"]
    assert clip["facts"][fact[0]] == fact[1]
    assert_good_clip_unchanged(api, before)


def test_over_limit_upload_is_stopped_and_leaves_no_file(api, media, dataset_with_good_clip, monkeypatch, tmp_path):
    dataset_id, before, data_dir = dataset_with_good_clip
    monkeypatch.setenv("AVLORA_MAX_UPLOAD_MB", "1")
    from core.config import get_settings

    get_settings.cache_clear()
    big = tmp_path / "big.mp4"
    big.write_bytes(media.talking_clip().read_bytes() * 20)  # well over 1 MiB
    assert big.stat().st_size > 1024 * 1024
    files_before = stored_files(data_dir)
    response = upload(api, dataset_id, media.talking_clip(), big)  # a good file first, then the big one
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "upload_too_large"
    assert "1 MiB" in response.json()["error"]["message"]
    assert stored_files(data_dir) == files_before
    assert api.get(f"/api/v1/datasets/{dataset_id}").json()["summary"]["clips"] == 1
    assert_good_clip_unchanged(api, before)


def test_client_disconnect_mid_upload_leaves_no_file(api, media, dataset_with_good_clip):
    """Drive the ASGI app directly: half the body arrives, then the client goes away."""
    dataset_id, before, data_dir = dataset_with_good_clip
    from app.main import create_app
    from app.security import api_token

    boundary = "----avlora-test"
    payload = media.talking_clip().read_bytes()
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.mp4\"\r\n"
            "Content-Type: video/mp4\r\n\r\n").encode()
    body = head + payload + f"\r\n--{boundary}--\r\n".encode()
    half = body[: len(head) + len(payload) // 2]
    files_before = stored_files(data_dir)
    seen_partial: list[Path] = []

    async def run() -> list[dict]:
        app = create_app()
        sent: list[dict] = []
        steps = [{"type": "http.request", "body": half[:4096], "more_body": True},
                 {"type": "http.request", "body": half[4096:], "more_body": True}]

        async def receive():
            if steps:
                return steps.pop(0)
            seen_partial.extend(p for p in stored_files(data_dir) if p.name.endswith(".part"))
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": f"/api/v1/datasets/{dataset_id}/clips", "raw_path": b"",
                 "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
                 "headers": [(b"host", b"testserver"),
                             (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
                             (b"content-length", str(len(body)).encode()),
                             (b"authorization", f"Bearer {api_token()}".encode())]}
        try:
            await app(scope, receive, send)
        except Exception:  # noqa: BLE001 - the disconnect may surface as any exception; the files are what matters
            pass
        return sent

    asyncio.run(run())
    assert seen_partial, "the upload should have been streaming into a partial file"
    assert stored_files(data_dir) == files_before
    assert api.get(f"/api/v1/datasets/{dataset_id}").json()["summary"]["clips"] == 1
    assert_good_clip_unchanged(api, before)
    reset_app_caches()


def test_over_limit_upload_stops_reading_the_body(api, dataset_with_good_clip, monkeypatch):
    """The server answers 413 as soon as the file passes the limit, without reading the rest."""
    dataset_id, _before, data_dir = dataset_with_good_clip
    monkeypatch.setenv("AVLORA_MAX_UPLOAD_MB", "1")
    from app.main import create_app
    from app.security import api_token
    from core.config import get_settings

    get_settings.cache_clear()
    boundary = "----avlora-limit"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.mp4\"\r\n"
            "Content-Type: video/mp4\r\n\r\n").encode()
    chunk = b"\0" * (256 * 1024)
    total_chunks = 40  # 10 MiB offered
    received_chunks = 0

    async def run() -> list[dict]:
        app = create_app()
        sent: list[dict] = []

        async def receive():
            nonlocal received_chunks
            received_chunks += 1
            body = head + chunk if received_chunks == 1 else chunk
            return {"type": "http.request", "body": body, "more_body": received_chunks < total_chunks}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": f"/api/v1/datasets/{dataset_id}/clips", "raw_path": b"",
                 "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
                 "headers": [(b"host", b"testserver"),
                             (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
                             (b"authorization", f"Bearer {api_token()}".encode())]}
        await app(scope, receive, send)
        return sent

    sent = asyncio.run(run())
    assert sent[0]["status"] == 413
    assert received_chunks <= 6  # 1 MiB = 4 chunks (+ the one that crossed it), not all 40
    assert not any(p.name.endswith(".part") for p in stored_files(data_dir))
    reset_app_caches()


def test_one_request_with_good_and_bad_files_answers_per_file(api, media, dataset_with_good_clip):
    dataset_id, _before, data_dir = dataset_with_good_clip
    response = upload(api, dataset_id, media.clip(audio="tone"), media.text_file("notes.mp4"))
    assert response.status_code == 201
    good, bad = response.json()
    assert good["status"] == "uploaded" and good["id"]
    assert bad == {"name": "notes.mp4", "status": 415, "error": {"code": "not_media", "message": bad["error"]["message"]}}
    assert "'notes.mp4'" in bad["error"]["message"]
    assert not any(p.name.endswith(".part") for p in stored_files(data_dir))
    assert api.get(f"/api/v1/datasets/{dataset_id}").json()["summary"]["clips"] == 2
