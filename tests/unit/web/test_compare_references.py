"""The compare grid's "Training clip" for a prompt is one a person would pick: a clean clip saying the
prompt's words where one does, never one with an error or audio-quality finding; the cell says why
and shows its measures like the samples' (issue 19)."""

from __future__ import annotations

import re

from tests.unit.web.compare_support import TRIGGER, seed_run, speech_wav
from tests.unit.web.helpers import run_pending_jobs

PROMPTS = ['{trigger}, a woman at a desk. Speech: "Hello there, how are you today?"',
           '{trigger}, a woman at a desk. Speech: "Good morning to you."']
CLIPPING = {"code": "clipping", "severity": "warning", "message": "clipped", "detail": {}}
SILENT = {"code": "silent_audio", "severity": "error", "message": "silent", "detail": {}}
# (name, words, findings): the clipped and the silent one say the first prompt's words too.
CLIPS = [("clipped.mp4", "hello there how are you today", [CLIPPING]),
         ("silent.mp4", "Hello there, how are you today?", [SILENT]),
         ("other.mp4", "we are going to the store", []),
         ("same.mp4", "Hello there; how are you today", [])]


def _seed(findings_of=lambda findings: findings):
    """seed_run's run with these prompts and four decoded training clips (rows with findings)."""
    from core.config import get_settings
    from core.db import session_scope
    from core.models import Clip, PreprocessRun, Sample, TrainingRun

    data_dir = get_settings().data_dir
    with session_scope() as session:
        seeded = seed_run(session, data_dir, audio_off=False)
    with session_scope() as session:
        prep = session.get(PreprocessRun, seeded.preprocess_run_id)
        items = []
        for index, (name, words, findings) in enumerate(CLIPS):
            clip = Clip(dataset_id=seeded.dataset_id, original_name=name, stored_path=f"clips/{name}",
                        content_hash=f"{index:064d}", size_bytes=1, status="ready", findings=findings_of(findings))
            session.add(clip)
            session.flush()
            decoded = f"{prep.output_dir}/.precomputed/decoded_audio/{clip.id}.wav"
            speech_wav(data_dir / decoded, text=words)
            items.append({"clip_id": clip.id, "name": name, "media": name, "status": "ok", "decoded_audio": decoded,
                          "caption": f'{TRIGGER}, a woman at a desk. Speech: "{words}".'})
        prep.clip_results = items
        run = session.get(TrainingRun, seeded.run_id)
        run.config = {**run.config, "validation": {"prompts": PROMPTS}}
        for sample in session.query(Sample).filter(Sample.run_id == seeded.run_id):
            sample.metrics = {"error": "left unmeasured by this test"}  # only the references are measured
    return seeded


def _references(api, run_id: int) -> list[dict]:
    grid = api.get(f"/api/v1/runs/{run_id}/compare").json()
    return [row["cells"][0] for row in grid["rows"]]


def test_references_are_clean_clips_with_the_prompts_words_measured_like_samples(api, browser_client, migrated_env):
    seeded = _seed()
    same, other = _references(api, seeded.run_id)
    assert same["label"] == "training clip same.mp4" and same["note"].startswith("Says the prompt's words")
    # no clean clip says "good morning": a clean one for the voice, never the clipped or silent take
    assert other["label"] in ("training clip same.mp4", "training clip other.mp4")
    assert other["note"].startswith("No clean clip says the prompt's words")

    assert api.post(f"/api/v1/runs/{seeded.run_id}/sample-metrics").status_code == 202
    assert run_pending_jobs() == ["succeeded"]
    same = _references(api, seeded.run_id)[0]
    metrics = same["metrics"]
    assert metrics["integrated_lufs"] is not None and metrics["speech_ratio"] > 0.5
    assert metrics["voice_distance"] is not None and metrics["wer"] is not None and "mfcc" not in metrics
    html = browser_client.get(f"/runs/{seeded.run_id}/compare").text
    cell = re.search(r'<td class="cell col-reference[^>]*data-row="0".*?</td>', html, re.S).group(0)
    assert "Says the prompt&#39;s words" in cell and "<dt>LUFS</dt>" in cell and "<dt>WER</dt>" in cell


def test_no_reference_when_every_clip_has_audio_findings_and_the_cell_says_why(api, browser_client, migrated_env):
    seeded = _seed(lambda findings: findings or [CLIPPING])
    first, _second = _references(api, seeded.run_id)
    assert first["missing"] and first["audio_url"] is None
    assert first["note"] == ("No clean training clip to compare with: clipped.mp4 (clipping); silent.mp4 "
                             "(silent_audio); other.mp4 (clipping); same.mp4 (clipping).")
    html = browser_client.get(f"/runs/{seeded.run_id}/compare").text
    assert "No clean training clip to compare with: clipped.mp4 (clipping)" in html
