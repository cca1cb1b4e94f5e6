"""The v2a voice test through the studio: a toy run samples its training clips' own video with the
audio generated, the API gives each sample its source clip, and the compare page shows one row per
clip with the clip's real audio beside the LoRA-off and LoRA-on samples."""

from __future__ import annotations

import re

from tests.unit.web.helpers import run_pending_jobs
from tests.unit.web.training_support import preprocessed, ready_dataset, toy_config

V2A = {"variants": ["lora", "base", "v2a-lora", "v2a-base"], "v2a_clips": 2}


def test_a_toy_run_samples_the_v2a_voice_test_per_training_clip(api, browser_client, media, migrated_env):
    dataset = ready_dataset(api, media, count=3)
    prep = preprocessed(api, dataset["id"], model="toy")
    usable = sorted((c["media"], c["clip_id"]) for c in prep["clips"] if c["status"] in ("ok", "cached"))
    first_two = [clip_id for _media, clip_id in usable[:2]]  # the cache's first entries, in name order
    created = api.post("/api/v1/runs", json={"dataset_id": dataset["id"],
                                             "config": toy_config(api, dataset["id"], validation=V2A)})
    assert created.status_code == 201, created.text
    assert run_pending_jobs() == ["succeeded"]

    run = api.get(f"/api/v1/runs/{created.json()['id']}").json()
    v2a = sorted((s["step"], s["variant"], s["prompt_index"], s["source_clip_id"]) for s in run["samples"]
                 if s["variant"].startswith("v2a"))
    assert v2a == sorted([(0, "v2a-base", i, clip) for i, clip in enumerate(first_two)]
                         + [(step, "v2a-lora", i, clip) for step in (0, 2, 4) for i, clip in enumerate(first_two)])
    assert all(s["source_clip_id"] is None for s in run["samples"] if not s["variant"].startswith("v2a"))
    sample = next(s for s in run["samples"] if s["variant"] == "v2a-lora" and s["step"] == 4)
    assert api.get(sample["mp4_url"]).headers["content-type"] == "video/mp4"
    assert api.get(sample["wav_url"]).status_code == 200

    grid = api.get(f"/api/v1/runs/{run['id']}/compare").json()
    rows = [r for r in grid["rows"] if r["kind"] == "v2a"]
    assert [r["source_clip_id"] for r in rows] == sorted(first_two)
    assert [r["kind"] for r in grid["rows"]] == ["prompt", "v2a", "v2a"]  # prompts first, then the clips
    assert [c["kind"] for c in grid["columns"]] == ["reference", "base", "lora", "lora", "lora"]
    for row in rows:
        reference, base, *steps = row["cells"]
        assert reference["audio_url"] == (f"/api/v1/preprocess/{prep['id']}/clips/{row['source_clip_id']}"
                                          "/decoded_audio")
        assert api.get(reference["audio_url"]).status_code == 200
        assert not base["missing"] and not any(cell["missing"] for cell in steps)
        ids = {base["sample_id"], *(cell["sample_id"] for cell in steps)}
        assert {s["source_clip_id"] for s in run["samples"] if s["id"] in ids} == {row["source_clip_id"]}

    html = browser_client.get(f"/runs/{run['id']}/compare").text
    assert 'id="v2a-rows"' in html and html.count('class="v2a-row"') == 2
    assert html.count('<td class="cell') == 3 * 5
    for index, row in enumerate(rows, start=1):  # rows 1 and 2 (row 0 is the prompt)
        cells = re.findall(rf'<td class="cell col-(\S+?)[ "][^>]*data-row="{index}"', html)
        assert cells == ["reference", "base", "lora", "lora", "lora"]
        assert row["cells"][0]["audio_url"] in html and "voice test" in html
