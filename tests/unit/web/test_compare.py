"""The compare data: sample metrics measured by the cpu job, the grid, charts, pictures, best checkpoint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.unit.web.compare_support import BUZZ_STEP, CLEAN_STEP, PROMPTS, TRIGGER, seed_run
from tests.unit.web.helpers import run_pending_jobs


@pytest.fixture
def seeded(migrated_env):
    from core.config import get_settings
    from core.db import session_scope

    with session_scope() as session:
        return seed_run(session, get_settings().data_dir)


def _measure(api, run_id: int) -> None:
    response = api.post(f"/api/v1/runs/{run_id}/sample-metrics")
    assert response.status_code == 202 and response.json()["pending"] == 10
    assert run_pending_jobs() == ["succeeded"]


def test_sample_metrics_job_measures_every_sample_and_flags_the_buzzing_checkpoint(api, seeded):
    from core.db import session_scope
    from core.models import Job
    from core.services.compare import queue_sample_metrics

    with session_scope() as session:  # asking twice while one waits queues one job
        first = queue_sample_metrics(session, seeded.run_id)
        assert first is not None and queue_sample_metrics(session, seeded.run_id) is None
        assert len(list(session.scalars(select(Job).where(Job.kind == "sample_metrics")))) == 1
    assert run_pending_jobs() == ["succeeded"]

    samples = api.get(f"/api/v1/runs/{seeded.run_id}").json()["samples"]
    assert len(samples) == 10 and all(s["metrics"].get("integrated_lufs") is not None for s in samples)
    by = {(s["step"], s["prompt_index"], s["variant"]): s["metrics"] for s in samples}
    for index in range(len(PROMPTS)):
        buzzing, clean = by[(BUZZ_STEP, index, "lora")], by[(CLEAN_STEP, index, "lora")]
        # the buzz is heard by DNSMOS too: the speech quality drops against the base model's
        assert [f["code"] for f in buzzing["flags"]] == ["buzz", "quality_dropped"]
        assert buzzing["flags"][0]["severity"] == "error"
        assert buzzing["quality_mos"] < clean["quality_mos"] - 0.5
        # these toy prompts say nothing in Speech: "..." and no training clip carries a voice embedding
        assert clean["wer"] is None and clean["voice_reasons"]["wer"].startswith("the prompt has no Speech")
        assert clean["speaker_similarity"] is None and "no voice embedding" in clean["voice_reasons"]["speaker_similarity"]
        assert clean["flags"] == [] and by[(BUZZ_STEP, index, "lora-audio-off")]["flags"] == []
        assert "flags" not in by[(0, index, "base")]  # the base is what the others are compared with
        assert buzzing["buzz_score_db"] > clean["buzz_score_db"] + 10
        # voice distance to the training clip: same espeak voice, so close, and the buzz moves it away
        assert 0 <= clean["voice_distance"] < buzzing["voice_distance"]
    # a second run of the job has nothing left to measure
    with session_scope() as session:
        queue_sample_metrics(session, seeded.run_id)
    assert run_pending_jobs() == ["succeeded"]
    with session_scope() as session:
        job = session.scalars(select(Job).where(Job.kind == "sample_metrics").order_by(Job.id.desc())).first()
        assert job.result["measured"] == 0


def test_compare_api_grid_columns_rows_and_charts(api, seeded):
    _measure(api, seeded.run_id)
    grid = api.get(f"/api/v1/runs/{seeded.run_id}/compare").json()
    assert [c["kind"] for c in grid["columns"]] == ["reference", "base", "lora", "lora"]
    assert [c["step"] for c in grid["columns"][2:]] == [BUZZ_STEP, CLEAN_STEP]
    assert [r["prompt"] for r in grid["rows"]] == [p.replace("{trigger}", TRIGGER) for p in PROMPTS]
    reference, base, buzzing, clean = grid["rows"][1]["cells"]
    assert reference["audio_url"] == f"/api/v1/preprocess/{seeded.preprocess_run_id}/clips/1/decoded_audio"
    assert base["audio_url"].endswith("/wav") and base["flags"] == []
    assert buzzing["worst"] == "error" and clean["worst"] is None
    assert grid["has_audio_off"] and grid["metrics_pending"] == 0

    with_off = api.get(f"/api/v1/runs/{seeded.run_id}/compare?audio_off=true").json()
    assert [c["kind"] for c in with_off["columns"]] == ["reference", "base", "lora", "lora-audio-off",
                                                         "lora", "lora-audio-off"]
    charts = {c["metric"]: c for c in grid["charts"]}
    assert set(charts) >= {"integrated_lufs", "clipping_ratio", "spectral_flatness", "buzz_score_db",
                           "speech_ratio", "voice_distance", "sample_peak_dbfs"}
    buzz = charts["buzz_score_db"]
    assert [step for step, _ in buzz["series"]["lora"]] == [BUZZ_STEP, CLEAN_STEP]
    assert buzz["series"]["lora"][0][1] > buzz["series"]["base"][0][1] + 10
    assert buzz["flags"] == [[BUZZ_STEP, "buzz"]]

    # every file the grid points at is served
    for cell in (reference, buzzing):
        for key in ("audio_url", "waveform_url", "spectrogram_url"):
            response = api.get(cell[key])
            assert response.status_code == 200, (key, response.text)
    assert api.get(buzzing["spectrogram_url"]).content[:8] == b"\x89PNG\r\n\x1a\n"


def test_spectrograms_are_drawn_once_beside_the_wav(api, seeded):
    from core.db import session_scope
    from core.models import Sample

    with session_scope() as session:
        sample = session.scalars(select(Sample).where(Sample.variant == "base")).first()
        wav = seeded.data_dir / sample.wav
    png = wav.with_name(f"{wav.stem}.spectrogram.png")
    assert not png.exists()
    assert api.get(f"/compare/samples/{sample.id}/spectrogram.png").status_code == 200
    assert png.is_file()
    stamp = png.stat().st_mtime_ns
    assert api.get(f"/compare/samples/{sample.id}/spectrogram.png").status_code == 200
    assert png.stat().st_mtime_ns == stamp
    assert api.get(f"/compare/samples/{sample.id}/poster.png").status_code == 404


def test_compare_page_lists_every_cell_with_players_and_flags(api, browser_client, seeded):
    _measure(api, seeded.run_id)
    page = browser_client.get(f"/runs/{seeded.run_id}/compare")
    assert page.status_code == 200
    html = page.text
    assert html.count('<td class="cell') == 2 * 4
    assert html.count("<audio class=\"cell-audio\"") == 2 * 4
    cells = re.findall(r'<td class="cell col-(\S+?)[ "][^>]*data-row="(\d)" data-col="(\d)"', html)
    assert [(kind, int(r), int(c)) for kind, r, c in cells] == [
        (kind, r, c) for r in range(2) for c, kind in enumerate(["reference", "base", "lora", "lora"])]
    assert "js/compare.js" in html and 'id="compare-grid"' in html
    assert "flagged-error" in html and "buzz" in html
    assert len(re.findall(r"data-chart='", html)) == 10
    assert "Show “LoRA audio off” columns" in html
    assert browser_client.get(f"/runs/{seeded.run_id}/compare?audio_off=1").text.count('<td class="cell') == 2 * 6
    assert browser_client.get("/runs/999/compare").status_code == 404


def test_best_checkpoint_is_marked_and_offered_for_export(api, browser_client, seeded):
    bad = api.put(f"/api/v1/runs/{seeded.run_id}/best-checkpoint", json={"step": 3})
    assert bad.status_code == 422 and "no checkpoint at step 3" in bad.json()["error"]["message"]
    ok = api.put(f"/api/v1/runs/{seeded.run_id}/best-checkpoint", json={"step": CLEAN_STEP})
    assert ok.json()["best_checkpoint_step"] == CLEAN_STEP
    assert api.get(f"/api/v1/runs/{seeded.run_id}").json()["best_checkpoint_step"] == CLEAN_STEP
    html = browser_client.get(f"/runs/{seeded.run_id}/compare").text
    assert f"/api/v1/runs/{seeded.run_id}/checkpoints/{CLEAN_STEP}/export?layout=comfy" in html
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    cleared = browser_client.post(f"/runs/{seeded.run_id}/best", data={"csrf_token": token, "step": ""},
                                  follow_redirects=False)
    assert cleared.status_code == 303
    assert api.get(f"/api/v1/runs/{seeded.run_id}").json()["best_checkpoint_step"] is None


def test_dataset_compare_puts_runs_side_by_side(api, browser_client, seeded):
    from core.config import get_settings
    from core.db import session_scope

    with session_scope() as session:
        second = seed_run(session, get_settings().data_dir, audio_off=False, dataset_id=seeded.dataset_id)
    html = browser_client.get(f"/datasets/{seeded.dataset_id}/compare").text
    assert f"run #{seeded.run_id} · step {BUZZ_STEP}" in html and f"run #{second.run_id} · step {CLEAN_STEP}" in html
    assert html.count('<td class="cell') == 2 * (2 + 4)
    empty = api.post("/api/v1/datasets", json={"name": "Empty", "trigger": "x_voice"}).json()
    assert "No training run" in browser_client.get(f"/datasets/{empty['id']}/compare").text


def test_an_unreadable_sample_is_reported_not_retried(api, seeded):
    from core.db import session_scope
    from core.models import Sample

    with session_scope() as session:
        sample = session.scalars(select(Sample).where(Sample.variant == "lora")).first()
        Path(seeded.data_dir / sample.wav).write_bytes(b"not audio at all")
        sample_id = sample.id
    _measure(api, seeded.run_id)
    with session_scope() as session:
        metrics = session.get(Sample, sample_id).metrics
    assert "error" in metrics and "flags" not in metrics


def test_a_video_to_audio_sample_is_compared_with_the_lora_off_one_of_its_clip(api, seeded):
    """v2a-lora is flagged against v2a-base of the same training clip, never the text-prompt base:
    both v2a samples buzz alike, so nothing dropped, while the clean text base would flag it."""
    _add_buzzing_samples_and_measure(api, seeded, "v2a-base", "v2a-lora")
    samples = {(s["variant"], s["step"], s["prompt_index"]): s for s in api.get(f"/api/v1/runs/{seeded.run_id}").json()["samples"]}
    v2a = samples[("v2a-lora", CLEAN_STEP, 0)]["metrics"]
    assert "quality_dropped" not in [f["code"] for f in v2a["flags"]], v2a["flags"]
    buzzing_text_lora = samples[("lora", BUZZ_STEP, 0)]["metrics"]
    assert "quality_dropped" in [f["code"] for f in buzzing_text_lora["flags"]]


def test_reference_voice_samples_get_their_own_rows_verdict_and_base(api, browser_client, seeded):
    """ref-lora is flagged against ref-base (the LoRA off, given the same reference), never the
    plain base; each gets the voice verdict against its reference clip; the compare grid shows
    them in rows of their own, the reference clip first, and the prompt rows keep the plain base."""
    _add_buzzing_samples_and_measure(api, seeded, "ref-base", "ref-lora")
    run = api.get(f"/api/v1/runs/{seeded.run_id}").json()
    samples = {(s["variant"], s["step"], s["prompt_index"]): s for s in run["samples"]}
    ref_lora = samples[("ref-lora", CLEAN_STEP, 0)]["metrics"]
    assert "quality_dropped" not in [f["code"] for f in ref_lora["flags"]], ref_lora["flags"]
    for key in (("ref-lora", CLEAN_STEP, 0), ("ref-base", 0, 0)):
        metrics = samples[key]["metrics"]
        assert isinstance(metrics["follows_reference"], bool), metrics.get("verdict_reason")
        assert 0 < metrics["reference_similarity"] <= 1 and 0 < metrics["default_voice_similarity"] <= 1
    assert "follows_reference" not in samples[("lora", CLEAN_STEP, 0)]["metrics"]
    # the plain LoRA samples are still compared with the plain (clean) base, not with ref-base
    assert "quality_dropped" in [f["code"] for f in samples[("lora", BUZZ_STEP, 0)]["metrics"]["flags"]]

    grid = api.get(f"/api/v1/runs/{seeded.run_id}/compare").json()
    rows = [r for r in grid["rows"] if r["kind"] == "reference-voice"]
    assert len(rows) == 1 and rows[0]["source_clip_id"] == 1 and rows[0]["prompt_index"] == 0
    reference, base, *steps = rows[0]["cells"]
    assert reference["audio_url"].endswith("/clips/1/decoded_audio")
    assert base["sample_id"] == samples[("ref-base", 0, 0)]["id"]
    assert [c["sample_id"] for c in steps if not c["missing"]] == [samples[("ref-lora", CLEAN_STEP, 0)]["id"]]
    prompt_base = next(r for r in grid["rows"] if r["kind"] == "prompt" and r["prompt_index"] == 0)["cells"][1]
    assert prompt_base["sample_id"] == samples[("base", 0, 0)]["id"]
    html = browser_client.get(f"/runs/{seeded.run_id}/compare").text
    assert 'id="reference-rows"' in html and html.count('class="reference-row"') == 1
    assert "the dataset&#39;s reference: take0.mp4" in html


def _add_buzzing_samples_and_measure(api, seeded, off_variant: str, on_variant: str) -> None:
    """Add a LoRA-off (step 0) and a LoRA-on (step 4) sample of prompt 1, both buzzing, sampled with
    training clip 1 as their source, then run the sample_metrics job."""
    from core.config import get_settings
    from core.db import session_scope
    from core.models import Sample
    from tests.unit.web.compare_support import speech_wav

    data_dir = get_settings().data_dir
    with session_scope() as session:
        for variant, step in ((off_variant, 0), (on_variant, CLEAN_STEP)):
            wav = speech_wav(data_dir / f"runs/{seeded.run_id}/samples/{variant}.wav", buzz_db=12.0)
            session.add(Sample(run_id=seeded.run_id, step=step, prompt_index=0, seed=42, variant=variant,
                               wav=str(wav.relative_to(data_dir)), mp4="", metrics={}, source_clip_id=1))
        session.commit()
    api.post(f"/api/v1/runs/{seeded.run_id}/sample-metrics")
    assert run_pending_jobs() == ["succeeded"]
