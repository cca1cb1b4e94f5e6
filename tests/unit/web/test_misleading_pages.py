"""What misled a newcomer on the pages (issue 19): toy media that is noise with nothing saying so, a
clip's duration shown three ways, an SNR of 99 dB for every clean clip, "GPU: cpu" on a CPU run and
an ETA that stood still while samples rendered."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.web.compare_support import seed_run, seed_run_with_job
from tests.unit.web.helpers import create_dataset, run_pending_jobs, upload

TOY_NOTICE = re.compile(r'<aside class="notice toy-notice"[^>]*data-toy-model="([^"]+)"[^>]*>(.*?)</aside>', re.S)


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.mark.parametrize("model", ["toy", "ltx-2.3"])
def test_toy_media_says_it_is_noise_where_it_plays(browser_client, migrated_env, model):
    from core.config import get_settings
    from core.db import session_scope
    from core.models import PreprocessRun, TrainingRun

    with session_scope() as session:
        seeded = seed_run(session, get_settings().data_dir, audio_off=False)
        session.get(PreprocessRun, seeded.preprocess_run_id).model = model
        run = session.get(TrainingRun, seeded.run_id)
        run.config = {**run.config, "model": model}
    pages = {"decoded previews": f"/preprocess/{seeded.preprocess_run_id}", "samples": f"/runs/{seeded.run_id}",
             "compare": f"/runs/{seeded.run_id}/compare", "dataset compare": f"/datasets/{seeded.dataset_id}/compare"}
    for where, url in pages.items():
        page = browser_client.get(url)
        assert page.status_code == 200, (where, page.text[:300])
        notices = TOY_NOTICE.findall(page.text)
        if model != "toy":
            assert notices == [], where
            continue
        assert [m for m, _ in notices] == ["toy"], where
        said = _text(notices[0][1])
        assert "noise" in said and "AVLORA_MODEL_DIR" in said and "AVLORA_MODEL_PRESET=ltx-2.3" in said, where
    if model == "toy":  # on the preprocess page it sits with the decoded previews, on the run page with the samples
        preprocess = browser_client.get(pages["decoded previews"]).text
        assert preprocess.index("toy-notice") < preprocess.index('class="table preprocess-clips"')
        run_page = browser_client.get(pages["samples"]).text
        assert run_page.index("Validation samples") < run_page.index("toy-notice") < run_page.index('id="samples"')


def test_a_one_frame_clip_shows_one_duration_on_its_card_page_and_findings(api, browser_client, media):
    dataset = create_dataset(api, buckets="64x64x9")
    (entry,) = upload(api, dataset["id"], media.one_frame_video(audio="none"), names=["still.mp4"]).json()
    (talking,) = upload(api, dataset["id"], media.talking_clip(), names=["talk.mp4"]).json()
    assert run_pending_jobs() == ["succeeded", "succeeded"]
    clip = api.get(f"/api/v1/clips/{entry['id']}").json()
    assert clip["facts"]["duration"] == pytest.approx(0.04)

    grid = browser_client.get(f"/datasets/{dataset['id']}").text
    card = re.search(rf'<li class="card[^"]*" id="clip-{entry["id"]}">.*?</li>\s*(?=<li class="card|</ul>)', grid, re.S).group(0)
    facts = _text(re.search(r'<p class="facts">(.*?)</p>', card, re.S).group(1))
    assert facts.startswith("0.04 s · 1 frames")
    page = _text(browser_client.get(f"/clips/{entry['id']}").text)
    assert "Duration 0.04 s" in page
    finding = next(f for f in clip["findings"] if f["code"] == "duration_outside_recommended")
    assert "0.04 s long" in finding["message"]

    # a clean clip is digitally silent between its words: no noise floor, so no SNR (not "99.0 dB")
    talk_page = _text(browser_client.get(f"/clips/{talking['id']}").text)
    assert "SNR cannot be estimated: no noise floor" in talk_page and "99.0 dB" not in talk_page


def _running_on(gpu: str, eta_s: float, metric_age_s: float) -> int:
    from core.db import session_scope
    from core.models import Job, Metric

    run_id, job_id = seed_run_with_job("running")
    with session_scope() as session:
        job = session.get(Job, job_id)
        job.gpu, job.step, job.eta_s, job.heartbeat_at = gpu, 2, eta_s, datetime.now(UTC)
        session.add(Metric(run_id=run_id, step=2, loss=1.0, loss_video=0.6, loss_audio=0.4, lr=1e-4, grad_norm=1.0,
                           step_time=0.5, gpu_mem=300 << 20, created_at=datetime.now(UTC) - timedelta(seconds=metric_age_s)))
    return run_id


def _header(browser_client, run_id: int) -> dict[str, str]:
    html = browser_client.get(f"/runs/{run_id}").text
    labels = dict(re.findall(r'<dt id="(h-[\w-]+-label)">([^<]*)</dt>', html))
    values = dict(re.findall(r'<dd id="(h-(?:gpu|mem|eta))">(.*?)</dd>', html, re.S))
    return {**labels, **{k: _text(v) for k, v in values.items()}}


def test_the_run_header_says_what_ran_where_and_the_eta_moves_on(browser_client, migrated_env):
    header = _header(browser_client, _running_on("cpu", eta_s=600.0, metric_age_s=120.0))
    assert header["h-gpu-label"] == "Device" and header["h-gpu"] == "CPU (no GPU)"
    assert header["h-mem-label"] == "Memory (process peak RSS)" and header["h-mem"].startswith("300.0 MiB")
    # the ETA was written with step 2's metric two minutes ago: samples rendered since, time went on
    minutes, seconds = map(int, re.fullmatch(r"(\d+) min (\d+) s", header["h-eta"]).groups())
    assert 475 <= minutes * 60 + seconds <= 480

    gpu = _header(browser_client, _running_on("NVIDIA H200", eta_s=90.0, metric_age_s=300.0))
    assert (gpu["h-gpu-label"], gpu["h-gpu"], gpu["h-mem-label"]) == ("GPU", "NVIDIA H200", "GPU memory")
    assert gpu["h-eta"] == "0 s"  # overdue: never a negative time
