"""One run on several processes (issue 18), on the CPU with gloo: the real ``avlora train
--num-processes 2`` against one process with the same global batch; resume on another process
count; a cancel and a ``kill -9`` of one rank ending the whole run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from core.recipe.run_config import run_config_to_yaml
from tests.unit.engine._train_data import BUCKET, TRIGGER, run_config
from tests.unit.engine.conftest import write_clip
from worker.engine.distributed.shards import step_indices, take_rows
from worker.engine.progress import TrainCallbacks
from worker.engine.step.flow import FlowBatch
from worker.engine.train import train_run

# Per-step losses of 2 processes x batch 1 against 1 process x batch 2 (float32 on the CPU): the
# same clips, noise and LoRA; only the order of the float sums differs.
LOSS_TOLERANCE = 1e-4
TONES = (220.0, 330.0, 440.0, 550.0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, engine_data_dir, toy_pipeline):
    """Four preprocessed toy clips of one bucket (different colours and tones)."""
    from worker.engine.data.preprocess import preprocess_dataset

    root = tmp_path_factory.mktemp("dp-dataset")
    lines = []
    for index, tone in enumerate(TONES):
        name = f"clip{index}.mp4"
        write_clip(root / "clips" / name, frames=9, width=64, height=64, audio="stereo", tone_hz=tone,
                   color=(40 * index, 200 - 40 * index, 90))
        lines.append(json.dumps({"caption": f"{TRIGGER}, a square hums at {int(tone)} hertz",
                                 "media_path": f"clips/{name}"}))
    (root / "dataset.jsonl").write_text("\n".join(lines) + "\n")
    result = preprocess_dataset(root / "dataset.jsonl", out_dir=root, preset="toy", buckets=BUCKET, trigger=TRIGGER,
                                data_dir=engine_data_dir, pipeline=toy_pipeline)
    assert result.ok, result
    return root / ".precomputed"


def _config(output_dir: Path, dataset: Path, *, batch_size: int, steps: int = 6, **extra):
    # first-frame conditioning on: each clip then scores its own count of video tokens, and the ranks
    # must weigh their losses by it to compute the global batch's mean (a mean of the ranks' means
    # differed by up to 3.8% in 20 steps)
    return run_config(output_dir, dataset, optimization={"steps": steps, "batch_size": batch_size,
                                                         "learning_rate": 3e-3, **extra.pop("optimization", {})},
                      checkpoints={"interval": 3}, training={"first_frame_conditioning_p": 0.5}, **extra)


def _write(config, path: Path) -> Path:
    path.write_text(run_config_to_yaml(config))
    return path


def _cli(config_path: Path, data_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "avlora.cli", "train", str(config_path), "--json", "--device", "cpu",
            "--data-dir", str(data_dir), *extra]


def _events(stdout: str, kind: str) -> list[dict]:
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [event for event in events if event["event"] == kind]


class _Losses(TrainCallbacks):
    def __init__(self):
        self.losses = {}

    def on_progress(self, event):
        self.losses[event.step] = (event.loss_video, event.loss_audio)


def _one_process(config, data_dir, **kwargs) -> dict:
    recorder = _Losses()
    train_run(config, data_dir=data_dir, device="cpu", callbacks=recorder, **kwargs)
    return recorder.losses


def _close(a: dict, b: dict, steps) -> None:
    for step in steps:
        for x, y in zip(a[step], b[step], strict=True):
            assert abs(x - y) <= LOSS_TOLERANCE * max(1.0, abs(y)), (step, a[step], b[step])


def test_two_processes_train_what_one_process_trains_with_the_same_global_batch(tmp_path, engine_data_dir, dataset):
    config = _config(tmp_path / "two", dataset, batch_size=1)
    done = subprocess.run(_cli(_write(config, tmp_path / "two.yaml"), engine_data_dir, "--num-processes", "2"),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training on 2 processes (CPU, gloo); global batch 2" in done.stderr
    two = {e["step"]: (e["loss_video"], e["loss_audio"]) for e in _events(done.stdout, "progress")}
    assert sorted(two) == [1, 2, 3, 4, 5, 6]  # rank 0 alone reports, once per step
    assert _events(done.stdout, "result")[0]["status"] == "completed"
    checkpoints = sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir())
    assert checkpoints == [  # written once, by rank 0
        "lora_weights_step_00003.diffusers.safetensors", "lora_weights_step_00003.safetensors",
        "lora_weights_step_00006.diffusers.safetensors", "lora_weights_step_00006.safetensors",
        "training_state_step_00003.pt", "training_state_step_00006.pt"]

    one = _one_process(_config(tmp_path / "one", dataset, batch_size=2), engine_data_dir)
    _close(two, one, range(1, 7))
    # and it is not the same as training on batch 1: the test can tell the difference
    other = _one_process(_config(tmp_path / "b1", dataset, batch_size=1), engine_data_dir)
    assert any(abs(other[s][0] - one[s][0]) > 100 * LOSS_TOLERANCE for s in range(1, 7))

    # a checkpoint of 2 processes resumes on 1 with the same global batch, onto the same curve
    resumed_dir = tmp_path / "resumed"
    (resumed_dir / "checkpoints").mkdir(parents=True)
    for path in (tmp_path / "two" / "checkpoints").glob("*00003*"):
        (resumed_dir / "checkpoints" / path.name).write_bytes(path.read_bytes())
    resumed = _one_process(_config(resumed_dir, dataset, batch_size=2), engine_data_dir, resume=True)
    assert sorted(resumed) == [4, 5, 6]
    _close(resumed, two, [4, 5, 6])


def test_resume_refuses_another_global_batch_and_says_so(tmp_path, engine_data_dir, dataset):
    from worker.engine.train import TrainingError

    config = _config(tmp_path / "run", dataset, batch_size=2, steps=3)
    _one_process(config, engine_data_dir)
    with pytest.raises(TrainingError, match=r"global batch.*keep the global batch: batch_size x num_processes = 2"):
        _one_process(_config(tmp_path / "run", dataset, batch_size=1, steps=3), engine_data_dir, resume=True)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _rank_of(pid: int) -> int | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    return next((int(v[5:]) for v in environ if v.startswith(b"RANK=")), None)


def _start(tmp_path, engine_data_dir, dataset, steps: int):
    config = _config(tmp_path / "run", dataset, batch_size=1, steps=steps)
    proc = subprocess.Popen(_cli(_write(config, tmp_path / "run.yaml"), engine_data_dir, "--num-processes", "2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # wait until the ranks are training
        if line.startswith("{") and json.loads(line)["event"] == "progress" and json.loads(line)["step"] >= 4:
            break
    ranks = {_rank_of(pid): pid for pid in _children(proc.pid)}
    assert set(ranks) == {0, 1}, ranks
    return proc, ranks


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_cancel_stops_every_rank_after_a_checkpoint(tmp_path, engine_data_dir, dataset):
    proc, ranks = _start(tmp_path, engine_data_dir, dataset, steps=400)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    result = _events(out, "result")[0]
    assert result["status"] == "cancelled" and result["step"] in result["checkpoints"]  # resumable where it stopped
    assert all(_gone(pid) for pid in ranks.values())


def test_kill_of_one_rank_ends_the_run_and_marks_it_interrupted(tmp_path, engine_data_dir, dataset):
    proc, ranks = _start(tmp_path, engine_data_dir, dataset, steps=400)
    killed_at = time.monotonic()
    os.kill(ranks[1], signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert time.monotonic() - killed_at < 30
    assert proc.returncode == 1
    assert "rank 1 was killed by SIGKILL; the other ranks were ended" in err
    assert _events(out, "result")[-1]["status"] == "interrupted"
    assert all(_gone(pid) for pid in ranks.values())
    config = yaml.safe_load((tmp_path / "run" / "training_config.yaml").read_text())
    assert config["optimization"]["num_processes"] == 2  # the run folder is intact for --resume


def test_a_step_takes_its_global_batch_from_one_bucket():
    shapes = ("a",) * 5 + ("b",) * 3
    seen = []
    for step in range(5):  # one epoch: ceil(5/2) + ceil(3/2) = 5 global batches of 2
        indices = step_indices(step, 2, shapes, seed=7)
        assert len(indices) == 2 and len({shapes[i] for i in indices}) == 1
        seen += indices
    assert set(seen) == set(range(8))  # every clip in the epoch, the odd ones out filled from their bucket
    assert step_indices(9, 2, shapes, seed=7) == step_indices(9, 2, shapes, seed=7)
    assert step_indices(3, 1, ("a",) * 4, seed=7) == step_indices(3, 1, shapes[:4], seed=7)


def test_take_rows_keeps_this_ranks_rows_of_every_batch_tensor():
    batch = FlowBatch(video=torch.arange(4.0).view(4, 1, 1), audio=None, video_text=torch.zeros(4, 2, 3),
                      audio_text=torch.zeros(4, 2, 3), text_mask=torch.ones(4, 2), latent_frames=1,
                      latent_height=1, latent_width=1, fps=24.0, audio_frames=1)
    mine = take_rows(batch, slice(2, 4), 4)
    assert mine.video.flatten().tolist() == [2.0, 3.0] and mine.text_mask.shape == (2, 2)
    assert mine.latent_frames == 1 and mine.audio is None


def test_the_engine_also_runs_under_torchrun(tmp_path, engine_data_dir, dataset):
    config = _config(tmp_path / "run", dataset, batch_size=1, steps=2)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "avlora.cli", "train", str(_write(config, tmp_path / "run.yaml")), "--json", "--device", "cpu",
               "--data-dir", str(engine_data_dir)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    steps = [e["step"] for e in _events(done.stdout, "progress")]
    assert steps == [1, 2]  # torchrun prints every rank's output: only rank 0 reports
    saved = yaml.safe_load((tmp_path / "run" / "training_config.yaml").read_text())
    assert saved["optimization"]["num_processes"] == 2


def test_with_two_buckets_each_step_takes_its_clips_from_one(tmp_path, engine_data_dir, toy_pipeline):
    """Every rank collates the step's whole global batch, so a step that mixed clip shapes would
    fail there ("A batch mixes video latent shapes"): the steps of a run over two buckets go through."""
    from worker.engine.data.preprocess import preprocess_dataset

    buckets, lines = "64x64x9;64x64x17", []
    for index, frames in enumerate((9, 9, 17, 17, 17)):
        write_clip(tmp_path / "clips" / f"c{index}.mp4", frames=frames, width=64, height=64, audio="stereo",
                   tone_hz=220.0 + 110 * index)
        lines.append(json.dumps({"caption": f"{TRIGGER}, a square hums", "media_path": f"clips/c{index}.mp4"}))
    (tmp_path / "dataset.jsonl").write_text("\n".join(lines) + "\n")
    result = preprocess_dataset(tmp_path / "dataset.jsonl", out_dir=tmp_path, preset="toy", buckets=buckets,
                                trigger=TRIGGER, data_dir=engine_data_dir, pipeline=toy_pipeline)
    assert result.ok, result
    config = _config(tmp_path / "run", tmp_path / ".precomputed", batch_size=1, steps=5, data={"buckets": buckets})
    done = subprocess.run(_cli(_write(config, tmp_path / "run.yaml"), engine_data_dir, "--num-processes", "2"),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [e["step"] for e in _events(done.stdout, "progress")] == [1, 2, 3, 4, 5]  # 2 + 2 + 1 clips: both buckets
