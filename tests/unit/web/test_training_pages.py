"""The training pages as a browser gets them (SQLite, jobs run in this process with the toy model):
preprocess from the dataset page and listen, the run form and its live linter, the run page,
the jobs page, and the actions cancel, resume and clone."""

from __future__ import annotations

import re

import yaml

from app.templating import TEMPLATES_DIR
from tests.unit.web.compare_support import seed_run_with_job
from tests.unit.web.helpers import config_yaml_of as _yaml_of
from tests.unit.web.helpers import create_dataset, run_pending_jobs
from tests.unit.web.helpers import csrf_of as _csrf
from tests.unit.web.helpers import page_text as _text
from tests.unit.web.training_support import TRIGGER, ready_dataset

OUR_TEMPLATES = ("preprocess.html", "run_new.html", "run.html", "jobs.html", "partials/lint.html",
                 "partials/run_fields.html", "partials/preprocess_body.html", "partials/jobs_table.html",
                 "partials/dataset_training.html")


def _queue_button(html: str) -> str:
    return re.search(r'<button[^>]*id="queue-button"[^>]*>', html).group(0)


def _small_run_yaml(form_html: str, steps: int = 4, interval: int = 2) -> str:
    """The form's YAML shrunk for the toy model: rank 4, a few steps, tiny samples of two variants."""
    data = yaml.safe_load(_yaml_of(form_html))
    data["lora"].update(rank=4, alpha=4)
    data["optimization"].update(steps=steps, gradient_checkpointing=False)
    data["checkpoints"]["interval"] = interval
    data["validation"].update(video_dims=[64, 64, 9], inference_steps=2, variants=["lora", "base"],
                              prompts=["{trigger}, a woman speaks calmly: hello there"])
    return yaml.safe_dump(data, sort_keys=False)


def test_lint_partial_blocks_queue_on_bad_targets_and_trigger(api, browser_client):
    dataset = create_dataset(api, trigger=TRIGGER, buckets="64x64x9")
    url = f"/datasets/{dataset['id']}/runs/new"
    page = browser_client.get(url)
    assert page.status_code == 200
    token = _csrf(browser_client, url)
    # the dataset was never preprocessed: training is not offered, the Queue button is disabled
    assert 'data-code="preprocess_needed"' in page.text and "disabled" in _queue_button(page.text)
    config = yaml.safe_load(_yaml_of(page.text))
    assert config["model"] == "toy" and config["data"]["trigger"] == TRIGGER and config["preset"] == "sanity"

    config["lora"]["target_modules"] = ["to_k", "attn9.to_q"]
    lint = browser_client.post(f"/datasets/{dataset['id']}/runs/lint", data={
        "csrf_token": token, "source": "yaml", "config_yaml": yaml.safe_dump(config)})
    assert lint.status_code == 200
    assert 'id="lint-result"' in lint.text and "disabled" in _queue_button(lint.text)
    assert re.search(r'data-code="targets_\w+"', lint.text) and "attn9.to_q" in lint.text
    assert 'id="run-fields" class="run-fields" hx-swap-oob="true"' in lint.text  # the fields follow the YAML

    fields = {"model": "toy", "trigger": "ema voice", "buckets": "64x64x9", "steps": "6", "learning_rate": "1e-4",
              "rank": "8", "checkpoint_interval": "3", "sample_size": "64x64x9", "sample_steps": "2",
              "prompts": "{trigger}, a woman speaks calmly"}
    lint = browser_client.post(f"/datasets/{dataset['id']}/runs/lint", data={
        "csrf_token": token, "source": "fields", "config_yaml": _yaml_of(page.text), **fields})
    errors = _text(lint.text)
    assert 'data-code="invalid_setting"' in lint.text and "data.trigger" in errors
    assert "disabled" in _queue_button(lint.text)
    assert 'hx-swap-oob="true"' not in lint.text  # an invalid config does not overwrite the YAML

    lint = browser_client.post(f"/datasets/{dataset['id']}/runs/lint", data={
        "csrf_token": token, "source": "fields", "config_yaml": _yaml_of(page.text), **fields, "trigger": TRIGGER})
    assert 'data-code="invalid_setting"' not in lint.text
    synced = yaml.safe_load(_yaml_of(lint.text))  # the YAML editor is redrawn from the fields
    assert synced["optimization"]["steps"] == 6 and synced["lora"]["rank"] == synced["lora"]["alpha"] == 8
    assert synced["validation"]["video_dims"] == [64, 64, 9]

    broken = browser_client.post(f"/datasets/{dataset['id']}/runs/lint", data={
        "csrf_token": token, "source": "yaml", "config_yaml": "lora: [unclosed"})
    assert 'data-code="invalid_yaml"' in broken.text and "line 1" in broken.text
    # queuing what the linter refuses shows the form again with the errors, and queues nothing
    refused = browser_client.post(f"/datasets/{dataset['id']}/runs", data={
        "csrf_token": token, "source": "yaml", "config_yaml": yaml.safe_dump(config)})
    assert refused.status_code == 422 and "attn9.to_q" in refused.text
    assert api.get("/api/v1/runs").json() == []
    # preprocessing a dataset without trainable clips is refused with the reason, on the dataset page
    nothing = browser_client.post(f"/datasets/{dataset['id']}/preprocess", data={"csrf_token": token, "model": "toy"})
    assert nothing.status_code == 422 and "Preprocessing refused" in nothing.text and "no trainable clips" in nothing.text


def test_official_yaml_export_and_import(api, browser_client):
    dataset = create_dataset(api, trigger=TRIGGER, buckets="64x64x9")
    url = f"/datasets/{dataset['id']}/runs/new?preset=low-vram"
    page = browser_client.get(url).text
    token = _csrf(browser_client, url)
    exported = browser_client.post(f"/datasets/{dataset['id']}/runs/export-official", data={
        "csrf_token": token, "source": "yaml", "config_yaml": _yaml_of(page)})
    assert exported.status_code == 200 and "attachment" in exported.headers["content-disposition"]
    official = yaml.safe_load(exported.text)
    assert official["lora"]["rank"] == 16 and official["acceleration"]["quantization"] == "int8-quanto"

    official["lora"].update(rank=8, alpha=8)
    official["optimization"]["steps"] = 321
    imported = browser_client.post(f"/datasets/{dataset['id']}/runs/import-official", data={
        "csrf_token": token, "source": "yaml", "config_yaml": _yaml_of(page), "official_yaml": yaml.safe_dump(official)})
    assert imported.status_code == 200 and "Imported the official config" in imported.text
    config = yaml.safe_load(_yaml_of(imported.text))
    assert config["lora"]["rank"] == 8 and config["optimization"]["steps"] == 321
    assert config["data"]["trigger"] == TRIGGER  # kept from the form: the official file has no trigger

    official["model"]["training_mode"] = "full"
    bad = browser_client.post(f"/datasets/{dataset['id']}/runs/import-official", data={
        "csrf_token": token, "source": "yaml", "config_yaml": _yaml_of(page), "official_yaml": yaml.safe_dump(official)})
    assert bad.status_code == 422 and "only LoRA training" in bad.text


def test_preprocess_listen_then_queue_watch_cancel_resume_clone(api, browser_client, media):
    dataset = ready_dataset(api, media, count=2)
    dataset_id = dataset["id"]
    clips = api.get(f"/api/v1/datasets/{dataset_id}").json()["clips"]
    panel = browser_client.get(f"/datasets/{dataset_id}/training").text
    assert f'action="/datasets/{dataset_id}/preprocess"' in panel and "Train from it" not in panel
    assert f'hx-get="/datasets/{dataset_id}/training"' in browser_client.get(f"/datasets/{dataset_id}").text

    token = _csrf(browser_client, f"/datasets/{dataset_id}")
    started = browser_client.post(f"/datasets/{dataset_id}/preprocess", data={
        "csrf_token": token, "model": "toy", "buckets": "64x64x9"}, follow_redirects=False)
    assert started.status_code == 303 and started.headers["location"].startswith("/preprocess/")
    pre_url = started.headers["location"]
    queued = browser_client.get(pre_url).text
    assert 'hx-trigger="every 1500ms"' in queued and "waiting" in queued  # polls while the job is live
    assert api.delete(f"/api/v1/clips/{clips[1]['id']}").status_code == 204  # dropped with its reason

    assert run_pending_jobs() == ["succeeded"]
    done = browser_client.get(f"{pre_url}/body").text
    assert "every 1500ms" not in done  # the polling ends itself
    pre_id = int(pre_url.rsplit("/", 1)[1])
    assert f'data-wav="/api/v1/preprocess/{pre_id}/clips/{clips[0]["id"]}/decoded_audio"' in done
    assert f'src="/api/v1/preprocess/{pre_id}/clips/{clips[0]["id"]}/decoded_video"' in done
    assert f'src="/media/clips/{clips[0]["id"]}/source"' in done  # the original beside it
    assert '<code class="bucket">64x64x9</code>' in done
    assert "Dropped" in done and "take1.mp4" in done and "the clip was deleted" in done
    # the deletion changed the dataset: this preprocessing no longer offers training
    assert "preprocess again before training" in done and "runs/new?preprocess_run" not in done
    again = browser_client.post(f"/datasets/{dataset_id}/preprocess", data={
        "csrf_token": token, "model": "toy", "buckets": "64x64x9"}, follow_redirects=False)
    assert run_pending_jobs() == ["succeeded"]
    pre_id = int(again.headers["location"].rsplit("/", 1)[1])
    assert f'/datasets/{dataset_id}/runs/new?preprocess_run={pre_id}' in browser_client.get(f"/preprocess/{pre_id}").text

    form_url = f"/datasets/{dataset_id}/runs/new?preprocess_run={pre_id}"
    form = browser_client.get(form_url).text
    assert "disabled" not in _queue_button(form) and f"preprocess run #{pre_id}" in form
    queued_run = browser_client.post(f"/datasets/{dataset_id}/runs", data={
        "csrf_token": token, "source": "yaml", "config_yaml": _small_run_yaml(form)}, follow_redirects=False)
    assert queued_run.status_code == 303, queued_run.text
    run_url = queued_run.headers["location"]
    run_id = int(run_url.rsplit("/", 1)[1])
    run_page = browser_client.get(run_url).text
    job_id = api.get(f"/api/v1/runs/{run_id}").json()["job_id"]
    assert f'data-events-url="/api/v1/jobs/{job_id}/events"' in run_page
    assert 'id="cancel-form"' in run_page and re.search(r'id="resume-form"[^>]*hidden', run_page)

    jobs = browser_client.get("/jobs").text
    assert 'hx-trigger="every 2s"' in jobs and "#1 in gpu" in jobs and f'href="/runs/{run_id}"' in jobs

    # cancel while queued (ends at once), then resume: a new attempt trains the run to the end
    cancelled = browser_client.post(f"/runs/{run_id}/cancel", data={"csrf_token": token})
    assert cancelled.status_code == 200 and "Cancel requested" in cancelled.text
    assert api.get(f"/api/v1/jobs/{job_id}").json()["status"] == "cancelled"
    assert not re.search(r'id="resume-form"[^>]*hidden', cancelled.text)
    resumed = browser_client.post(f"/runs/{run_id}/resume", data={"csrf_token": token})
    assert resumed.status_code == 200 and "Resumed" in resumed.text
    assert run_pending_jobs() == ["succeeded"]

    page = browser_client.get(run_url).text
    assert 'id="run-status">succeeded' in page
    assert f"/api/v1/runs/{run_id}/checkpoints/2/lora?format=comfy" in page
    assert f"/api/v1/runs/{run_id}/checkpoints/4/lora?format=diffusers" in page
    samples = re.findall(r'<li class="sample" data-id="\d+">', page)
    assert len(samples) == 4  # lora at steps 0, 2 and 4; base (the model without LoRA) once, at step 0
    assert all(f"step {step} · prompt 1" in page for step in (0, 2, 4))
    assert "<strong>base</strong>" in page and "<strong>lora</strong>" in page
    assert "4</span> / <span id=\"h-total\">4" in page
    assert api.get(f"/api/v1/runs/{run_id}/checkpoints/4/lora?format=diffusers").status_code == 200
    again = browser_client.post(f"/runs/{run_id}/resume", data={"csrf_token": token})
    assert again.status_code == 409 and "only a failed, cancelled or interrupted job" in again.text

    jobs = browser_client.get("/jobs/table").text
    assert "every 2s" not in jobs and "job-succeeded" in jobs  # nothing live: the table stops polling

    clone = browser_client.get(f"/runs/{run_id}/clone")
    assert clone.status_code == 200 and f'name="parent_run_id" value="{run_id}"' in clone.text
    assert yaml.safe_load(_yaml_of(clone.text))["optimization"]["steps"] == 4
    panel = browser_client.get(f"/datasets/{dataset_id}/training").text
    assert f'href="/runs/{run_id}"' in panel and "Train from it" in panel


def test_preprocess_progress_per_clip_while_running():
    from types import SimpleNamespace

    from app.views.training_pages import preprocess_clip_rows

    clips = [{"name": n, "status": "pending"} for n in ("a.mp4", "b.mp4", "c.mp4")]
    running = SimpleNamespace(job=SimpleNamespace(status="running", step=1))
    assert [r["state"] for r in preprocess_clip_rows(running, {"clips": clips})] == ["done", "working", "waiting"]
    finished = [{"name": "a.mp4", "status": "ok"}, {"name": "b.mp4", "status": "error", "reason": "too short"}]
    done = SimpleNamespace(job=SimpleNamespace(status="succeeded", step=2))
    assert [r["state"] for r in preprocess_clip_rows(done, {"clips": finished})] == ["ok", "error"]


def test_pages_have_no_inline_scripts_and_escape_names(api, browser_client):
    for name in OUR_TEMPLATES:
        text = (TEMPLATES_DIR / name).read_text()
        for tag in re.findall(r"<script[^>]*>", text):
            assert "src=" in tag, f"inline script in {name}"
        assert not re.search(r"\son[a-z]+=", text), f"inline event handler in {name}"
    dataset = create_dataset(api, name="<b>bold</b>", trigger=TRIGGER)
    page = browser_client.get(f"/datasets/{dataset['id']}/runs/new").text
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    assert browser_client.get("/jobs").status_code == 200
    assert browser_client.get("/runs/999").status_code == 404
    assert browser_client.get("/preprocess/999").status_code == 404




def _set_job_status(job_id: int, status: str) -> None:
    from core.db import session_scope
    from core.models import Job

    with session_scope() as session:
        session.get(Job, job_id).status = status
        session.commit()


def test_checkpoint_and_sample_now_are_offered_only_while_the_training_runs(browser_client, migrated_env):
    run_id, job_id = seed_run_with_job("queued")
    url = f"/runs/{run_id}"
    queued = browser_client.get(url).text
    assert re.search(r'<div id="now-actions"[^>]*hidden', queued)  # shown by run.js once the job runs
    assert "are not offered" not in queued

    _set_job_status(job_id, "running")
    running = browser_client.get(url).text
    actions = re.search(r'<div id="now-actions"[^>]*>(.*?)</div>', running, re.S)
    assert actions and "hidden" not in actions.group(0)
    assert f'data-now-url="/api/v1/jobs/{job_id}/checkpoint-now">Save checkpoint now</button>' in actions.group(1)
    assert f'data-now-url="/api/v1/jobs/{job_id}/sample-now">Sample now</button>' in actions.group(1)
    assert "Checkpoint requested" not in running

    token = _csrf(browser_client, url)
    asked = browser_client.post(f"/api/v1/jobs/{job_id}/checkpoint-now", headers={"X-CSRF-Token": token})
    assert asked.status_code == 202 and "checkpoint" in asked.json()["requests"]
    pending = browser_client.get(url).text
    state = re.search(r'<p class="help" id="now-state" role="status">([^<]*)</p>', pending).group(1)
    assert state.startswith("Checkpoint requested at ") and "after the step in progress" in state
    assert "&#34;checkpoint&#34;" in re.search(r'data-requests="([^"]*)"', pending).group(1)

    _set_job_status(job_id, "succeeded")
    finished = browser_client.get(url).text
    assert 'id="now-actions"' not in finished and "Save checkpoint now</button>" not in finished
    assert "Checkpoint requested" not in finished  # nothing pending once the job is over
    refused = browser_client.post(f"/api/v1/jobs/{job_id}/sample-now", headers={"X-CSRF-Token": token})
    assert refused.status_code == 409
    assert "only while the training runs" in refused.json()["error"]["message"]


def test_run_page_links_compare_key_reports_and_exports_of_the_best_checkpoint(browser_client, migrated_env):
    run_id, _ = seed_run_with_job("succeeded", best_step=4)
    page = browser_client.get(f"/runs/{run_id}").text
    assert f'href="/runs/{run_id}/compare"' in page
    rows = dict(re.findall(r'<tr data-step="(\d+)">(.*?)</tr>', page, re.S))
    assert set(rows) == {"2", "4"}
    assert f'href="/runs/{run_id}/checkpoints/4/key-report"' in rows["4"]
    assert "key-report" not in rows["2"] and "removed (keep_last_n)" in rows["2"]  # its files are gone
    export = f"/api/v1/runs/{run_id}/checkpoints/4/export"
    assert f'href="{export}?layout=comfy&amp;modules=all"' in rows["4"]
    assert f'href="{export}?layout=diffusers&amp;modules=all"' in rows["4"]
    assert "/export" not in rows["2"] and 'class="badge best"' in rows["4"]
    # the links lead to real pages: the compare page and the key report of that checkpoint
    assert browser_client.get(f"/runs/{run_id}/compare").status_code == 200
    assert browser_client.get(f"/runs/{run_id}/checkpoints/4/key-report").status_code == 200

    from core.db import session_scope
    from core.models import TrainingRun

    with session_scope() as session:
        session.get(TrainingRun, run_id).best_checkpoint_step = None
        session.commit()
    assert "/export" not in browser_client.get(f"/runs/{run_id}").text  # no best checkpoint: no export
