"""The studio on a full disk: DATA_DIR is a real small tmpfs, filled before the write.

An upload, an export and a clip's analysis each answer "the disk holding DATA_DIR is full: N MiB
free" (507 for the API, the job's error for a job), leave no partial file, leave the other clips
as they were, and the studio keeps serving.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from tests.disk_support import KIB, MIB, files_under, fill_disk, small_disk
from tests.unit.web.compare_support import CLEAN_STEP, seed_run
from tests.unit.web.helpers import create_dataset, run_pending_jobs, upload

MESSAGE = re.compile(r"^the disk holding DATA_DIR is full: \d+ MiB free$")
BOUNDARY = "----avlora-full-disk"


@pytest.fixture
def data_dir(tmp_path):
    """DATA_DIR (``studio_env``'s tmp_path/data) on a 64 MiB disk of its own, mounted before the
    database is copied in."""
    with small_disk(tmp_path / "data", 64) as root:
        yield root


@pytest.fixture
def api(data_dir, api):
    """The web tests' client, on the small disk (mounted first: the database lives on it)."""
    return api


@pytest.fixture
def studio(api, media):
    """A dataset holding one uploaded clip; returns (dataset id, the clip as the API shows it)."""
    dataset = create_dataset(api)
    (entry,) = upload(api, dataset["id"], media.talking_clip()).json()
    return dataset["id"], api.get(f"/api/v1/clips/{entry['id']}").json()


def _assert_disk_full(response) -> None:
    assert response.status_code == 507, response.text
    error = response.json()["error"]
    assert error["code"] == "disk_full" and MESSAGE.match(error["message"]), error


def _studio_files(data_dir: Path) -> dict[str, bytes]:
    """Every file of DATA_DIR but the database's (its pages are the API's to show)."""
    return {name: data for name, data in files_under(data_dir).items() if ".sqlite3" not in name}


def _assert_studio_unchanged(api, dataset_id: int, clip: dict, data_dir: Path, files_before: dict) -> None:
    """No partial file, the other clip's file and record as they were, and the studio still answering."""
    assert _studio_files(data_dir) == files_before
    assert api.get(f"/api/v1/datasets/{dataset_id}").json()["summary"]["clips"] == 1
    assert api.get(f"/api/v1/clips/{clip['id']}").json() == clip


def test_an_upload_the_disk_cannot_hold_answers_507_and_keeps_nothing(api, studio, data_dir, media, tmp_path):
    dataset_id, clip = studio
    fill_disk(data_dir, leave_bytes=300 * KIB)
    files_before = _studio_files(data_dir)
    big = tmp_path / "long.mp4"
    big.write_bytes(media.talking_clip().read_bytes() * 8)  # well over the 300 KiB left

    _assert_disk_full(upload(api, dataset_id, big))
    _assert_studio_unchanged(api, dataset_id, clip, data_dir, files_before)


def test_an_upload_that_fills_the_disk_as_it_streams_answers_507_and_keeps_nothing(api, studio, data_dir):
    """No Content-Length (chunked): the disk is found full by the write itself, mid-file."""
    dataset_id, clip = studio
    fill_disk(data_dir, leave_bytes=20 * MIB)  # room enough to start, not to finish
    files_before = _studio_files(data_dir)
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"long.mp4\"\r\n"
            "Content-Type: video/mp4\r\n\r\n").encode()

    def body():
        yield head
        for _ in range(24):  # 24 MiB of file
            yield np.random.default_rng(0).bytes(MIB)
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    response = api.post(f"/api/v1/datasets/{dataset_id}/clips", content=body(),
                        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    _assert_disk_full(response)
    _assert_studio_unchanged(api, dataset_id, clip, data_dir, files_before)


def test_an_export_on_a_full_disk_answers_507_and_leaves_no_zip(api, data_dir):
    from core.db import session_scope

    with session_scope() as session:
        seeded = seed_run(session, data_dir, audio_off=False)
    lora = data_dir / f"runs/{seeded.run_id}/checkpoints/lora_weights_step_{CLEAN_STEP:05d}.safetensors"
    lora.parent.mkdir(parents=True, exist_ok=True)
    save_file({"diffusion_model.transformer_blocks.0.attn1.to_k.lora_A.weight": np.ones((4, 2 * 65536), np.float32)},
              str(lora))  # 2 MiB
    fill_disk(data_dir, leave_bytes=300 * KIB)

    _assert_disk_full(api.get(f"/api/v1/runs/{seeded.run_id}/checkpoints/{CLEAN_STEP}/export?layout=comfy"))
    exports = data_dir / "exports"
    assert not exports.exists() or not any(exports.iterdir())  # no zip, no temporary
    assert api.get(f"/api/v1/runs/{seeded.run_id}").status_code == 200


def test_a_clip_analysed_on_a_full_disk_fails_its_job_naming_the_disk(api, data_dir, media):
    """The clip needs a browser proxy (MPEG-4 Part 2 video); 4 MiB left holds the database's
    writes, not a proxy: the job's error (GET /api/v1/jobs/{id}) names the disk."""
    dataset = create_dataset(api)
    (entry,) = upload(api, dataset["id"], media.clip(video_codec="mpeg4", duration=2.0)).json()
    fill_disk(data_dir, leave_bytes=4 * MIB)

    assert run_pending_jobs() == ["failed"]
    job = api.get(f"/api/v1/jobs/{entry['job_id']}").json()
    assert MESSAGE.match(job["error"]), job["error"]
    assert not [p for p in (data_dir / "media").rglob("*") if p.is_file() and p.name.endswith(".tmp")]
    assert api.get(f"/api/v1/clips/{entry['id']}").status_code == 200
