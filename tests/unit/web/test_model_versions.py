"""A cache preprocessed for one model never trains another: the dataset page, the run form and
the run page say which model the cache was made for, the form and the API refuse another model;
the run form offers LTX-2.5, and the compare page works for a run on toy-2.5."""

from __future__ import annotations

import re

import yaml

from tests.unit.web.compare_support import seed_run
from tests.unit.web.helpers import config_yaml_of as _yaml_of
from tests.unit.web.helpers import csrf_of as _csrf
from tests.unit.web.helpers import page_text as _text
from tests.unit.web.training_support import ready_dataset


def succeeded_preprocess(dataset_id: int, model: str) -> int:
    """A succeeded preprocess run of the dataset's current clips for ``model`` (rows only: what
    the pages read), as the preprocess job leaves it."""
    from core.db import session_scope
    from core.models import Dataset, Job, PreprocessRun
    from core.services import preprocess_runs as service

    with session_scope() as session:
        dataset = session.get(Dataset, dataset_id)
        snapshot = [{**item, "status": "ok"} for item in service.clip_snapshot(dataset)]
        job = Job(kind="preprocess", queue="gpu", status="succeeded", params={})
        session.add(job)
        session.flush()
        run = PreprocessRun(dataset_id=dataset_id, model=model, buckets=dataset.buckets, trigger=dataset.trigger,
                            fingerprint=service.current_fingerprint(dataset, model, dataset.buckets),
                            clip_results=snapshot, output_dir="", job_id=job.id)
        session.add(run)
        session.flush()
        run.output_dir = f"preprocess/{run.id}"
        job.params = {"preprocess_run_id": run.id}
        session.commit()
        return run.id


def test_the_cache_model_is_shown_and_another_model_is_refused(api, browser_client, media):
    from core.services.preprocess_runs import settings_fingerprint

    assert settings_fingerprint("ltx-2.3", "64x64x9", "t", []) != settings_fingerprint("ltx-2.5", "64x64x9", "t", [])
    dataset = ready_dataset(api, media)
    cache_id = succeeded_preprocess(dataset["id"], "toy")

    panel = browser_client.get(f"/datasets/{dataset['id']}/training").text
    cache_line = re.search(r'<p id="cache-model">(.*?)</p>', panel, re.S).group(1)
    assert "made for model toy" in _text(cache_line) and f"preprocess run #{cache_id}" in _text(cache_line)

    url = f"/datasets/{dataset['id']}/runs/new"
    form = browser_client.get(url).text
    assert re.search(r'<code id="form-cache-model">toy</code>', form)
    assert 'data-code="preprocess_other_model"' not in form
    for model in ("toy-2.5", "ltx-2.5"):  # the model choices include LTX-2.5
        assert f'<option value="{model}"' in form

    config = yaml.safe_load(_yaml_of(form))
    config["model"] = "toy-2.5"
    lint = browser_client.post(f"/datasets/{dataset['id']}/runs/lint", data={
        "csrf_token": _csrf(browser_client, url), "source": "yaml", "config_yaml": yaml.safe_dump(config)})
    issue = re.search(r'<li class="issue error" data-code="preprocess_other_model">(.*?)</li>', lint.text, re.S)
    assert issue is not None, _text(lint.text)
    words = _text(issue.group(1))
    assert f"preprocess run #{cache_id}) was made for model toy, but this run trains toy-2.5" in words
    assert "Preprocess with toy-2.5" in words
    assert re.search(r'<button[^>]*id="queue-button"[^>]*disabled', lint.text)
    assert 'id="form-cache-model"' not in lint.text

    refused = api.post("/api/v1/runs", json={"dataset_id": dataset["id"], "preprocess_run_id": cache_id,
                                             "config": config})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "preprocess_mismatch"
    assert "used model toy" in refused.json()["error"]["message"]
    assert api.post("/api/v1/runs", json={"dataset_id": dataset["id"], "config": config}).json()["error"]["code"] \
        == "preprocess_needed"


def test_the_run_page_names_its_model_and_cache(api, browser_client, migrated_env):
    from core.config import get_settings
    from core.db import session_scope

    with session_scope() as session:
        seeded = seed_run(session, get_settings().data_dir)
    page = browser_client.get(f"/runs/{seeded.run_id}").text
    line = _text(re.search(r'<span class="muted small" id="run-model">(.*?)</span>', page, re.S).group(1))
    assert line == f"model toy , cache of preprocess run #{seeded.preprocess_run_id}"


def test_compare_works_for_a_run_on_toy_25(api, browser_client, migrated_env):
    from core.config import get_settings
    from core.db import session_scope
    from core.models import TrainingRun

    with session_scope() as session:
        seeded = seed_run(session, get_settings().data_dir)
        run = session.get(TrainingRun, seeded.run_id)
        run.config = {**run.config, "model": "toy-2.5"}
        session.commit()
    grid = api.get(f"/api/v1/runs/{seeded.run_id}/compare")
    assert grid.status_code == 200, grid.text
    page = browser_client.get(f"/runs/{seeded.run_id}/compare")
    assert page.status_code == 200
    assert 'data-toy-model="toy-2.5"' in page.text  # the toy notice: noise by design
