"""Exports say what is in them, with the right names: the model card writes the prompts as trained
(no literal ``{trigger}``) and lists the zip's files; the dataset zip keeps a MOV a ``.mov`` (issue 19)."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
from safetensors.numpy import save_file

from tests.unit.web.compare_support import CLEAN_STEP, PROMPTS, TRIGGER, seed_run
from tests.unit.web.helpers import create_dataset, run_pending_jobs, upload


def test_the_model_card_shows_the_prompts_with_the_trigger_and_lists_the_files(api, migrated_env):
    from core.config import get_settings
    from core.db import session_scope

    data_dir = get_settings().data_dir
    with session_scope() as session:
        seeded = seed_run(session, data_dir, audio_off=False)
    lora = data_dir / f"runs/{seeded.run_id}/checkpoints/lora_weights_step_{CLEAN_STEP:05d}.safetensors"
    lora.parent.mkdir(parents=True, exist_ok=True)
    save_file({"diffusion_model.transformer_blocks.0.attn1.to_k.lora_A.weight": np.ones((4, 8), np.float32)},
              str(lora))

    response = api.get(f"/api/v1/runs/{seeded.run_id}/checkpoints/{CLEAN_STEP}/export?layout=comfy")
    assert response.status_code == 200, response.text
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    readme = next(archive.read(n).decode() for n in archive.namelist() if n.endswith("README.md"))
    card = json.loads(next(archive.read(n) for n in archive.namelist() if n.endswith("model_card.json")))
    assert "{trigger}" not in readme and "{trigger}" not in json.dumps(card)
    for prompt in PROMPTS:
        assert prompt.replace("{trigger}", TRIGGER) in readme
    assert card["validation_prompts"] == [p.replace("{trigger}", TRIGGER) for p in PROMPTS]
    lora_name = f"run{seeded.run_id}_step{CLEAN_STEP:05d}_comfy.safetensors"
    assert card["files"] == [lora_name, "README.md", "model_card.json"]
    assert sorted(n.rsplit("/", 1)[1] for n in archive.namelist()) == sorted(card["files"])
    assert f"- `{lora_name}`: the LoRA" in readme
    table = [line for line in readme.splitlines() if line.startswith("| ") and "| lora |" in line]
    assert table and not any("None" in line for line in table), table  # a metric not measured reads n/a


def test_a_mov_keeps_its_extension_in_the_dataset_zip(api, media):
    dataset = create_dataset(api, buckets="64x64x49")
    mov = media.clip(container="mov", audio_codec="pcm_s16le")  # QuickTime with PCM audio, as cameras write
    (camera,) = upload(api, dataset["id"], mov, names=["interview.MOV"]).json()
    (phone,) = upload(api, dataset["id"], media.talking_clip(), names=["take.mp4"]).json()
    assert run_pending_jobs() == ["succeeded", "succeeded"]

    response = api.get(f"/api/v1/datasets/{dataset['id']}/export")
    assert response.status_code == 200, response.text
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    media_names = sorted(n for n in archive.namelist() if n not in ("dataset.jsonl", "studio.json"))
    assert media_names == [f"{camera['id']:05d}_interview.mov", f"{phone['id']:05d}_take.mp4"]
    rows = [json.loads(line)["media_path"] for line in archive.read("dataset.jsonl").decode().splitlines()]
    assert sorted(rows) == media_names
