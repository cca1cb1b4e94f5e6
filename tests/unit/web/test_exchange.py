"""Export in the ltx-trainer layout and import back (zip, or a metadata file with its media)."""

from __future__ import annotations

import io
import json
import zipfile

from core.recipe.metadata import parse_metadata
from tests.unit.web.helpers import create_dataset, run_pending_jobs, stored_files, upload


def _dataset_with_captions(api, media) -> tuple[int, list[int]]:
    dataset = create_dataset(api, buckets="64x64x49")
    ids = [upload(api, dataset["id"], media.talking_clip(), names=["take one.mp4"]).json()[0]["id"],
           upload(api, dataset["id"], media.talking_clip(text="See you tomorrow then."),
                  names=["take two.mp4"]).json()[0]["id"]]
    run_pending_jobs()
    api.put(f"/api/v1/clips/{ids[0]}/caption", json={"visual": "a woman smiles", "transcript": "Start again.",
                                                      "voice": "calm voice", "sounds": "room tone"})
    api.put(f"/api/v1/clips/{ids[1]}/caption", json={"visual": "a woman waves", "transcript": "See you tomorrow then."})
    return dataset["id"], ids


def test_export_is_the_ltx_trainer_layout(api, media):
    dataset_id, ids = _dataset_with_captions(api, media)
    response = api.get(f"/api/v1/datasets/{dataset_id}/export")
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    entries = parse_metadata(archive.read("dataset.jsonl").decode(), ".jsonl")
    assert len(entries) == 2
    rows = [json.loads(line) for line in archive.read("dataset.jsonl").decode().splitlines()]
    assert set(rows[0]) == {"caption", "media_path"}
    for entry in entries:
        assert entry.caption.startswith("ema_voice, ")
        assert "/" not in entry.video and entry.video in archive.namelist()  # media beside the metadata
    assert entries[0].caption == ('ema_voice, a woman smiles, calm voice. Speech: "Start again." Sounds: room tone.')


def test_export_then_import_round_trip(api, media, migrated_env):
    dataset_id, ids = _dataset_with_captions(api, media)
    exported = api.get(f"/api/v1/datasets/{dataset_id}/export").content
    response = api.post("/api/v1/datasets/import", files={"file": ("ema.zip", exported, "application/zip")})
    assert response.status_code == 201, response.text
    result = response.json()
    new = result["dataset"]
    assert new["id"] != dataset_id and new["trigger"] == "ema_voice" and new["buckets"] == "64x64x49"
    assert [c["status"] for c in result["clips"]] == ["uploaded", "uploaded"]
    run_pending_jobs()
    original = {c["caption"]["composed"] for c in api.get(f"/api/v1/datasets/{dataset_id}").json()["clips"]}
    imported = api.get(f"/api/v1/datasets/{new['id']}").json()
    assert {c["caption"]["composed"] for c in imported["clips"]} == original
    assert imported["clips"][0]["caption"]["transcript"] == "Start again."
    assert imported["summary"]["trainable"] == 2
    before = sorted(c["name"] for c in api.get(f"/api/v1/datasets/{dataset_id}").json()["clips"])
    assert sorted(c["name"] for c in imported["clips"]) == before  # names survive the round trip
    names = {p.name for p in stored_files(__import__("pathlib").Path(migrated_env["AVLORA_DATA_DIR"]))}
    assert not any(n.endswith(".part") or n.startswith(".export-") for n in names)


def test_import_of_a_plain_metadata_file_with_its_media(api, media):
    csv_text = 'caption,media_path\n"solo_voice, a man talks. Speech: ""Hi.""",clips/a.mp4\n' \
               'solo_voice,clips/missing.mp4\n'
    files = [("file", ("dataset.csv", csv_text.encode(), "text/csv")),
             ("files", ("a.mp4", media.talking_clip().read_bytes(), "video/mp4"))]
    response = api.post("/api/v1/datasets/import", files=files, data={"name": "Solo"})
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["dataset"]["trigger"] == "solo_voice" and result["dataset"]["name"] == "Solo"
    ok, missing = result["clips"]
    assert ok["caption"]["composed"] == 'solo_voice, a man talks. Speech: "Hi."'
    assert missing["error"]["code"] == "media_missing" and "missing.mp4" in missing["error"]["message"]


def test_import_refuses_what_it_cannot_use(api, media, migrated_env):
    not_zip = api.post("/api/v1/datasets/import", files={"file": ("x.txt", b"hello", "text/plain")})
    assert not_zip.status_code == 422 and not_zip.json()["error"]["code"] == "not_a_dataset"

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("dataset.jsonl", json.dumps({"caption": "a talking man", "media_path": "../../evil.mp4"}))
        archive.writestr("evil.mp4", media.talking_clip().read_bytes())
    no_trigger = api.post("/api/v1/datasets/import", files={"file": ("d.zip", buffer.getvalue(), "application/zip")})
    assert no_trigger.status_code == 422 and no_trigger.json()["error"]["code"] == "trigger_needed"

    slip = api.post("/api/v1/datasets/import", files={"file": ("d.zip", buffer.getvalue(), "application/zip")},
                    data={"trigger": "man"})
    assert slip.status_code == 201
    (entry,) = slip.json()["clips"]
    # a path leaving the dataset folder is never followed (nor matched to a member of the same name)
    assert entry["error"]["code"] == "media_missing"
    data_dir = __import__("pathlib").Path(migrated_env["AVLORA_DATA_DIR"])
    assert not (data_dir.parent / "evil.mp4").exists()
