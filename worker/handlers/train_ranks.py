"""train on several processes: a run whose ``optimization.num_processes`` is N runs as N ranks.

The job reserves N GPUs of this host (:mod:`worker.gpus`; on a host without GPUs the ranks train
on the CPU with gloo), writes the run's config for them and starts ``avlora train --json`` as N
ranks (:mod:`worker.engine.distributed.launch`). Rank 0's JSON events become the same rows a
one-process run writes (:class:`~worker.handlers.train.RowRecorder`); a cancel goes to rank 0 as
SIGINT (it checkpoints, every rank stops) and, where no step boundary comes in time, ends every
rank; "checkpoint now" / "sample now" reach rank 0 through its control file; a rank that dies
ends the others and the job is ``interrupted`` (resumable, with any number of processes).
A host with fewer GPUs than the run needs gives the job back to the queue, saying so.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import threading
import time
from pathlib import Path

from core.recipe.run_config import RunConfig, run_config_to_yaml
from worker.engine.distributed.launch import RankProcesses, rank_command
from worker.engine.progress import CheckpointEvent, ProgressEvent, SampleEvent
from worker.gpus import host_gpu_indices, own_gpu_indices, wait_for_gpus
from worker.jobs import JobCancelled, JobContext, JobFailed, JobRanksLost, JobRequeued

CONTROL_FILE_ENV = "AVLORA_CONTROL_FILE"  # as worker.engine.commands.train reads it
CANCEL_GRACE_S = 10.0  # beyond STEP_PATIENCE x the last step, a cancel ends every rank
POLL_S = 0.25


def _gpus_for(ctx: JobContext, run_id: int, world: int, recorder):
    """``(reservation or None, device)``: N reserved GPUs of this host, or the CPU on a host without."""
    host = host_gpu_indices()
    if not host:
        return None, "cpu"
    if len(host) < world:
        raise JobRequeued(f"Run #{run_id} trains on {world} GPUs of one host; this worker's host has {len(host)}. "
                          f"It waits for a worker on a host with {world} GPUs.")
    reservation = wait_for_gpus(world, own_gpu_indices(host), host, holder=f"job #{ctx.job_id} (run #{run_id})",
                                on_wait=lambda message: recorder.on_log("info", message.capitalize() + "."),
                                cancelled=lambda: ctx.cancel_requested)
    if reservation is None:
        raise JobCancelled()
    return reservation, "cuda"


@contextlib.contextmanager
def own_gpu_reserved(ctx: JobContext, run_id: int, recorder):
    """This worker's own GPU held for a one-process run (nothing on a host without GPUs); while a
    run on several GPUs holds it, the job waits, saying for what."""
    host = host_gpu_indices()
    own = own_gpu_indices(host)
    if not own:
        yield None
        return
    reservation = wait_for_gpus(1, own[:1], own[:1], holder=f"job #{ctx.job_id} (run #{run_id})",
                                on_wait=lambda message: recorder.on_log("info", message.capitalize() + "."),
                                cancelled=lambda: ctx.cancel_requested)
    if reservation is None:
        raise JobCancelled()
    with reservation:
        yield reservation


def _dispatch(line: str, recorder, control) -> None:
    """One JSON line of rank 0 as the rows a one-process run writes."""
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return
    kind = event.pop("event", None)
    if kind == "progress":
        recorder.on_progress(ProgressEvent(**event))
    elif kind == "checkpoint":
        recorder.on_checkpoint(CheckpointEvent(event["step"], Path(event["official"]), Path(event["diffusers"]),
                                               Path(event["state"]), event.get("key_counts") or {}))
    elif kind == "sample":
        recorder.on_sample(SampleEvent(event["step"], event["prompt"], event["variant"], Path(event["mp4"]),
                                       Path(event["wav"]), event["seed"], event.get("source")))
    elif kind == "log":
        recorder.on_log(event["level"], event["message"])
    elif kind == "control_done":
        control.done(event["name"], event["step"])


def _reader(stream, lines: queue.Queue) -> threading.Thread:
    def read() -> None:
        for raw in stream:
            lines.put(raw.decode("utf-8", "replace"))
        lines.put(None)

    thread = threading.Thread(target=read, name="rank0-events", daemon=True)
    thread.start()
    return thread


def train_on_ranks(ctx: JobContext, run_id: int, config: RunConfig, *, data_dir: Path, model_dir, resume: bool,
                   recorder, cancel, control) -> dict:
    """Run ``config`` on ``num_processes`` ranks; returns the job's result (raises as the job ends)."""
    world = config.optimization.num_processes
    reservation, device = _gpus_for(ctx, run_id, world, recorder)
    ranks_dir = Path(config.output_dir) / "ranks"
    ranks_dir.mkdir(parents=True, exist_ok=True)
    config_path = ranks_dir / "config.yaml"
    config_path.write_text(run_config_to_yaml(config))
    arguments = ["train", str(config_path), "--json", "--device", device, "--data-dir", str(data_dir)]
    arguments += (["--model-dir", str(model_dir)] if model_dir else []) + (["--resume"] if resume else [])
    env = {CONTROL_FILE_ENV: str(ranks_dir / "control")}
    if reservation is not None:
        env["CUDA_VISIBLE_DEVICES"] = reservation.visible_devices
    recorder.on_log("info", f"Training on {world} processes ({device}"
                    + (f", GPUs {reservation.visible_devices}" if reservation else ", gloo") + f"); global batch "
                    f"{config.optimization.batch_size * world}.")
    try:
        ranks = RankProcesses(rank_command(arguments), world, ranks_dir, rank0_stdout=subprocess.PIPE, env=env,
                              cpu_threads=None if reservation else 1)
        try:
            result = _follow(ctx, ranks, recorder, cancel, control, ranks_dir / "control")
        finally:
            ranks.close()
    finally:
        if reservation is not None:
            reservation.release()
    if result.status == "cancelled":
        raise JobCancelled()
    if result.status == "interrupted":
        raise JobRanksLost(result.message)
    if result.status == "failed":
        raise JobFailed(result.message or f"rank 0 exited with status {result.returncode}")
    return {"run_id": run_id, "step": recorder.step, "processes": world}


def _follow(ctx: JobContext, ranks: RankProcesses, recorder, cancel, control, control_file: Path):
    """Relay rank 0's events until every rank has ended; pass on cancels and requests."""
    lines: queue.Queue = queue.Queue()
    reader = _reader(ranks.procs[0].stdout, lines)
    cancel_at = None
    while True:
        try:
            line = lines.get(timeout=POLL_S)
        except queue.Empty:
            line = None
        if line:
            _dispatch(line, recorder, control)
        if cancel_at is None and (cancel.is_cancelled() or ctx.cancel_requested):
            ranks.cancel()
            cancel_at = time.monotonic()
            ctx.stopping_for_cancel()
        elif cancel_at is not None and time.monotonic() - cancel_at > CANCEL_GRACE_S + recorder.patience_s:
            ranks.terminate()  # no step boundary came in time (loading, compiling, sampling)
        for name in control.take():
            with open(control_file, "a") as handle:
                handle.write(name + "\n")
        result = ranks.check()
        if result is not None and not reader.is_alive() and lines.empty():
            if cancel_at is not None and result.status != "completed":
                result.status = "cancelled"
            return result
