"""What a person does to a job beyond cancel: resume it, retry it automatically, ask a running
training for a checkpoint or samples now.

Resuming: a failed, cancelled or interrupted preprocess or training job gets a new attempt (a
new job row for the same run) that continues where the last one stopped. Training continues from
the run's latest checkpoint (the worker finds it in the run folder); preprocessing reuses every
cache entry already written. With ``AVLORA_AUTO_RESUME_ATTEMPTS`` > 0 the sweeper does this by
itself for interrupted jobs (:func:`auto_resume`).

"Checkpoint now" / "sample now" (:func:`request_now`) are stored on the job row's ``requests``;
the worker carries them out between two steps and removes them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from core.errors import ApiError, Conflict
from core.models import Job, JobStatus, TrainingRun
from core.names import JobKind
from core.recipe.config_yaml import ConfigFileError
from core.recipe.run_config import parse_run_config
from core.services import preflight
from core.services.job_queue import add_job, run_of_job, send_job_after_commit
from core.services.run_records import add_log_line

RESUMABLE_STATES = (JobStatus.failed.value, JobStatus.cancelled.value, JobStatus.interrupted.value)
RESUMABLE_KINDS = (JobKind.train, JobKind.preprocess)
AUTO_RESUMES_PARAM = "auto_resumes"  # in a job's params: automatic resumes in a row that led to it
CHECKPOINT_NOW, SAMPLE_NOW = "checkpoint", "sample"  # the names the worker reads (ControlRequests)
_REQUEST_WORDS = {CHECKPOINT_NOW: "Saving a checkpoint now", SAMPLE_NOW: "Sampling now"}


def resume_job(session: Session, job: Job, *, automatic: bool = False) -> Job:
    """Queue a new attempt of ``job``'s run; returns the new job.

    Refused (409) for jobs that are still live or succeeded, for kinds without a run, and for an
    older attempt of a run that already has a newer one. ``automatic``: the sweeper's retry; the
    new job's params count the automatic resumes in a row (a person's resume starts again at 0).
    """
    if job.kind not in RESUMABLE_KINDS:
        raise Conflict("not_resumable", f"Jobs of kind {job.kind!r} cannot be resumed: start them again.")
    if job.status not in RESUMABLE_STATES:
        raise Conflict("not_resumable", f"Job #{job.id} is {job.status}: only a failed, cancelled or "
                       "interrupted job can be resumed.")
    run = run_of_job(session, job)
    if run is None:
        raise Conflict("not_resumable", f"The run of job #{job.id} no longer exists.")
    session.refresh(run, with_for_update=True)  # two resume clicks at once queue one attempt (Postgres)
    if run.job_id != job.id:
        raise Conflict("not_latest_attempt", f"Job #{job.id} is an older attempt of this run: resume job "
                       f"#{run.job_id} instead.")
    if isinstance(run, TrainingRun):
        config = parse_run_config(run.config)
        preflight.check_model_files(config.model)
        preflight.check_disk_space(preflight.estimate_run_bytes(config), "this run's checkpoints and samples")
        params = {"run_id": run.id, "resume_of": job.id}
    else:
        preflight.check_model_files(run.model)
        params = {"preprocess_run_id": run.id, "resume_of": job.id}
    if automatic:
        params[AUTO_RESUMES_PARAM] = automatic_resumes(job) + 1
    new_job = add_job(session, job.kind, job.queue, params)
    run.job_id = new_job.id
    session.commit()
    send_job_after_commit(session, new_job)
    return new_job


def automatic_resumes(job: Job) -> int:
    """How many automatic resumes in a row led to ``job`` (0 for a job a person started or resumed)."""
    return int((job.params or {}).get(AUTO_RESUMES_PARAM, 0))


def auto_resume(session: Session, job: Job, limit: int) -> Job | None:
    """The sweeper's automatic retry of an interrupted job: a new attempt while fewer than
    ``limit`` automatic resumes in a row led to it; returns the new job, or None.

    Both jobs' logs say what happened, and so does the old one's when the limit is reached or
    the resume is refused (a full disk, missing model files, a newer attempt exists).
    """
    if limit <= 0 or job.kind not in RESUMABLE_KINDS or job.status != JobStatus.interrupted.value:
        return None
    done = automatic_resumes(job)
    if done >= limit:
        add_log_line(session, job.id, "warning", f"Not resumed automatically: {done} automatic attempt(s) in a "
                     f"row already (AVLORA_AUTO_RESUME_ATTEMPTS={limit}). Resume it once the cause is fixed.")
        session.commit()
        return None
    job_id = job.id
    try:
        new_job = resume_job(session, job, automatic=True)
    except (ApiError, ConfigFileError) as exc:  # what a person's resume would be told too
        session.rollback()
        reason = exc.message if isinstance(exc, ApiError) else f"the run's config is no longer valid: {exc}"
        add_log_line(session, job_id, "error", f"Automatic resume refused: {reason}")
        session.commit()
        return None
    attempt = f"automatic attempt {done + 1} of {limit}"
    add_log_line(session, job_id, "warning", f"Resumed automatically as job #{new_job.id} ({attempt}).")
    add_log_line(session, new_job.id, "info", f"Automatic resume of interrupted job #{job_id} ({attempt}).")
    session.commit()
    return new_job


def request_now(session: Session, job: Job, name: str) -> Job:
    """Ask a running training job for a checkpoint (``checkpoint``) or samples (``sample``) at its
    current step; the worker does it between two steps and the rows appear like scheduled ones.

    Refused (409) unless the job is a training that is running. Asking again before the worker
    took the request changes nothing (one checkpoint per click burst).
    """
    if name not in _REQUEST_WORDS:
        raise ValueError(f"unknown request {name!r}")
    what = _REQUEST_WORDS[name]
    if job.kind != JobKind.train:
        raise Conflict("not_running_training", f"{what} works only on a training job; job #{job.id} is a "
                       f"{job.kind} job.")
    session.refresh(job, with_for_update=True)  # the worker clears requests on the same row
    if job.status != JobStatus.running.value:
        raise Conflict("not_running_training", f"{what} works only while the training runs; job #{job.id} is "
                       f"{job.status}{_NOT_RUNNING_HINTS.get(job.status, '')}.")
    if name == SAMPLE_NOW:
        run = run_of_job(session, job)
        if run is not None and not parse_run_config(run.config).validation.prompts:
            raise Conflict("no_validation_prompts", "This run has no validation prompts, so there is nothing to "
                           "sample: clone the run with prompts in its validation section.")
    pending = dict(job.requests or {})
    pending.setdefault(name, datetime.now(UTC).isoformat())
    job.requests = pending
    session.commit()
    return job


_NOT_RUNNING_HINTS = {
    JobStatus.queued.value: " (it has not started yet)",
    JobStatus.cancelling.value: " (it is stopping; it saves a checkpoint before it ends)",
    JobStatus.interrupted.value: " (resume it first)",
    JobStatus.failed.value: " (resume it first)",
    JobStatus.cancelled.value: " (resume it first)",
}
