"""Helpers for the compare tests (not collected): a trained-looking run written straight into the
database, with small generated wavs (espeak-ng speech; one checkpoint with a buzz under it)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from tests.media_factory import speech_samples

RATE = 24000
TRIGGER = "ema_voice"
PROMPTS = ["{trigger}, a woman says hello there", "{trigger}, a woman speaks calmly"]
CLEAN_STEP, BUZZ_STEP = 4, 2  # step 2's LoRA samples carry a 100 Hz square-wave buzz


@dataclass
class SeededRun:
    dataset_id: int
    preprocess_run_id: int
    run_id: int
    data_dir: Path


def speech_wav(path: Path, *, buzz_db: float | None = None, text: str = "hello there, how are you today",
               seconds: float = 1.6) -> Path:
    """Stereo speech at -3 dBFS peak; ``buzz_db``: add a 100 Hz square wave that many dB under the peak."""
    speech = speech_samples(text, RATE)[: int(seconds * RATE)]
    mono = np.zeros(int(seconds * RATE), np.float32)
    mono[: len(speech)] = speech
    mono *= 10 ** (-3 / 20)
    if buzz_db is not None:
        t = np.arange(mono.size) / RATE
        mono = mono + 10 ** ((-3 - buzz_db) / 20) * np.sign(np.sin(2 * np.pi * 100.0 * t))
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.stack([mono, 0.9 * mono], axis=1).clip(-1, 1), RATE)
    return path


def seed_run(session, data_dir: Path, *, audio_off: bool = True, video: Path | None = None,
             dataset_id: int | None = None) -> SeededRun:
    """A dataset (unless given), a succeeded-looking preprocess run with one decoded training clip,
    and a training run with checkpoints at steps 2 and 4: base, lora and (optionally)
    lora-audio-off samples for two prompts. ``video``: an mp4 copied as every sample's video."""
    from core.models import Checkpoint, Dataset, PreprocessRun, Sample, TrainingRun

    if dataset_id is None:
        dataset = Dataset(name="Ema", trigger=TRIGGER, buckets="64x64x9")
        session.add(dataset)
        session.flush()
        dataset_id = dataset.id
    prep = PreprocessRun(dataset_id=dataset_id, model="toy", buckets="64x64x9", trigger=TRIGGER,
                         fingerprint="f" * 64, output_dir="", clip_results=[])
    session.add(prep)
    session.flush()
    prep.output_dir = f"preprocess/{prep.id}"
    decoded = f"{prep.output_dir}/.precomputed/decoded_audio/take0.wav"
    speech_wav(data_dir / decoded, text="I think we should start again")
    prep.clip_results = [{"clip_id": 1, "name": "take0.mp4", "media": "take0.mp4", "caption": f"{TRIGGER}, hi",
                          "status": "ok", "decoded_audio": decoded}]
    config = {"model": "toy", "data": {"trigger": TRIGGER, "buckets": "64x64x9"},
              "validation": {"prompts": PROMPTS}, "optimization": {"steps": 4, "learning_rate": 1e-4},
              "lora": {"rank": 4, "alpha": 4, "target_modules": ["to_k", "to_q", "to_v", "to_out.0"]}}
    run = TrainingRun(dataset_id=dataset_id, preprocess_run_id=prep.id, config=config, output_dir="")
    session.add(run)
    session.flush()
    run.output_dir = f"runs/{run.id}"
    samples_dir = data_dir / run.output_dir / "samples"

    def add(step: int, index: int, variant: str, stem: str, buzz_db: float | None) -> None:
        wav = speech_wav(samples_dir / f"{stem}.wav", buzz_db=buzz_db)
        mp4 = samples_dir / f"{stem}.mp4"
        if video is not None:
            shutil.copyfile(video, mp4)
        session.add(Sample(run_id=run.id, step=step, prompt_index=index, seed=42, variant=variant,
                           wav=str(wav.relative_to(data_dir)), mp4=str(mp4.relative_to(data_dir)), metrics={}))

    for index in range(len(PROMPTS)):
        add(0, index, "base", f"base_{index + 1:02d}", None)
        for step in (BUZZ_STEP, CLEAN_STEP):
            stem = f"step_{step:06d}_{index + 1:02d}"
            add(step, index, "lora", stem, 12.0 if step == BUZZ_STEP else None)
            if audio_off:
                add(step, index, "lora-audio-off", f"{stem}_lora-audio-off", None)
    for step in (BUZZ_STEP, CLEAN_STEP):
        ckpt = f"{run.output_dir}/checkpoints/lora_weights_step_{step:05d}"
        session.add(Checkpoint(run_id=run.id, step=step, files={"official": f"{ckpt}.safetensors",
                                                                "diffusers": f"{ckpt}.diffusers.safetensors"}))
    session.commit()
    return SeededRun(dataset_id, prep.id, run.id, data_dir)


def seed_run_with_job(status: str, *, best_step: int | None = None) -> tuple[int, int]:
    """A run written into the database (checkpoints at steps 2 and 4, only step 4's files on
    disk) whose current job is a training in ``status``; returns (run id, job id)."""
    from core.config import get_settings
    from core.db import session_scope
    from core.models import Checkpoint, Job, TrainingRun

    data_dir = get_settings().data_dir
    with session_scope() as session:
        seeded = seed_run(session, data_dir, audio_off=False)
        job = Job(kind="train", queue="gpu", status=status, params={"run_id": seeded.run_id}, total=4)
        session.add(job)
        session.flush()
        run = session.get(TrainingRun, seeded.run_id)
        run.job_id, run.best_checkpoint_step = job.id, best_step
        kept = session.query(Checkpoint).filter_by(run_id=run.id, step=CLEAN_STEP).one()
        official = data_dir / kept.files["official"]
        official.parent.mkdir(parents=True, exist_ok=True)
        official.write_bytes(b"not read by the page")
        session.commit()
        return run.id, job.id
