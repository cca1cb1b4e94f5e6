"""What the studio puts in place of a run config's own settings is said, not done silently: in the
answer that queues the run, in the run's JSON and on its page, for every attempt of the run."""

from __future__ import annotations

from tests.unit.web.training_support import preprocessed, ready_dataset, toy_config


def _codes(warnings: list[dict]) -> list[str]:
    return [w["code"] for w in warnings]


def test_replaced_paths_are_said_in_the_answer_and_kept_on_the_run(api, browser_client, media):
    dataset = ready_dataset(api, media)
    pre = preprocessed(api, dataset["id"], model="toy")
    config = toy_config(api, dataset["id"])
    config["output_dir"] = "/mnt/big/ema_run"
    config["data"]["preprocessed_dir"] = "/mnt/big/ema_cache"
    answer = api.post("/api/v1/runs", json={"dataset_id": dataset["id"], "config": config})
    assert answer.status_code == 201, answer.text
    run_id, job_id = answer.json()["id"], answer.json()["job_id"]
    notes = [w for w in answer.json()["warnings"] if w["code"].endswith("_replaced")]
    cache = f"preprocess/{pre['id']}/.precomputed"
    assert [(w["code"], w["detail"]) for w in notes] == [
        ("output_dir_replaced", {"given": "/mnt/big/ema_run", "used": f"runs/{run_id}"}),
        ("preprocessed_dir_replaced", {"given": "/mnt/big/ema_cache", "used": cache})]
    assert notes[0]["message"].startswith(f"output_dir '/mnt/big/ema_run' was replaced by the studio's own folder "
                                          f"runs/{run_id}")
    assert notes[1]["message"].startswith(f"data.preprocessed_dir '/mnt/big/ema_cache' was replaced by {cache}")

    run = api.get(f"/api/v1/runs/{run_id}").json()
    assert run["warnings"] == notes and run["config"]["output_dir"] == f"runs/{run_id}"
    page = browser_client.get(f"/runs/{run_id}").text
    assert 'data-code="output_dir_replaced"' in page and "/mnt/big/ema_run" in page and "/mnt/big/ema_cache" in page

    assert api.post(f"/api/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    assert api.post(f"/api/v1/jobs/{job_id}/resume").status_code == 201
    resumed = api.get(f"/api/v1/runs/{run_id}").json()
    assert resumed["job_id"] != job_id and resumed["warnings"] == notes  # kept for the run, not the attempt

    clone = api.post(f"/api/v1/runs/{run_id}/clone")  # the studio's own paths: nothing to say
    assert clone.status_code == 201, clone.text
    assert not [c for c in _codes(clone.json()["warnings"]) if c.endswith("_replaced") or c == "default_steps"]
    assert api.get(f"/api/v1/runs/{clone.json()['id']}").json()["warnings"] == []


def test_a_config_without_steps_says_which_apply(api, media):
    dataset = ready_dataset(api, media)
    preprocessed(api, dataset["id"], model="toy")
    empty = api.post("/api/v1/runs", json={"dataset_id": dataset["id"], "config": {}})
    assert empty.status_code == 201, empty.text
    (note,) = [w for w in empty.json()["warnings"] if w["code"] == "default_steps"]
    assert note["message"].startswith("The config sets no optimization.steps: the default 2,000 steps of preset "
                                      "'full' apply (preset 'sanity' has 500")
    assert note["detail"] == {"steps": 2000}
    run = api.get(f"/api/v1/runs/{empty.json()['id']}").json()
    assert run["config"]["optimization"]["steps"] == 2000 and run["warnings"] == [note]

    labelled = api.post("/api/v1/runs", json={"dataset_id": dataset["id"], "config": {"preset": "sanity"}})
    assert labelled.status_code == 201, labelled.text
    (note,) = [w for w in labelled.json()["warnings"] if w["code"] == "default_steps"]
    assert "the config's preset 'sanity' is only a label: that preset has 500 steps" in note["message"]
    assert "GET /api/v1/presets/sanity" in note["message"]
