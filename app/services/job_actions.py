"""Resuming a job: a failed, cancelled or interrupted preprocess or training job gets a new
attempt (a new job row for the same run) that continues where the last one stopped.

Training continues from the run's latest checkpoint (the worker finds it in the run folder);
preprocessing reuses every cache entry already written.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.models import Job, JobStatus, TrainingRun
from app.recipe.run_config import parse_run_config
from app.services import preflight
from app.services.errors import Conflict
from app.services.job_queue import add_job, run_of_job, send_job_after_commit

RESUMABLE_STATES = (JobStatus.failed.value, JobStatus.cancelled.value, JobStatus.interrupted.value)
RESUMABLE_KINDS = ("train", "preprocess")


def resume_job(session: Session, job: Job) -> Job:
    """Queue a new attempt of ``job``'s run; returns the new job.

    Refused (409) for jobs that are still live or succeeded, for kinds without a run, and for an
    older attempt of a run that already has a newer one.
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
    new_job = add_job(session, job.kind, job.queue, params)
    run.job_id = new_job.id
    session.commit()
    send_job_after_commit(session, new_job)
    return new_job
