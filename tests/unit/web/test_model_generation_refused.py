"""Preset ltx-2.3 with a MODEL_DIR whose official checkpoint is really LTX-2.5 (under the 2.3 name):
preprocessing and training are refused before anything is queued, the API and the pages saying
what was found and which preset loads it (not a worker failing at load time)."""

from __future__ import annotations

import html
import json

import numpy as np
import yaml
from safetensors.numpy import save_file

from tests.unit.web.helpers import config_yaml_of, csrf_of, page_text
from tests.unit.web.test_model_versions import succeeded_preprocess
from tests.unit.web.training_support import ready_dataset

SAID = "ltx-2.3-22b-dev.safetensors is an LTX-2.5 checkpoint (preset 'ltx-2.5'), not LTX-2.3"


def _model_dir_with_an_ltx25_file(model_dir, monkeypatch):
    from core.config import get_settings

    gemma = model_dir / "gemma-3-12b-it"
    gemma.mkdir(parents=True)
    (gemma / "config.json").write_text(json.dumps({"model_type": "gemma3"}))
    (gemma / "tokenizer.json").write_text("{}")
    save_file({"model.diffusion_model.transformer_blocks.0.attn1.to_q.weight": np.zeros(1, dtype=np.float32)},
              str(model_dir / "ltx-2.3-22b-dev.safetensors"), metadata={"model_version": "2.5.0"})
    monkeypatch.setenv("AVLORA_MODEL_DIR", str(model_dir))
    get_settings.cache_clear()


def _shown(page) -> str:
    """The page's text as a reader sees it (entities such as the quotes around a preset decoded)."""
    return html.unescape(page_text(page.text))


def _queued_gpu_jobs(api) -> list[str]:
    return [job["kind"] for job in api.get("/api/v1/jobs?status=queued").json() if job["kind"] in ("preprocess", "train")]


def test_preprocess_and_training_with_a_checkpoint_of_another_generation_are_refused(
        api, browser_client, media, monkeypatch, tmp_path):
    dataset = ready_dataset(api, media)
    _model_dir_with_an_ltx25_file(tmp_path / "models", monkeypatch)

    refused = api.post(f"/api/v1/datasets/{dataset['id']}/preprocess", json={"model": "ltx-2.3"})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "model_files_missing" and SAID in error["message"]

    url = f"/datasets/{dataset['id']}"
    page = browser_client.post(f"{url}/preprocess", data={"csrf_token": csrf_of(browser_client, url),
                                                          "model": "ltx-2.3"})
    assert page.status_code == 422
    assert "Preprocessing refused:" in _shown(page) and SAID in _shown(page)

    # Training: a cache made for ltx-2.3 exists, the run is still refused at the weights.
    succeeded_preprocess(dataset["id"], "ltx-2.3")
    form_url = f"/datasets/{dataset['id']}/runs/new"
    config = yaml.safe_load(config_yaml_of(browser_client.get(form_url).text))
    config["model"] = "ltx-2.3"
    run = api.post("/api/v1/runs", json={"dataset_id": dataset["id"], "config": config})
    assert run.status_code == 422, run.text
    assert run.json()["error"]["code"] == "model_files_missing" and SAID in run.json()["error"]["message"]
    queued = browser_client.post(f"/datasets/{dataset['id']}/runs", data={
        "csrf_token": csrf_of(browser_client, form_url), "source": "yaml", "config_yaml": yaml.safe_dump(config)})
    assert queued.status_code == 422 and SAID in _shown(queued)
    assert 'class="error" role="alert"' in queued.text
    assert _queued_gpu_jobs(api) == [] and api.get("/api/v1/runs").json() == []


def test_the_same_directory_is_fine_for_the_preset_it_names(api, media, monkeypatch, tmp_path):
    """The refusal is about the file's generation: an LTX-2.3 file at that name passes the preflight."""
    dataset = ready_dataset(api, media)
    model_dir = tmp_path / "models"
    _model_dir_with_an_ltx25_file(model_dir, monkeypatch)
    save_file({"model.diffusion_model.prompt_adaln_single.linear.weight": np.zeros(1, dtype=np.float32)},
              str(model_dir / "ltx-2.3-22b-dev.safetensors"), metadata={"model_version": "2.3.0"})
    queued = api.post(f"/api/v1/datasets/{dataset['id']}/preprocess", json={"model": "ltx-2.3"})
    assert queued.status_code in (200, 201, 202), queued.text
    assert _queued_gpu_jobs(api) == ["preprocess"]
