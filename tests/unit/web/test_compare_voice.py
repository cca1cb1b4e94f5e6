"""Does it sound like them? The voice measures of the sample metrics job through the API, on samples
written at test time with espeak-ng: training clips in one voice, a base model in espeak's default
voice, a good checkpoint in the training voice and a degraded one (another voice, other words,
a buzz), and noise where an audio-off variant should have spoken."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile

from tests.unit.web.compare_support import BUZZ_STEP, CLEAN_STEP, seed_run
from tests.unit.web.helpers import run_pending_jobs

RATE = 16000
VOICE, OTHER_VOICE = "en-us+m3", "en-us+f4"  # far apart for Resemblyzer (0.8 vs 0.55 to the m3 voice)
SAID = ("it is raining outside", "can you help me with this")  # what each prompt asks for
OTHER_WORDS = "the children are playing in the park"
TRAINING = ("please call me tomorrow morning", "i would like a cup of coffee", "we are going to the store")


def _speech(text: str, voice: str = "en-us", buzz_db: float | None = None) -> np.ndarray:
    from worker.speech.synth import espeak

    spoken = espeak(text, voice)
    audio = np.concatenate([np.zeros(RATE // 4), 0.7 * spoken / np.abs(spoken).max(), np.zeros(RATE // 4)])
    if buzz_db is not None:
        t = np.arange(audio.size) / RATE
        audio = audio + 0.7 * 10 ** (-buzz_db / 20) * np.sign(np.sin(2 * np.pi * 100.0 * t))
    return np.clip(audio, -1, 1).astype(np.float32)


def _training_clips(session, dataset_id: int) -> list[dict]:
    """Three clips in VOICE with stored voice embeddings (as the probe job stores them), one without."""
    from core.models import Clip
    from worker.speech.speaker import embed_voice

    items = []
    for index, text in enumerate((*TRAINING, None)):
        voice = None
        if text is not None:
            embedding = embed_voice(_speech(text, VOICE), RATE)
            voice = {"embedding": [round(float(x), 5) for x in embedding], "speech_s": 1.5, "turns": [], "voices": 1}
        clip = Clip(dataset_id=dataset_id, original_name=f"take{index}.mp4", stored_path=f"clips/take{index}.mp4",
                    content_hash=f"{index:064d}", size_bytes=1, status="ready", analysis={"voice": voice} if voice else {})
        session.add(clip)
        session.flush()
        items.append({"clip_id": clip.id, "name": clip.original_name, "media": clip.original_name,
                      "caption": f'ema_voice, a man. Speech: "{text or ""}".', "status": "ok"})
    return items


@pytest.fixture
def voiced(migrated_env):
    from core.config import get_settings
    from core.db import session_scope
    from core.models import PreprocessRun, Sample, TrainingRun

    data_dir = get_settings().data_dir
    with session_scope() as session:
        seeded = seed_run(session, data_dir)
    with session_scope() as session:
        prep = session.get(PreprocessRun, seeded.preprocess_run_id)
        items = _training_clips(session, seeded.dataset_id)
        items[0]["decoded_audio"] = prep.clip_results[0]["decoded_audio"]  # the MFCC reference stays
        prep.clip_results = items
        run = session.get(TrainingRun, seeded.run_id)
        prompts = [f'{{trigger}}, a man at a desk. Speech: "{text}". Sounds: a quiet room.' for text in SAID]
        run.config = {**run.config, "validation": {"prompts": prompts}}
        for sample in session.query(Sample).filter(Sample.run_id == seeded.run_id):
            said = SAID[sample.prompt_index]
            audio = {("base", 0): _speech(said), ("lora", CLEAN_STEP): _speech(said, VOICE),
                     ("lora-audio-off", CLEAN_STEP): _speech(said, VOICE),
                     ("lora", BUZZ_STEP): _speech(OTHER_WORDS, OTHER_VOICE, buzz_db=12.0),
                     ("lora-audio-off", BUZZ_STEP): (0.2 * np.random.default_rng(0).standard_normal(2 * RATE)).clip(-1, 1)
                     }[(sample.variant, sample.step)]
            soundfile.write(str(data_dir / sample.wav), audio, RATE)
    return seeded


def _samples(api, run_id: int) -> dict:
    body = api.get(f"/api/v1/runs/{run_id}").json()
    return body, {(s["step"], s["prompt_index"], s["variant"]): s["metrics"] for s in body["samples"]}


def test_the_job_measures_voice_words_and_quality_and_the_page_shows_them(api, browser_client, voiced):
    """One job run (ten samples) checked through the run API, the compare API and the page; then a
    sample stored before the voice measures existed gets them on the next run."""
    assert api.post(f"/api/v1/runs/{voiced.run_id}/sample-metrics").status_code == 202
    assert run_pending_jobs() == ["succeeded"]
    _check_run_api(api, voiced.run_id)
    _check_compare_api(api, voiced.run_id)
    _check_page(browser_client, voiced.run_id)
    _check_upgrade(api, voiced.run_id)


def _check_run_api(api, run_id: int) -> None:
    body, by = _samples(api, run_id)
    assert body["voice_reference"] == {"clips": 3, "speech_s": 4.5}
    for index, said in enumerate(SAID):
        base, good, bad = by[(0, index, "base")], by[(CLEAN_STEP, index, "lora")], by[(BUZZ_STEP, index, "lora")]
        assert good["speaker_similarity"] >= 0.75 and good["speaker_similarity"] > bad["speaker_similarity"] + 0.15
        assert good["expected"] == said and good["wer"] <= 0.2 < 0.6 <= bad["wer"]
        assert good["quality_mos"] > bad["quality_mos"] + 0.5
        assert good["voice_reasons"] == {} and good["flags"] == []
        assert {"buzz", "voice_moved_away", "quality_dropped", "intelligibility_dropped"} <= {f["code"] for f in bad["flags"]}
        assert base["speaker_similarity"] is not None and "flags" not in base
        silent = by[(BUZZ_STEP, index, "lora-audio-off")]  # noise: nothing to measure, and why
        assert silent["speaker_similarity"] is None and silent["wer"] is None and silent["quality_mos"] is None
        assert silent["voice_reasons"]["quality_mos"].startswith("no speech in the sample")


def _check_compare_api(api, run_id: int) -> None:
    compare = api.get(f"/api/v1/runs/{run_id}/compare").json()
    assert compare["best_checkpoint_suggestion"]["step"] == CLEAN_STEP
    charts = {c["metric"]: c for c in compare["charts"]}
    assert [step for step, _ in charts["speaker_similarity"]["series"]["lora"]] == [BUZZ_STEP, CLEAN_STEP]
    assert charts["speaker_similarity"]["series"]["base"] and charts["speaker_similarity"]["guide"] == 0.75
    assert [BUZZ_STEP, "voice_moved_away"] in charts["speaker_similarity"]["flags"]
    assert charts["quality_mos"]["flags"] == [[BUZZ_STEP, "quality_dropped"]]
    assert charts["wer"]["flags"] == [[BUZZ_STEP, "intelligibility_dropped"]]


def _check_page(browser_client, run_id: int) -> None:
    html = browser_client.get(f"/runs/{run_id}/compare?audio_off=1").text
    assert len(re.findall(r"data-chart='", html)) == 10
    for label in ("Voice similarity to the dataset", "Speech quality (DNSMOS, 1-5)", "Word error rate"):
        assert f"<figcaption>{label}</figcaption>" in html
    flag_list = html[html.index('id="flag-list"'):]
    assert f"step {BUZZ_STEP}, prompt 1:" in flag_list and "voice_moved_away" in flag_list
    assert "quality_dropped" in flag_list and "intelligibility_dropped" in flag_list
    assert re.search(r'id="best-suggestion">Suggested: <strong>step 4</strong>, highest speaker similarity', html)
    assert "How the suggestion is chosen" in html and "3 clips with a voice, 4.5 s of speech" in html
    assert 'class="voice-speaker_similarity"' in html and 'title="no speech in the sample' in html


def _check_upgrade(api, run_id: int) -> None:
    from core.db import session_scope
    from core.models import Sample

    voice_keys = ("speaker_similarity", "wer", "heard", "expected", "quality_mos", "quality_sig", "quality_bak",
                  "voice_reasons")
    with session_scope() as session:  # as stored before this feature: no voice measures, audio flags only
        sample = session.query(Sample).filter_by(run_id=run_id, step=BUZZ_STEP, variant="lora").first()
        old = {k: v for k, v in sample.metrics.items() if k not in voice_keys}
        old["flags"] = [f for f in old["flags"] if f["code"] == "buzz"]
        sample.metrics, sample_id = old, sample.id
    assert api.post(f"/api/v1/runs/{run_id}/sample-metrics").status_code == 202
    assert run_pending_jobs() == ["succeeded"]
    with session_scope() as session:
        metrics = session.get(Sample, sample_id).metrics
    assert metrics["quality_mos"] is not None and metrics["voice_distance"] == old["voice_distance"]
    assert {"buzz", "quality_dropped", "voice_moved_away"} <= {f["code"] for f in metrics["flags"]}


def test_a_toy_runs_noise_samples_get_reasons_and_the_run_its_voice_reference(api, media, migrated_env):
    """End to end: the probe job embeds the clips' voices, the toy run's samples (random noise) are
    measured by the follow-up job, and each voice measure is None with the reason."""
    from tests.unit.web.training_support import preprocessed, ready_dataset, toy_config

    dataset = ready_dataset(api, media, count=2)
    preprocessed(api, dataset["id"], model="toy")
    created = api.post("/api/v1/runs", json={"dataset_id": dataset["id"], "config": toy_config(api, dataset["id"])})
    assert created.status_code == 201 and run_pending_jobs() == ["succeeded"]
    run = api.get(f"/api/v1/runs/{created.json()['id']}").json()
    assert run["voice_reference"]["clips"] == 2 and run["voice_reference"]["speech_s"] > 2
    assert run["samples"] and all(s["metrics"] for s in run["samples"])
    for sample in run["samples"]:
        metrics = sample["metrics"]
        assert [metrics[k] for k in ("speaker_similarity", "wer", "quality_mos")] == [None, None, None]
        assert set(metrics["voice_reasons"]) == {"speaker_similarity", "wer", "quality_mos"}
        assert metrics["voice_reasons"]["wer"].startswith("no speech in the sample")


def test_the_suggestion_takes_the_most_similar_unflagged_checkpoint_ties_to_the_later_step():
    from types import SimpleNamespace

    from core.services.voice_metrics import suggest_best_checkpoint

    def run(*samples, steps=(100, 200, 300)):
        return SimpleNamespace(checkpoints=[SimpleNamespace(step=s) for s in steps], samples=[
            SimpleNamespace(variant=variant, step=step, metrics=metrics) for variant, step, metrics in samples])

    quality = [{"code": "quality_dropped", "severity": "warning"}]
    voice = [{"code": "voice_not_theirs", "severity": "warning"}]
    samples = [("lora", 100, {"speaker_similarity": 0.70, "flags": voice}), ("lora", 200, {"speaker_similarity": 0.90, "flags": quality}),
               ("lora", 300, {"speaker_similarity": 0.82, "flags": []}), ("lora", 300, {"speaker_similarity": 0.84, "flags": []}),
               ("base", 0, {"speaker_similarity": 0.95})]
    assert suggest_best_checkpoint(run(*samples))["step"] == 300  # 200 sounds closer but lost quality
    tie = [("lora", 100, {"speaker_similarity": 0.831, "flags": []}), ("lora", 300, {"speaker_similarity": 0.829, "flags": []})]
    assert suggest_best_checkpoint(run(*tie))["step"] == 300
    unrated = suggest_best_checkpoint(run(("lora", 100, {"speaker_similarity": None, "flags": []}),
                                          ("lora", 200, {"flags": [{"code": "buzz", "severity": "error"}]})))
    assert unrated["step"] == 100 and unrated["speaker_similarity"] is None and "no speaker similarity" in unrated["why"]
    assert suggest_best_checkpoint(run(("lora", 100, {"flags": quality}))) is None
    assert suggest_best_checkpoint(run(("lora", 100, {}), steps=())) is None  # unmeasured, no checkpoint
