"""train: run a training run on the gpu queue and record everything it produces as rows.

The run's stored config gets absolute paths on this host, then
:func:`worker.engine.train.train_run` runs with callbacks that write a Metric row and the job's
progress (step, total, ETA, GPU, memory) every step, a Checkpoint row per checkpoint, a Sample
row per validation sample and a LogLine per message. Cancel is checked between steps (the
trainer checkpoints before it stops); where no step boundary comes within a few seconds (loading
and compiling the model, encoding prompts, sampling, a step far slower than the last one) the
job context interrupts the trainer instead (:meth:`JobContext.interrupt_on_cancel`), so a cancel
is honoured within seconds in every phase. So are the "checkpoint now" / "sample now" requests
stored on the job row (:class:`JobControlRequests`). When the run folder already holds a checkpoint (a resume
after a cancel, a failure or a crash) training continues from the latest one: its rows are
reconciled with the files on disk and rows of the steps after it are dropped, since those steps
are trained again. Re-running never duplicates a row (all are upserts by step).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.config import get_settings
from core.db import session_scope
from core.models import Job, JobStatus, TrainingRun, utcnow
from core.names import LORA_OFF_VARIANTS, V2A_VARIANTS
from core.recipe.config_yaml import ConfigFileError
from core.recipe.run_config import RunConfig, parse_run_config
from core.services import run_records
from core.services.compare import queue_sample_metrics
from core.services.lora_check import queue_checkpoint_key_report
from core.services.preprocess_runs import entry_clip_ids
from worker.engine.progress import (
    CancelToken,
    CheckpointEvent,
    ControlRequests,
    ProgressEvent,
    SampleEvent,
    TrainCallbacks,
)
from worker.jobs import JobCancelled, JobContext, JobFailed, JobInterrupted

# A step boundary is waited for up to this many times the last step's duration (beyond the grace)
# before a cancel interrupts the step: a normal step ends and checkpoints, a stuck one does not.
STEP_PATIENCE = 2.0


class JobCancelToken(CancelToken):
    """Cancelled when asked directly or when the job row says ``cancelling`` (seen by the heartbeat)."""

    def __init__(self, ctx: JobContext):
        super().__init__()
        self._ctx = ctx

    def is_cancelled(self) -> bool:
        cancelled = super().is_cancelled() or self._ctx.cancel_requested
        if cancelled:  # the trainer stops here by itself, after a checkpoint: no interrupt
            self._ctx.stopping_for_cancel()
        return cancelled


class JobControlRequests(ControlRequests):
    """"Checkpoint now" / "sample now" asked on the job row: seen by the job context (heartbeat
    and every step's progress write), handed to the trainer once, removed from the row when done."""

    def __init__(self, ctx: JobContext):
        super().__init__()
        self._ctx = ctx
        self._asked_at: dict[str, str] = {}

    def take(self) -> set[str]:
        taken = super().take()
        for name, asked_at in self._ctx.take_requests().items():
            if name in self.NAMES:
                self._asked_at[name] = asked_at
                taken.add(name)
        return taken

    def done(self, name: str, step: int) -> None:  # noqa: ARG002 - the trainer's interface passes the step
        asked_at = self._asked_at.pop(name, None)
        if asked_at is not None:
            self._ctx.clear_request(name, asked_at)


def _relative(path: Path, data_dir: Path) -> str:
    path = Path(path).resolve()
    try:
        return str(path.relative_to(data_dir))
    except ValueError:
        return str(path)


class RowRecorder(TrainCallbacks):
    """Writes the trainer's events as database rows and keeps the job row's progress current.

    ``clip_ids``: cache entry name -> studio clip id (the preprocess run's snapshot), which gives
    a v2a sample its ``source_clip_id``."""

    def __init__(self, ctx: JobContext, run_id: int, data_dir: Path, cancel: CancelToken, gpu: str,
                 clip_ids: dict[str, int] | None = None):
        self.ctx, self.run_id, self.data_dir, self.cancel, self.gpu = ctx, run_id, data_dir, cancel, gpu
        self.clip_ids = clip_ids or {}
        self.step: int | None = None  # the last step trained in this attempt
        self.patience_s = 0.0  # how long a cancel waits for the next step boundary

    def on_progress(self, event: ProgressEvent) -> None:
        self.step = event.step
        self.patience_s = STEP_PATIENCE * event.step_time_s
        self.ctx.allow_time_to_stop(self.patience_s)
        with session_scope() as session:
            current = session.get(TrainingRun, self.run_id).job_id
        if current != self.ctx.job_id:  # declared dead and resumed elsewhere: two writers must not share a run
            raise JobFailed(f"This attempt was superseded by job #{current} (the run was resumed); it stopped.")
        with session_scope() as session:
            run_records.record_metric(session, self.run_id, event.step, {
                "loss": event.loss, "loss_video": event.loss_video, "loss_audio": event.loss_audio,
                "lr": event.lr, "grad_norm": event.grad_norm, "step_time": event.step_time_s,
                "gpu_mem": event.memory_bytes,
            })
            job = session.get(Job, self.ctx.job_id)
            job.step, job.total = event.step, event.total
            job.progress = event.step / event.total if event.total else 0.0
            job.eta_s = event.eta_s
            job.heartbeat_at = utcnow()
            job.message = f"step {event.step}/{event.total}, loss {event.loss:.4f}"
            job.result = {**(job.result or {}), "run_id": self.run_id, "step": event.step,
                          "gpu": self.gpu, "gpu_memory_bytes": event.memory_bytes,
                          "step_time_s": event.step_time_s}
            self.ctx.see_row(job)  # cancel, checkpoint-now, sample-now: taken by the trainer right after
            if job.status == JobStatus.cancelling.value:
                self.cancel.cancel()
            elif job.status == JobStatus.interrupted.value:  # the sweeper gave up on us too early: we live
                job.status, job.finished_at, job.error = JobStatus.running.value, None, None

    def on_checkpoint(self, event: CheckpointEvent) -> None:
        files = {"official": _relative(event.official_path, self.data_dir),
                 "diffusers": _relative(event.diffusers_path, self.data_dir),
                 "state": _relative(event.state_path, self.data_dir)}
        with session_scope() as session:
            row = run_records.record_checkpoint(session, self.run_id, event.step, files, event.key_counts)
            session.flush()
            queue_checkpoint_key_report(session, row)  # proves both files load, audio keys included

    def on_sample(self, event: SampleEvent) -> None:
        with session_scope() as session:
            run_records.record_sample(
                session, self.run_id, step=event.step, prompt_index=event.prompt_index, variant=event.variant,
                seed=event.seed, wav=_relative(event.wav_path, self.data_dir),
                mp4=_relative(event.mp4_path, self.data_dir),
                source_clip_id=self.clip_ids.get(event.source) if event.source else None)
            queue_sample_metrics(session, self.run_id)  # loudness, buzz, speech, voice distance, flags

    def on_log(self, level: str, message: str) -> None:
        with session_scope() as session:
            run_records.add_log_line(session, self.ctx.job_id, level, message)


def _host_config(run: TrainingRun, data_dir: Path) -> RunConfig:
    """The stored config with its DATA_DIR-relative paths made absolute on this host."""
    data = dict(run.config)
    data["output_dir"] = str(data_dir / run.output_dir)
    data["data"] = {**data["data"], "preprocessed_dir": str(data_dir / data["data"]["preprocessed_dir"])}
    try:
        return parse_run_config(data, source=f"run #{run.id}")
    except ConfigFileError as exc:
        raise JobFailed("The run's config is no longer valid: " + "; ".join(exc.problems)) from exc


def _reconcile_checkpoints(run_id: int, output_dir: Path, data_dir: Path) -> int | None:
    """Rows for every checkpoint on disk (a crash may have come between file and row); drop later rows."""
    from worker.engine.lora.checkpoint import checkpoint_paths, list_checkpoint_steps

    steps = list_checkpoint_steps(output_dir)
    latest = steps[-1] if steps else 0
    with session_scope() as session:
        for step in steps:
            paths = checkpoint_paths(output_dir, step)
            files = {"official": _relative(paths.official, data_dir),
                     "diffusers": _relative(paths.diffusers, data_dir),
                     "state": _relative(paths.state, data_dir)}
            run_records.record_checkpoint(session, run_id, step, files)
        run_records.forget_after_step(session, run_id, latest)
    return steps[-1] if steps else None


def _missing_samples(config: RunConfig, run_id: int, step: int, clip_count: int) -> list[str]:
    """Variants whose samples at checkpoint ``step`` are missing (a crash came during its validation);
    ``clip_count``: the training clips there are (the v2a variants sample up to ``v2a_clips`` of them)."""
    from sqlalchemy import select

    from core.models import Sample

    validation = config.validation
    if not (validation.at_checkpoints or (validation.interval and step % validation.interval == 0)):
        return []
    v2a_count = min(validation.v2a_clips, clip_count)
    wanted = {(index, variant) for variant in validation.variants if variant not in LORA_OFF_VARIANTS
              for index in range(v2a_count if variant in V2A_VARIANTS else len(validation.prompts))}
    with session_scope() as session:
        have = set(session.execute(select(Sample.prompt_index, Sample.variant)
                                   .where(Sample.run_id == run_id, Sample.step == step)).all())
    return sorted({variant for _index, variant in wanted - have})


def _interrupted_message(step: int | None, resume_step: int | None) -> str:
    """What the log says of a cancel that interrupted the run between two step boundaries."""
    if step is None:
        where = f"from the checkpoint at step {resume_step}" if resume_step else "from the start"
        return f"Cancelled during set-up (before the first step); resume starts {where}."
    return (f"Cancelled after step {step}, before the next step boundary; resume continues from the "
            "latest checkpoint.")


def _gpu_name() -> str:
    """The CUDA device's name, or ``cpu``."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.cuda.current_device())
    return "cpu"


def _ranks_label(world: int) -> str:
    """What a run on ``world`` processes runs on, e.g. ``2 x NVIDIA H200`` or ``2 processes (cpu)``;
    read with nvidia-smi: this process makes no CUDA context on a GPU the ranks may need."""
    from worker.announce import visible_gpus

    names = visible_gpus()
    return f"{world} x {names[0]}" if names else f"{world} processes (cpu)"


def _record_start(job_id: int, config: RunConfig, resume_step: int | None, gpu: str) -> None:
    """The job row's GPU, step and total, and the log's first line, before anything loads."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        job.gpu = gpu
        job.total = config.optimization.steps
        job.step = resume_step or 0
        job.progress = job.step / job.total
        start = f"Resuming from the checkpoint at step {resume_step}" if resume_step else "Starting"
        run_records.add_log_line(session, job_id, "info",
                                 f"{start}: {config.optimization.steps} steps of {config.model} on {gpu}.")


def train(ctx: JobContext, params: dict[str, Any]) -> dict | None:
    """Train run ``params["run_id"]`` (continuing from its latest checkpoint if it has one)."""
    run_id = int(params["run_id"])
    settings = get_settings()
    data_dir = settings.data_dir
    with session_scope() as session:
        run = session.get(TrainingRun, run_id)
        if run is None:
            raise JobFailed(f"Training run #{run_id} no longer exists.")
        if run.job_id != ctx.job_id:
            raise JobFailed(f"Job #{ctx.job_id} is an older attempt of run #{run_id}; job #{run.job_id} continues it.")
        config = _host_config(run, data_dir)
        clip_ids = entry_clip_ids(run.preprocess_run)
    output_dir = Path(config.output_dir)
    if not Path(config.data.preprocessed_dir).is_dir():
        raise JobFailed(f"The preprocessed data of run #{run_id} is gone ({config.data.preprocessed_dir}): "
                        "preprocess the dataset again and start a new run.")
    resume_step = _reconcile_checkpoints(run_id, output_dir, data_dir)
    world = config.optimization.num_processes
    gpu = _gpu_name() if world == 1 else _ranks_label(world)
    _record_start(ctx.job_id, config, resume_step, gpu)
    cancel = JobCancelToken(ctx)
    recorder = RowRecorder(ctx, run_id, data_dir, cancel, gpu, clip_ids)
    from worker.handlers.train_ranks import own_gpu_reserved, train_on_ranks

    if config.optimization.num_processes > 1:  # the ranks are processes of their own: cancel goes to rank 0
        return train_on_ranks(ctx, run_id, config, data_dir=data_dir, model_dir=settings.model_dir,
                              resume=resume_step is not None, recorder=recorder, cancel=cancel,
                              control=JobControlRequests(ctx))
    with own_gpu_reserved(ctx, run_id, recorder):  # no run on several GPUs takes this worker's GPU meanwhile
        result = _train_here(ctx, run_id, config, resume_step, recorder, len(clip_ids))
    if result.status == "cancelled":
        raise JobCancelled()
    with session_scope() as session:
        run_records.add_log_line(session, ctx.job_id, "info",
                                 f"Finished at step {result.step}; checkpoints {result.checkpoints}.")
    return {"run_id": run_id, "step": result.step, "checkpoints": result.checkpoints}


def _train_here(ctx: JobContext, run_id: int, config: RunConfig, resume_step: int | None, recorder: RowRecorder,
                clip_count: int):
    """The run in this process (one GPU, or the CPU): the trainer's result."""
    import torch

    from core.model_files import ModelFilesMissing
    from worker.engine.train import TrainingError, train_run
    from worker.engine.validate import validate_run

    settings = get_settings()
    data_dir, output_dir = settings.data_dir, Path(config.output_dir)
    ctx.interrupt_on_cancel()  # loading, compiling, sampling: a cancel does not wait for them
    try:
        missing = _missing_samples(config, run_id, resume_step, clip_count) if resume_step else []
        if missing:
            recorder.on_log("info", f"Sampling the checkpoint at step {resume_step} again ({', '.join(missing)}): "
                            "its validation was cut short.")
            validate_run(output_dir, data_dir=data_dir, model_dir=settings.model_dir, step=resume_step,
                         variants=missing, callbacks=recorder)
        return train_run(config, data_dir=data_dir, model_dir=settings.model_dir,
                         resume=resume_step is not None, callbacks=recorder, cancel=recorder.cancel,
                         control=JobControlRequests(ctx))
    except (TrainingError, ModelFilesMissing) as exc:
        raise JobFailed(str(exc)) from exc
    except torch.cuda.OutOfMemoryError as exc:
        raise JobFailed("The GPU ran out of memory: lower the rank, the batch size or the buckets, turn on "
                        "gradient checkpointing, or use the low-vram preset.") from exc
    except JobInterrupted:
        recorder.on_log("info", _interrupted_message(recorder.step, resume_step))
        raise
