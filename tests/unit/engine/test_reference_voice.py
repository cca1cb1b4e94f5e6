"""reference_voice on the toy: pairs by voice from espeak-ng speakers, the reference tokens in
context (clean, before the target, outside the loss), training, resume, export and verify."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors import safe_open

from core.names import REFERENCE_PAIRS_NAME
from core.recipe.reference_pairs import PairPlan
from tests.unit.engine._train_data import TRIGGER, run_config
from tests.unit.engine.conftest import write_clip
from worker.engine.data.dataset import collate
from worker.engine.model.pipelines import load_pipeline
from worker.engine.progress import CancelToken, TrainCallbacks
from worker.engine.step.flow import compute_step_losses, prepare_flow_inputs, ready_for_step
from worker.engine.step.reference import REFERENCE_GAP_S
from worker.engine.step.timesteps import UniformSampler
from worker.engine.train import Trainer, train_run
from worker.speech.audio import SAMPLE_RATE
from worker.speech.synth import BENCH_SENTENCES, espeak

BUCKET = "64x64x73"  # 3 s: enough speech for a reference (2 s or more)
VOICES = {"low": ("en-us+m3", 35), "high": ("en-gb+f4", 75)}


def _speech(voice: str, index: int) -> np.ndarray:
    name, pitch = VOICES[voice]
    sentences = BENCH_SENTENCES[2 * index:2 * index + 2]
    return np.concatenate([espeak(s, name, pitch=pitch) for s in sentences])


@pytest.fixture(scope="module")
def precomputed(tmp_path_factory, engine_data_dir, toy_pipeline):
    """Four clips, two per espeak-ng voice, preprocessed with the toy model (the real path)."""
    return build_voices(tmp_path_factory.mktemp("voices"), engine_data_dir, toy_pipeline)


def build_voices(root, data_dir, pipeline):
    """Write four clips, two per espeak-ng voice, preprocess them with ``pipeline`` (the toy's) and
    return the ``.precomputed`` folder (also the GPU test's dataset: tests/gpu/test_modes_cuda.py)."""
    from worker.engine.data.preprocess import preprocess_dataset

    rows = []
    for voice in VOICES:
        for index in range(2):
            stem = f"{voice}_{index}"
            write_clip(root / "clips" / f"{stem}.mp4", frames=73, audio=None)
            sf.write(root / "clips" / f"{stem}.wav", _speech(voice, index), SAMPLE_RATE)
            rows.append({"caption": f"{TRIGGER}, a person speaks", "media_path": f"clips/{stem}.mp4",
                         "audio": f"clips/{stem}.wav"})
    (root / "dataset.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = preprocess_dataset(root / "dataset.jsonl", out_dir=root, preset="toy", buckets=BUCKET, trigger=TRIGGER,
                                data_dir=data_dir, pipeline=pipeline)
    assert result.ok, result
    return root / ".precomputed"


def _config(path, precomputed, **sections):
    return run_config(path, precomputed, training={"mode": "reference_voice"},
                      data={"buckets": BUCKET}, **sections)


def _fresh(engine_data_dir):
    return load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32)


@pytest.fixture(scope="module")
def trainer(tmp_path_factory, engine_data_dir, precomputed):
    return Trainer(_config(tmp_path_factory.mktemp("run") / "run", precomputed), data_dir=engine_data_dir,
                   pipeline=_fresh(engine_data_dir))


def test_pairs_keep_to_the_same_voice_and_never_to_the_clip_itself(trainer, precomputed):
    plan = PairPlan.from_json((precomputed / REFERENCE_PAIRS_NAME).read_text())
    assert sorted(plan.pairs) == [f"clips/{v}_{i}.pt" for v in ("high", "low") for i in range(2)]
    assert not plan.unpaired
    for target, reference in plan.pairs.items():
        assert reference != target
        assert reference.split("_")[0] == target.split("_")[0], plan.pairs  # same espeak voice
        assert plan.speech_s[reference] >= 2.0
    assert [trainer.references.reference_name(i) for i in range(4)] == [plan.pairs[n] for n in trainer.dataset.names]


def _step(trainer, index=0, reference=None):
    batch = ready_for_step(trainer.transformer, collate([trainer.dataset[index]], "cpu", torch.float32))
    inputs = prepare_flow_inputs(batch, UniformSampler(), torch.Generator().manual_seed(5))
    tokens = trainer.references.tokens([index], "cpu", torch.float32) if reference is None else reference
    from worker.engine.step.reference import with_reference

    return batch, inputs, with_reference(trainer.transformer, batch, inputs, tokens), tokens


def test_the_reference_goes_in_front_clean_at_timestep_zero_before_the_target(trainer):
    batch, inputs, (ref_batch, ref_inputs), tokens = _step(trainer)
    n_ref, n_target = tokens.shape[1], inputs.noisy_audio.shape[1]
    assert ref_inputs.noisy_audio.shape[1] == n_ref + n_target
    assert torch.equal(ref_inputs.noisy_audio[:, :n_ref], tokens)  # clean
    assert torch.equal(ref_inputs.noisy_audio[:, n_ref:], inputs.noisy_audio)
    assert float(ref_inputs.audio_timesteps[:, :n_ref].abs().max()) == 0.0
    assert torch.allclose(ref_inputs.audio_timesteps[:, n_ref:], inputs.audio_sigma.view(-1, 1).expand(1, n_target))
    coords = ref_batch.audio_coords[0, 0]
    assert float(coords[n_ref - 1, 1]) == pytest.approx(-REFERENCE_GAP_S) and float(coords[n_ref:, 0].min()) >= 0.0
    assert torch.equal(ref_batch.audio_coords[:, :, n_ref:], batch.audio_coords)


def test_the_loss_ignores_the_reference_tokens_but_the_target_hears_them(trainer):
    transformer = trainer.transformer
    _, _, (ref_batch, ref_inputs), tokens = _step(trainer)
    kept = {}

    def keep(_module, _args, output):
        output[1].retain_grad()
        kept["audio"] = output[1]

    handle = transformer.register_forward_hook(keep)
    try:
        losses = compute_step_losses(transformer, ref_batch, ref_inputs)
        losses.total.backward()
    finally:
        handle.remove()
        transformer.zero_grad(set_to_none=True)
    grad, n_ref = kept["audio"].grad, tokens.shape[1]
    assert float(grad[:, :n_ref].abs().max()) == 0.0  # the reference's output is never scored
    assert float(grad[:, n_ref:].abs().min(dim=-1).values.max()) > 0.0
    # ... yet the target's prediction depends on the reference (it is in context)
    _, _, (_, other_inputs), _ = _step(trainer, reference=torch.randn_like(tokens) * 2)
    with torch.no_grad():
        same = compute_step_losses(transformer, ref_batch, ref_inputs).audio
        other = compute_step_losses(transformer, ref_batch, other_inputs).audio
    assert same != pytest.approx(other, rel=1e-6)


class _Cancel(TrainCallbacks):
    def __init__(self, at, cancel):
        self.at, self.cancel = at, cancel

    def on_progress(self, event):
        if event.step == self.at:
            self.cancel.cancel()


def test_a_reference_voice_run_trains_resumes_and_its_files_verify(tmp_path, engine_data_dir, precomputed, capsys):
    from avlora.cli import main as avlora

    torch.set_num_threads(1)
    sections = dict(optimization={"steps": 4}, checkpoints={"interval": 2})
    straight = train_run(_config(tmp_path / "straight", precomputed, **sections), data_dir=engine_data_dir,
                         pipeline=_fresh(engine_data_dir))
    cancel = CancelToken()
    config = _config(tmp_path / "run", precomputed, **sections)
    first = train_run(config, data_dir=engine_data_dir, pipeline=_fresh(engine_data_dir),
                      callbacks=_Cancel(2, cancel), cancel=cancel)
    second = train_run(config, data_dir=engine_data_dir, pipeline=_fresh(engine_data_dir), resume=True)
    assert first.step == 2 and second.status == "completed"
    resumed = first.losses + second.losses
    assert [s for s, _, _ in resumed] == [1, 2, 3, 4]
    for (step, video_a, audio_a), (_, video_b, audio_b) in zip(straight.losses, resumed, strict=True):
        assert video_a is not None and audio_a is not None  # the target clip: both streams scored
        assert (video_b, audio_b) == pytest.approx((video_a, audio_a), rel=1e-4, abs=1e-6), step
    checkpoints = tmp_path / "run" / "checkpoints"
    for name in ("lora_weights_step_00004.safetensors", "lora_weights_step_00004.diffusers.safetensors"):
        code = avlora(["verify-lora", str(checkpoints / name), "--preset", "toy", "--data-dir", str(engine_data_dir),
                       "--json"])
        report = json.loads(capsys.readouterr().out)
        assert code == 0 and report["ok"], report
        assert report["sides"] == ["audio"]
    with safe_open(str(checkpoints / "lora_weights_step_00004.safetensors"), "pt") as handle:
        assert handle.metadata()["avlora_training_mode"] == "reference_voice"
