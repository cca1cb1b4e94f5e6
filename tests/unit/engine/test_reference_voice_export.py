"""A reference_voice LoRA really trained on the toy, exported and key-reported as the studio does:
the zip holds the official (ComfyUI) file, the reference clip the validation used, cut as training
fed it, and a note of which ComfyUI node takes which file; the key report calls it a
reference-voice LoRA whose official keys load in ComfyUI's layout and whose diffusers keys do not."""

from __future__ import annotations

import io
import json
import shutil
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch

from core.names import REFERENCE_PAIRS_NAME
from core.recipe import reference_export
from core.recipe.architecture import AUDIO_FAMILIES
from tests.unit.engine.test_reference_voice import BUCKET, _config, _fresh, precomputed  # noqa: F401 - fixture
from tests.unit.web.helpers import run_pending_jobs
from worker.engine.lora.checkpoint import checkpoint_paths
from worker.engine.lora.files import read_lora_file
from worker.engine.lora.verify import verify_lora_file

STEP = 2


@pytest.fixture(scope="module")
def trained(tmp_path_factory, engine_data_dir, precomputed):  # noqa: F811 - the imported fixture
    from worker.engine.train import train_run

    torch.set_num_threads(2)
    output = tmp_path_factory.mktemp("refexport") / "run"
    config = _config(output, precomputed, optimization={"steps": STEP, "learning_rate": 1e-2},
                     checkpoints={"interval": STEP}, validation={"prompts": []})
    result = train_run(config, data_dir=engine_data_dir, pipeline=_fresh(engine_data_dir))
    assert result.status == "completed" and result.checkpoints == [STEP], result
    paths = checkpoint_paths(output, STEP)
    return {"official": paths.official, "diffusers": paths.diffusers}


@pytest.fixture
def studio(migrated_env, precomputed, trained):  # noqa: F811 - the imported fixture
    """The run in the studio's database: its preprocess folder (the clips, dataset.jsonl and the
    pairs file, as preprocessing leaves them) and its step-2 checkpoint's two files."""
    from core.config import get_settings
    from core.db import session_scope
    from core.models import Checkpoint, Dataset, PreprocessRun, TrainingRun

    data_dir, source = get_settings().data_dir, precomputed.parent
    with session_scope() as session:
        dataset = Dataset(name="Voices", trigger="ema_voice", buckets=BUCKET)
        session.add(dataset)
        session.flush()
        names = sorted(p.relative_to(source).as_posix() for p in (source / "clips").glob("*.mp4"))
        prep = PreprocessRun(dataset_id=dataset.id, model="toy", buckets=BUCKET, trigger="ema_voice",
                             fingerprint="f" * 64, output_dir="preprocess/1",
                             clip_results=[{"clip_id": 10 + i, "name": f"take {name}", "media": name, "bucket": BUCKET,
                                            "status": "ok"} for i, name in enumerate(names)])
        session.add(prep)
        session.flush()
        folder = data_dir / prep.output_dir
        shutil.copytree(source / "clips", folder / "clips")
        shutil.copyfile(source / "dataset.jsonl", folder / "dataset.jsonl")
        (folder / ".precomputed").mkdir()
        shutil.copyfile(precomputed / REFERENCE_PAIRS_NAME, folder / ".precomputed" / REFERENCE_PAIRS_NAME)
        run = TrainingRun(dataset_id=dataset.id, preprocess_run_id=prep.id, output_dir="runs/1",
                          config={"model": "toy", "training": {"mode": "reference_voice"},
                                  "data": {"trigger": "ema_voice", "buckets": BUCKET},
                                  "lora": {"rank": 4, "alpha": 4}, "optimization": {"steps": STEP}})
        session.add(run)
        session.flush()
        files = {}
        for layout, path in trained.items():
            files[layout] = f"{run.output_dir}/checkpoints/{path.name}"
            (data_dir / files[layout]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, data_dir / files[layout])
        session.add(Checkpoint(run_id=run.id, step=STEP, files=files))
        session.commit()
        return {"run_id": run.id, "folder": folder, "data_dir": data_dir}


def _export(run_id: int, layout: str) -> dict[str, bytes]:
    from core.db import session_scope
    from core.models import TrainingRun
    from core.services.export import build_export

    with session_scope() as session:
        path, _ = build_export(session, session.get(TrainingRun, run_id), STEP, layout)
    with zipfile.ZipFile(path) as archive:
        return {name.rsplit("/", 1)[1]: archive.read(name) for name in archive.namelist()}


def _validation_reference(precomputed):  # noqa: F811 - the imported fixture
    """The cache name and source wav of the reference the run's validation samples with."""
    from worker.engine.data.dataset import PrecomputedDataset
    from worker.engine.reference_sampling import validation_references

    own, _ = validation_references(PrecomputedDataset(precomputed))
    return own, precomputed.parent / own.replace(".pt", ".wav")


def test_the_comfy_zip_holds_the_official_lora_the_reference_clip_and_the_node_note(
        studio, trained, precomputed, engine_data_dir, tmp_path):  # noqa: F811 - the imported fixture
    files = _export(studio["run_id"], "comfy")
    lora_name = f"run{studio['run_id']}_step{STEP:05d}_comfy.safetensors"
    assert sorted(files) == sorted([lora_name, reference_export.REFERENCE_WAV_NAME, "README.md", "model_card.json"])

    lora = tmp_path / lora_name
    lora.write_bytes(files[lora_name])
    tensors, metadata = read_lora_file(lora)
    original, _ = read_lora_file(trained["official"])
    assert set(tensors) == set(original) and all(torch.equal(tensors[k], original[k]) for k in tensors)
    assert reference_export.comfy_key_problems(tensors) == []  # diffusion_model.<ltx-core layer>.lora_A/B
    assert all(any(f".{family}." in key for family in AUDIO_FAMILIES) for key in tensors)
    assert metadata["avlora_training_mode"] == "reference_voice"
    note = json.loads(metadata[reference_export.REFERENCE_INFO_KEY])
    assert note["node"] == "LTXVReferenceAudio" and note["reference_file"] == reference_export.REFERENCE_WAV_NAME
    report = verify_lora_file(lora, lambda: _fresh(engine_data_dir))
    assert report.ok and report.sides == ["audio"], report.problems

    # the reference: the validation's own, its first seconds as training fed them (73 frames at 24 fps)
    own, source_wav = _validation_reference(precomputed)
    clip, rate = sf.read(io.BytesIO(files[reference_export.REFERENCE_WAV_NAME]), dtype="float32")
    source, source_rate = sf.read(source_wav, dtype="float32")
    assert rate == source_rate == 16000 and clip.ndim == 1  # a mono clip stays mono
    assert len(clip) == round(73 / 24 * rate)
    assert np.allclose(clip, source[:len(clip)], atol=2 / 32767)
    card = json.loads(files["model_card.json"])
    entry = card["reference_voice"]
    assert entry["clip"] == f"take {own.replace('.pt', '.mp4')}" and entry["seconds"] == pytest.approx(3.04, abs=0.01)
    assert 2.0 <= entry["speech_s"] <= entry["seconds"]  # espeak speech, measured by the VAD
    assert card["files"] == [lora_name, reference_export.REFERENCE_WAV_NAME, "README.md", "model_card.json"]
    readme = files["README.md"].decode()
    for name in (lora_name, reference_export.REFERENCE_WAV_NAME, "LoraLoaderModelOnly", "LTXVReferenceAudio",
                 "LTXVAudioVAELoader", "LoadAudio", "identity_guidance_scale"):
        assert name in readme, name


def test_without_its_pairs_file_the_export_still_ships_the_lora_and_says_why_no_clip(studio):
    (studio["folder"] / ".precomputed" / REFERENCE_PAIRS_NAME).unlink()
    files = _export(studio["run_id"], "diffusers")
    assert sorted(files) == ["README.md", "model_card.json", "pytorch_lora_weights.safetensors"]
    entry = json.loads(files["model_card.json"])["reference_voice"]
    assert entry["file"] is None and "reference_pairs.json" in entry["why_no_file"]
    readme = files["README.md"].decode()
    assert "No reference clip is in this zip" in readme and "export this checkpoint with layout **comfy**" in readme


def test_the_key_report_names_a_reference_voice_lora_and_the_layout_comfyui_loads(studio):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from core.db import session_scope
    from core.models import Checkpoint
    from core.services.lora_check import checkpoint_key_report, queue_checkpoint_key_report

    with session_scope() as session:
        queue_checkpoint_key_report(session, session.query(Checkpoint).filter_by(run_id=studio["run_id"]).one())
    assert run_pending_jobs() == ["succeeded"]
    with session_scope() as session:
        report = checkpoint_key_report(session, session.query(Checkpoint).filter_by(run_id=studio["run_id"]).one())
    assert report["status"] == "done" and report["ok"]
    official, diffusers = report["reports"]["official"], report["reports"]["diffusers"]
    assert official["training_mode"] == diffusers["training_mode"] == "reference_voice"
    assert official["reference_voice"]["comfy_loads"] and not official["reference_voice"]["problems"]
    assert f"{official['total_keys']} keys are in the official layout ComfyUI loads" in official["reference_voice"]["sentence"]
    assert not diffusers["reference_voice"]["comfy_loads"]
    assert "diffusers layout" in diffusers["reference_voice"]["sentence"]
    page = TestClient(create_app()).get(f"/runs/{studio['run_id']}/checkpoints/{STEP}/key-report").text
    assert page.count('class="reference-voice-line" data-comfy="true"') == 1
    assert page.count('class="reference-voice-line" data-comfy="false"') == 1


def test_the_export_describes_the_placement_and_rate_the_engine_uses():
    from worker.engine.data.audio import MEL_SAMPLE_RATE
    from worker.engine.step.reference import REFERENCE_GAP_S

    assert reference_export.REFERENCE_GAP_S == REFERENCE_GAP_S  # the README and header say where it goes
    assert reference_export.REFERENCE_RATE == MEL_SAMPLE_RATE  # the rate the audio VAE's log-mel is made at
