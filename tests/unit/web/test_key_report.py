"""Key reports of a really trained toy checkpoint, LoRA files from other trainers, and the export zip."""

from __future__ import annotations

import io
import json
import re
import shutil
import zipfile

import pytest

from tests.unit.web.compare_support import BUZZ_STEP, CLEAN_STEP, TRIGGER, seed_run
from tests.unit.web.helpers import run_pending_jobs

AUDIO_FAMILIES = ("audio_attn1", "audio_attn2", "video_to_audio_attn")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import torch

    from tests.unit.engine._trained_lora import train_toy_checkpoint

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("trained")
    return train_toy_checkpoint(root, root / "models")


@pytest.fixture
def seeded(migrated_env, trained):
    """The seeded run, its step-2 checkpoint holding the trained files (step 4's were pruned)."""
    from core.config import get_settings
    from core.db import session_scope
    from core.models import Checkpoint

    data_dir = get_settings().data_dir
    with session_scope() as session:
        seeded = seed_run(session, data_dir, audio_off=False)
        checkpoint = session.query(Checkpoint).filter_by(run_id=seeded.run_id, step=BUZZ_STEP).one()
        for layout, relative in checkpoint.files.items():
            (data_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(trained[layout], data_dir / relative)
    return seeded


def test_checkpoint_key_report_loads_every_key_in_both_layouts(api, browser_client, seeded):
    url = f"/api/v1/runs/{seeded.run_id}/checkpoints/{BUZZ_STEP}/key-report"
    missing = api.get(url)
    assert missing.status_code == 404 and "POST to this URL" in missing.json()["error"]["message"]
    queued = api.post(url)
    assert queued.status_code == 202 and queued.json()["status"] == "pending"
    assert run_pending_jobs() == ["succeeded"]

    report = api.get(url).json()
    assert report["status"] == "done" and report["ok"]
    assert set(report["reports"]) == {"official", "diffusers"}
    for layout, file_report in report["reports"].items():
        assert file_report["detected_layout"] == layout
        assert file_report["dropped_keys"] == 0 and file_report["total_keys"] > 0
        for family in AUDIO_FAMILIES + ("attn1", "attn2", "audio_to_video_attn"):
            counts = file_report["families"][family]
            assert counts["keys"] > 0 and counts["loaded"] == counts["keys"], (layout, family)

    page = browser_client.get(f"/runs/{seeded.run_id}/checkpoints/{BUZZ_STEP}/key-report").text
    assert page.count("VERIFIED") == 2 and "every 2s" not in page
    attn1 = report["reports"]["official"]["families"]["attn1"]
    assert "built-in method" not in page  # the "In file" column shows the key count
    assert f'<th scope="row">attn1</th><td>{attn1["loaded"]}</td><td>{attn1["keys"]}</td>' in page
    compare = browser_client.get(f"/runs/{seeded.run_id}/compare").text
    assert 'status-done">done' in compare and 'status-missing">missing' in compare  # step 4 never checked


def test_lora_check_page_offers_the_upload_form(browser_client, migrated_env):
    page = browser_client.get("/lora/check").text
    assert 'data-api-form="/api/v1/lora/verify"' in page and 'name="file"' in page
    assert all(f'<option value="{preset}">' in page for preset in ("toy", "ltx-2.3", "ltx-2"))


def _upload(api, content: bytes, name: str = "other.safetensors", preset: str = "toy"):
    return api.post("/api/v1/lora/verify", files={"file": (name, content, "application/octet-stream")},
                    data={"preset": preset})


def test_a_file_from_another_trainer_shows_its_dropped_keys(api, browser_client, seeded, trained):
    import torch
    from safetensors.torch import load_file, save

    from core.config import get_settings

    state = load_file(str(trained["official"]))
    foreign = {}
    for key, value in state.items():  # another trainer's audio keys under a prefix no LTX-2 loader knows
        foreign["model." + key if ".audio_attn1." in key else key] = value
    dropped = sum(1 for key in foreign if key.startswith("model.diffusion_model."))
    assert dropped > 0

    accepted = _upload(api, save(foreign))
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert run_pending_jobs() == ["succeeded"]
    report = api.get(body["url"]).json()
    assert report["status"] == "done" and not report["ok"]
    assert report["dropped_keys"] == dropped and report["families"]["audio_attn1"]["loaded"] == 0
    assert report["families"]["attn1"]["loaded"] == report["families"]["attn1"]["keys"] > 0
    assert all("dropped" in reason for reason in report["reasons"].values())
    page = browser_client.get(body["page"]).text
    assert "FAILED" in page and f"{dropped} dropped" in page and "model.diffusion_model." in page

    # refusals: not safetensors, no LoRA tensors, unknown preset; nothing is left on disk
    folder = get_settings().data_dir / "lora_checks"
    before = sorted(folder.iterdir())
    junk = _upload(api, b"definitely not a safetensors file", name="model.ckpt")
    assert junk.status_code == 422 and "not a .safetensors LoRA file" in junk.json()["error"]["message"]
    full_model = _upload(api, save({"transformer_blocks.0.attn1.to_k.weight": torch.zeros(2, 2)}))
    assert full_model.status_code == 422 and full_model.json()["error"]["code"] == "not_a_lora"
    assert _upload(api, save(foreign), preset="sdxl").status_code == 422
    assert sorted(folder.iterdir()) == before


def test_export_zips_with_model_card(api, seeded):
    base = f"/api/v1/runs/{seeded.run_id}/checkpoints/{BUZZ_STEP}/export"
    comfy = api.get(f"{base}?layout=comfy")
    assert comfy.status_code == 200 and comfy.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(comfy.content)) as archive:
        names = archive.namelist()
        stem = f"run{seeded.run_id}_step{BUZZ_STEP:05d}_comfy"
        assert sorted(names) == sorted([f"{stem}/{stem}.safetensors", f"{stem}/README.md", f"{stem}/model_card.json"])
        card = json.loads(archive.read(f"{stem}/model_card.json"))
        readme = archive.read(f"{stem}/README.md").decode()
        lora = archive.read(f"{stem}/{stem}.safetensors")
    assert card["trigger"] == TRIGGER and card["step"] == BUZZ_STEP and card["steps"] == 4
    assert card["dataset"]["name"] == "Ema" and len(card["validation_prompts"]) == 2
    assert [m["prompt_index"] for m in card["metrics"]] == [0, 1]
    assert f"`{TRIGGER}`" in readme and "## Validation prompts" in readme
    assert lora[8:].startswith(b"{") and b"diffusion_model." in lora[:4096]

    diffusers = api.get(f"{base}?layout=diffusers&modules=audio-only")
    with zipfile.ZipFile(io.BytesIO(diffusers.content)) as archive:
        weights = [n for n in archive.namelist() if n.endswith(".safetensors")]
        assert weights == [f"run{seeded.run_id}_step{BUZZ_STEP:05d}_diffusers_audio-only/pytorch_lora_weights.safetensors"]
        header = archive.read(weights[0])
    keys = re.findall(rb'"(transformer\.[^"]+)":\{', header)
    assert keys and all(any(f".{f}.".encode() in k for f in AUDIO_FAMILIES) for k in keys)

    pruned = api.get(f"/api/v1/runs/{seeded.run_id}/checkpoints/{CLEAN_STEP}/export")
    assert pruned.status_code == 409 and "removed" in pruned.json()["error"]["message"]
    assert api.get(f"{base}?layout=onnx").status_code == 422
