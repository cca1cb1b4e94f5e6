"""The dataset compare view puts runs of different training modes side by side: each run's mode and
model under its columns, and a summary of each run's voice measures at its judged checkpoint, the
text-to-audio-video samples beside the v2a voice test, so which way of training learned the voice
best is one page."""

from __future__ import annotations

import re

import pytest

from tests.unit.web.compare_support import BUZZ_STEP, CLEAN_STEP, seed_run

# (speaker similarity, speech quality, wer) of every LoRA sample of a run at a step
AV_MEASURES = {BUZZ_STEP: (0.41, 2.10, 0.50), CLEAN_STEP: (0.62, 3.20, 0.25)}
VOICE_MEASURES = {BUZZ_STEP: (0.70, 3.05, 0.30), CLEAN_STEP: (0.83, 3.40, 0.12)}
VOICE_V2A = {BUZZ_STEP: (0.74, 3.00, 0.20), CLEAN_STEP: (0.88, 3.55, 0.10)}


def _measures(similarity: float, mos: float, wer: float) -> dict:
    return {"speaker_similarity": similarity, "quality_mos": mos, "wer": wer, "integrated_lufs": -20.0, "flags": []}


@pytest.fixture
def two_modes(migrated_env):
    """One dataset: an audio_video run on toy (step 4 marked best) and a voice run on toy-2.5 with its
    v2a voice-test samples (no mark: judged at the suggested checkpoint)."""
    from core.config import get_settings
    from core.db import session_scope
    from core.models import Sample, TrainingRun

    data_dir = get_settings().data_dir
    with session_scope() as session:
        av = seed_run(session, data_dir, audio_off=False)
        voice = seed_run(session, data_dir, audio_off=False, dataset_id=av.dataset_id)
    with session_scope() as session:
        av_run, voice_run = session.get(TrainingRun, av.run_id), session.get(TrainingRun, voice.run_id)
        av_run.best_checkpoint_step = CLEAN_STEP
        voice_run.config = {**voice_run.config, "model": "toy-2.5", "training": {"mode": "voice"}}
        for run, table in ((av_run, AV_MEASURES), (voice_run, VOICE_MEASURES)):
            for sample in run.samples:
                sample.metrics = _measures(*table[sample.step]) if sample.variant == "lora" else {"flags": []}
        for step, values in VOICE_V2A.items():
            sample = voice_run.samples[0]
            session.add(Sample(run_id=voice_run.id, step=step, prompt_index=0, seed=42, variant="v2a-lora",
                               wav=sample.wav, mp4=sample.mp4, source_clip_id=1, metrics=_measures(*values)))
        session.commit()
    return av, voice


def _summary_row(html: str, run_id: int) -> str:
    match = re.search(rf'<tr data-run="{run_id}"[^>]*>(.*?)</tr>', html, re.S)
    assert match, f"no summary row for run #{run_id}"
    return match.group(0)


def _cell(row: str, measure: str) -> str:
    match = re.search(rf'data-measure="{re.escape(measure)}">(.*?)</td>', row, re.S)
    assert match, measure
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


def test_dataset_compare_shows_each_runs_mode_and_voice_measures(browser_client, two_modes):
    av, voice = two_modes
    html = browser_client.get(f"/datasets/{av.dataset_id}/compare").text
    assert "Which way of training learned the voice best?" in html

    av_row, voice_row = _summary_row(html, av.run_id), _summary_row(html, voice.run_id)
    assert 'data-mode="audio_video"' in av_row and "Audio and video" in av_row and "<code>toy</code>" in av_row
    assert 'data-mode="voice"' in voice_row and "Voice (video-to-audio)" in voice_row and "<code>toy-2.5</code>" in voice_row
    assert f"step {CLEAN_STEP}" in av_row and "marked best" in av_row
    assert f"step {CLEAN_STEP}" in voice_row and "suggested" in voice_row  # highest similarity, nothing flagged

    assert _cell(av_row, "prompts.speaker_similarity") == "0.62"
    assert _cell(av_row, "prompts.quality_mos") == "3.20" and _cell(av_row, "prompts.wer") == "0.25"
    assert _cell(av_row, "v2a.speaker_similarity") == "–"  # this run rendered no voice test
    assert _cell(voice_row, "prompts.speaker_similarity") == "0.83 best"
    assert _cell(voice_row, "v2a.speaker_similarity") == "0.88" and _cell(voice_row, "v2a.quality_mos") == "3.55"
    assert _cell(voice_row, "prompts.wer") == "0.12 best"

    # the grid's columns say which run (mode, model) they belong to; the voice run's v2a samples are in its columns
    assert html.count('class="mode-label" data-mode="voice"') == 1 + 2  # summary + its two checkpoint columns
    assert "Voice (video-to-audio) · toy-2.5" in html and "Audio and video · toy" in html
    assert 'id="v2a-rows"' in html


def test_a_run_without_measures_is_summarised_without_numbers(browser_client, migrated_env):
    from core.config import get_settings
    from core.db import session_scope

    with session_scope() as session:
        seeded = seed_run(session, get_settings().data_dir, audio_off=False)
    html = browser_client.get(f"/datasets/{seeded.dataset_id}/compare").text
    row = _summary_row(html, seeded.run_id)
    assert "Audio and video" in row and f"step {CLEAN_STEP}" in row and "latest" in row
    assert _cell(row, "prompts.speaker_similarity") == "–" and "best" not in row
