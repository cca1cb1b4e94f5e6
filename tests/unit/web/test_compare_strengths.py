"""Per-side LoRA strengths on the compare page: a real toy run's checkpoint rendered again with its
video and audio sides scaled apart, recorded as samples of their own variant and shown as columns."""

from __future__ import annotations

import io
import re

import soundfile

from tests.unit.web.compare_support import seed_run
from tests.unit.web.helpers import run_pending_jobs
from tests.unit.web.training_support import preprocessed, ready_dataset, toy_config


def _samples(api, run_id: int) -> dict[tuple[int, int, str], dict]:
    return {(s["step"], s["prompt_index"], s["variant"]): s for s in api.get(f"/api/v1/runs/{run_id}").json()["samples"]}


def _wav(api, sample: dict):
    """The sample's PCM samples and rate, as the API serves its wav."""
    response = api.get(sample["wav_url"])
    assert response.status_code == 200
    return soundfile.read(io.BytesIO(response.content), dtype="int16")


def _stored_path(sample_id: int) -> str:
    from core.db import session_scope
    from core.models import Sample

    with session_scope() as session:
        return session.get(Sample, sample_id).wav


def test_strength_samples_render_every_prompt_and_audio_zero_matches_audio_off(api, browser_client, media):
    import torch

    from core.config import get_settings
    from worker.engine.validate import validate_run

    torch.set_num_threads(2)
    dataset = ready_dataset(api, media)
    preprocessed(api, dataset["id"], model="toy")
    config = toy_config(api, dataset["id"], steps=2, interval=2)
    config["optimization"]["learning_rate"] = 5e-2  # a LoRA that audibly changes the sound in two steps
    config["validation"].update(variants=["lora", "base", "lora-audio-off"],
                                prompts=["{trigger}, a woman says hello", "{trigger}, a woman speaks calmly"])
    run = api.post("/api/v1/runs", json={"dataset_id": dataset["id"], "config": config})
    assert run.status_code in (201, 202), run.text
    run_id = run.json()["id"]
    assert run_pending_jobs() == ["succeeded"]

    url = f"/api/v1/runs/{run_id}/checkpoints/2/strength-samples"
    off = api.post(url, json={"video_strength": 1, "audio_strength": 0})
    assert off.status_code == 202, off.text
    assert off.json()["variant"] == "lora-v1.00-a0.00" and off.json()["job_id"]
    loud = api.post(url, json={"video_strength": 1, "audio_strength": 2})
    assert loud.json()["variant"] == "lora-v1.00-a2.00"
    assert run_pending_jobs() == ["succeeded", "succeeded"]

    samples = _samples(api, run_id)
    # The training-time samples come from the float32 LoRA in memory; the checkpoint file holds bf16
    # weights. Render the audio-off samples again from the file (`avlora validate`'s path, same seed):
    # that is the LoRA a user loads, and the strength job loads the same file.
    trained_off = [_wav(api, samples[(2, index, "lora-audio-off")])[0] for index in range(2)]
    validate_run(get_settings().data_dir / f"runs/{run_id}", data_dir=get_settings().data_dir,
                 model_dir=get_settings().model_dir, step=2, variants=["lora-audio-off"])
    for index in range(2):
        audio_off, zero, doubled = (samples[(2, index, v)] for v in ("lora-audio-off", "lora-v1.00-a0.00", "lora-v1.00-a2.00"))
        assert zero["seed"] == audio_off["seed"]
        assert _stored_path(zero["id"]).endswith(f"samples/step_000002_{index + 1:02d}_lora-v1.00-a0.00.wav")
        assert api.get(zero["mp4_url"]).content[4:8] == b"ftyp"
        off_audio, off_rate = _wav(api, audio_off)
        zero_audio, zero_rate = _wav(api, zero)
        assert zero_rate == off_rate and zero_audio.size and zero_audio.tobytes() == off_audio.tobytes()  # bit for bit
        assert abs(zero_audio.astype(int) - trained_off[index].astype(int)).max() <= 4  # bf16 file vs fp32 in training: 1 LSB
        assert _wav(api, doubled)[0].tobytes() != off_audio.tobytes()  # the audio strength is applied
        assert "error" not in zero["metrics"] and "flags" in zero["metrics"]  # measured, compared with the base

    grid = api.get(f"/api/v1/runs/{run_id}/compare").json()
    assert grid["has_strengths"] and "lora-strength" not in [c["kind"] for c in grid["columns"]]
    shown = api.get(f"/api/v1/runs/{run_id}/compare?strengths=true").json()
    strength_columns = [c for c in shown["columns"] if c["kind"] == "lora-strength"]
    assert [(c["step"], c["variant"]) for c in strength_columns] == [(2, "lora-v1.00-a0.00"), (2, "lora-v1.00-a2.00")]
    column = [c["key"] for c in shown["columns"]].index(strength_columns[0]["key"])
    cell = shown["rows"][1]["cells"][column]
    assert not cell["missing"] and cell["sample_id"] == samples[(2, 1, "lora-v1.00-a0.00")]["id"]
    assert api.get(cell["audio_url"]).content == api.get(samples[(2, 1, "lora-v1.00-a0.00")]["wav_url"]).content

    html = browser_client.get(f"/runs/{run_id}/compare").text
    assert 'id="strength-form"' in html and 'id="show-strengths"' in html and "col-lora-strength" not in html
    page = browser_client.get(f"/runs/{run_id}/compare?strengths=1").text
    assert page.count('<td class="cell col-lora-strength') == 2 * 2 and "video ×1.00 · audio ×0.00" in page


def test_strength_samples_reject_out_of_range_values_and_unknown_steps(api, migrated_env):
    from core.config import get_settings
    from core.db import session_scope
    from core.models import Job

    with session_scope() as session:
        run_id = seed_run(session, get_settings().data_dir).run_id
    url = f"/api/v1/runs/{run_id}/checkpoints/4/strength-samples"
    for body in ({"video_strength": 2.5, "audio_strength": 1}, {"video_strength": 1, "audio_strength": -0.25},
                 {"video_strength": 1, "audio_strength": 0.333}, {"video_strength": "loud", "audio_strength": 1}):
        response = api.post(url, json=body)
        assert response.status_code == 422, (body, response.text)
    unknown = api.post(f"/api/v1/runs/{run_id}/checkpoints/3/strength-samples", json={"video_strength": 1, "audio_strength": 1})
    assert unknown.status_code == 422 and "no checkpoint at step 3" in unknown.json()["error"]["message"]
    assert api.post("/api/v1/runs/999/checkpoints/4/strength-samples", json={}).status_code == 404
    with session_scope() as session:
        assert session.query(Job).filter(Job.kind == "strength_samples").count() == 0
    ok = api.post(url, json={"video_strength": 0.5, "audio_strength": 1.25})
    assert ok.status_code == 202 and ok.json()["variant"] == "lora-v0.50-a1.25"
    assert re.fullmatch(r"lora-v\d\.\d\d-a\d\.\d\d", ok.json()["variant"]) and len(ok.json()["variant"]) <= 20
