"""Numbers and text the database cannot store get a 4xx JSON error (or the error page) from every
route, and nothing is written. Run here on SQLite; tests/integration/test_input_guard_postgres.py
runs the same tests on Postgres (32-bit INTEGER ids, no NUL in text)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.routing import iter_route_contexts

from tests.unit.web.helpers import create_dataset, stored_files, upload

TOO_LARGE_IDS = {"2**31": 2**31, "2**63": 2**63}
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def _id_routes(app) -> list[tuple[str, str]]:
    """(method, path) of every route registered on ``app`` with an ``{..._id}`` path parameter."""
    found = []
    for route in iter_route_contexts(app.routes):  # app.routes, the included routers opened up
        if re.search(r"\{\w+_id\}", route.path_format):
            found += [(method, route.path_format) for method in sorted(set(route.methods or ()) - {"HEAD"})]
    return found


def _fill(path_format: str, bad_id: int) -> str:
    """The path with every ``..._id`` set to ``bad_id`` and any other parameter (a step, a kind) to 1."""
    return re.sub(r"\{(\w+)\}", lambda m: str(bad_id) if m.group(1).endswith("_id") else "1", path_format)


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


@pytest.mark.parametrize("bad_id", list(TOO_LARGE_IDS.values()), ids=list(TOO_LARGE_IDS))
def test_every_route_answers_an_id_past_the_database_range_with_a_json_404(bad_id, api):
    routes = _id_routes(api.app)
    assert len(routes) > 60  # the walk really covers the API and the pages
    for method, path_format in routes:
        response = api.request(method, _fill(path_format, bad_id))
        error = _error(response, 404, "not_found")
        assert str(bad_id) in error["message"]


def test_a_page_with_an_id_past_the_range_shows_the_error_page(api):
    page = api.get(f"/datasets/{2**63}", headers=HTML)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "not an id the studio gives out" in page.text and "Traceback" not in page.text


def test_ids_past_the_range_in_a_query_or_a_body_are_refused_by_name(api):
    dataset = create_dataset(api)
    error = _error(api.get("/api/v1/runs", params={"dataset_id": 2**31}), 422, "number_out_of_range")
    assert error["detail"]["field"] == "dataset_id"
    bulk = api.post(f"/api/v1/datasets/{dataset['id']}/captions/bulk", json={"clip_ids": [1, 2**63], "voice": "calm"})
    assert _error(bulk, 422, "number_out_of_range")["detail"]["field"] == "clip_ids.1"
    assert api.get(f"/api/v1/datasets/{dataset['id']}").json()["default_voice"] == ""


def test_a_number_that_reaches_the_database_out_of_range_is_a_json_422(api, media):
    """The last resort: a plain number (not an id, so no guard knows its column) the database refuses."""
    dataset = create_dataset(api)
    job_id = upload(api, dataset["id"], media.talking_clip()).json()[0]["job_id"]
    error = _error(api.get(f"/api/v1/jobs/{job_id}/log", params={"after": 2**63}), 422, "unstorable_value")
    assert "cannot be stored" in error["message"]
    assert api.get(f"/api/v1/jobs/{job_id}/log", params={"after": 0}).status_code == 200


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x07"], ids=["NUL", "ESC", "BEL"])
def test_a_dataset_name_with_a_control_character_is_refused_and_nothing_is_written(char, api):
    response = api.post("/api/v1/datasets", json={"name": f"Ema{char}talking", "trigger": "ema_voice"})
    error = _error(response, 422, "invalid_text")
    assert error["detail"]["field"] == "name" and "'name'" in error["message"]
    form = api.post("/datasets", data={"name": f"Ema{char}", "trigger": "ema_voice", "buckets": ""})
    assert _error(form, 422, "invalid_text")["detail"]["field"] == "name"
    assert api.get("/api/v1/datasets").json() == []


def test_the_dataset_form_of_a_browser_gets_the_error_page(api):
    page = api.post("/datasets", data={"name": "Ema\x00", "trigger": "ema_voice"}, headers=HTML)
    assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")
    assert "control character" in page.text
    assert api.get("/api/v1/datasets").json() == []


def test_a_caption_with_a_control_character_is_refused_but_lines_and_tabs_are_kept(api, media):
    dataset = create_dataset(api)
    clip_id = upload(api, dataset["id"], media.talking_clip()).json()[0]["id"]
    error = _error(api.put(f"/api/v1/clips/{clip_id}/caption", json={"visual": "a woman\x00 talks"}),
                   422, "invalid_text")
    assert error["detail"]["field"] == "visual"
    form = api.post(f"/clips/{clip_id}/caption", data={"visual": "a woman talks", "transcript": "Hi\x0b there"})
    assert _error(form, 422, "invalid_text")["detail"]["field"] == "transcript"
    assert api.get(f"/api/v1/clips/{clip_id}").json()["caption"]["visual"] == ""
    saved = api.put(f"/api/v1/clips/{clip_id}/caption", json={"visual": "line one\nline two\tand\r\nthree"})
    assert saved.status_code == 200 and saved.json()["caption"]["visual"] == "line one\nline two\tand\r\nthree"


def test_a_query_parameter_with_a_control_character_is_refused_by_name(api):
    error = _error(api.get("/api/v1/presets", params={"buckets": "512x512x49\x00"}), 422, "invalid_text")
    assert error["detail"]["field"] == "buckets"
    page = api.get("/datasets", params={"notice": "saved\x1b[2J"}, headers=HTML)
    assert page.status_code == 422 and "control character" in page.text


def _multipart(boundary: bytes, *parts: tuple[bytes, bytes]) -> list[bytes]:
    """A multipart body of ``files`` parts ``(file name, content)``, one chunk per part (a stream)."""
    chunks = [b"--" + boundary + b'\r\nContent-Disposition: form-data; name="files"; filename="' + name
              + b'"\r\nContent-Type: video/mp4\r\n\r\n' + content + b"\r\n" for name, content in parts]
    return [*chunks, b"--" + boundary + b"--\r\n"]


def test_an_uploaded_file_name_with_a_control_character_stops_the_upload_and_keeps_nothing(api, media,
                                                                                        migrated_env):
    dataset = create_dataset(api)
    good = media.talking_clip().read_bytes()
    body = _multipart(b"studio-boundary", (b"talk.mp4", good), (b"evil\x00.mp4", good))
    response = api.post(f"/api/v1/datasets/{dataset['id']}/clips", content=iter(body),
                        headers={"Content-Type": "multipart/form-data; boundary=studio-boundary"})
    error = _error(response, 422, "invalid_text")
    assert error["detail"]["field"] == "files" and "file name" in error["message"]
    assert stored_files(Path(migrated_env["AVLORA_DATA_DIR"])) == []  # the first file's partial copy is gone
    assert api.get(f"/api/v1/datasets/{dataset['id']}").json()["summary"]["clips"] == 0


def test_an_imported_caption_with_a_control_character_makes_no_dataset_and_keeps_no_file(api, media, migrated_env):
    """Text that comes in a file, not a field: refused before the dataset and its media are made."""
    csv_text = 'caption,media_path\n"solo_voice, a man\x00 talks.",clips/a.mp4\n'
    files = [("file", ("dataset.csv", csv_text.encode(), "text/csv")),
             ("files", ("a.mp4", media.talking_clip().read_bytes(), "video/mp4"))]
    error = _error(api.post("/api/v1/datasets/import", files=files), 422, "invalid_text")
    assert "Row 1 of 'dataset.csv'" in error["message"] and "NUL" in error["message"]
    assert api.get("/api/v1/datasets").json() == []
    assert stored_files(Path(migrated_env["AVLORA_DATA_DIR"])) == []
