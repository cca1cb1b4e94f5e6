"""The run form offers the training modes: one plain sentence and a preset each; the linter's mode
errors block the queue button."""

from __future__ import annotations

import re

import yaml

from core.recipe.modes import mode_choices
from tests.unit.web.helpers import config_yaml_of as _yaml_of
from tests.unit.web.helpers import create_dataset
from tests.unit.web.training_support import TRIGGER


def test_the_run_form_offers_each_mode_and_lints_its_rules(api, browser_client):
    dataset = create_dataset(api, trigger=TRIGGER, buckets="64x64x9")
    url = f"/datasets/{dataset['id']}/runs/new?preset=voice"
    page = browser_client.get(url).text
    select = re.search(r'<select id="f-mode" name="mode".*?</select>', page, re.S).group(0)
    assert re.findall(r'<option value="(\w+)"', select) == ["audio_video", "voice", "audio_only", "reference_voice"]
    assert re.search(r'<option value="voice" selected>', select)
    for choice in mode_choices():
        assert choice["sentence"].replace("'", "&#39;") in page and f"preset={choice['preset']}" in page
    config = yaml.safe_load(_yaml_of(page))
    assert config["training"]["mode"] == "voice"

    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    full = browser_client.get(f"/datasets/{dataset['id']}/runs/new?preset=full").text
    lint = browser_client.post(f"/datasets/{dataset['id']}/runs/lint", data={
        "csrf_token": token, "source": "fields", "config_yaml": _yaml_of(full), "mode": "audio_only"})
    # the field sets training.mode: the full preset's targets and first-frame setting meet audio_only's rules
    assert 'data-code="mode_targets_narrowed"' in lint.text and 'data-code="mode_first_frame_without_video"' in lint.text
    config["lora"]["target_modules"] = ["attn1.to_k", "ff.net.2"]
    lint = browser_client.post(f"/datasets/{dataset['id']}/runs/lint", data={
        "csrf_token": token, "source": "yaml", "config_yaml": yaml.safe_dump(config)})
    assert 'data-code="mode_targets_none"' in lint.text
    assert "disabled" in re.search(r'<button[^>]*id="queue-button"[^>]*>', lint.text).group(0)


def test_a_step_without_a_video_loss_is_recorded_and_served(migrated_env, api):
    """voice and audio_only steps score no video: the metric keeps the video loss empty (not 0)."""
    from core.db import session_scope
    from core.services.run_records import record_metric
    from tests.unit.web.compare_support import seed_run_with_job

    run_id, _job_id = seed_run_with_job("running")
    with session_scope() as session:
        record_metric(session, run_id, 1, {"loss": 0.4, "loss_video": None, "loss_audio": 0.4, "lr": 1e-4,
                                           "grad_norm": 1.0, "step_time": 0.5, "gpu_mem": 1})
    rows = api.get(f"/api/v1/runs/{run_id}").json()["metrics"]
    assert rows[-1]["step"] == 1 and rows[-1]["loss_video"] is None and rows[-1]["loss_audio"] == 0.4


def test_the_form_sets_each_side_of_an_audio_video_run(api, browser_client):
    """The advanced side settings (video frozen, audio loss weight, own audio timestep) are form
    fields: they write the config, show what the config holds, and a bad weight is named."""
    dataset = create_dataset(api, trigger=TRIGGER, buckets="64x64x9")
    page = browser_client.get(f"/datasets/{dataset['id']}/runs/new?preset=sanity").text
    assert re.search(r'<option value="False" selected>learnt', page) and 'id="f-audio-loss-weight"' in page
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    fields = {"csrf_token": token, "source": "fields", "config_yaml": _yaml_of(page),
              "video_frozen": "True", "audio_loss_weight": "2.5", "independent_audio_timesteps": "True"}
    lint = browser_client.post(f"/datasets/{dataset['id']}/runs/lint", data=fields)
    training = yaml.safe_load(_yaml_of(lint.text))["training"]
    assert training["video_frozen"] is True and training["audio_loss_weight"] == 2.5
    assert training["independent_audio_timesteps"] is True
    from app.views.training_pages import fields_of

    shown = fields_of({"training": training})
    assert (shown["video_frozen"], shown["audio_loss_weight"], shown["independent_audio_timesteps"]) == ("True", "2.5", "True")
    bad = browser_client.post(f"/datasets/{dataset['id']}/runs/lint", data={**fields, "audio_loss_weight": "loud"})
    assert "audio_loss_weight" in bad.text
    assert "disabled" in re.search(r'<button[^>]*id="queue-button"[^>]*>', bad.text).group(0)
