"""JSON API v1: the compare grid, sample metrics, blind votes, the best checkpoint and exports."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from app.routes.deps import SessionDep
from core.services import compare as compare_service
from core.services import export as export_service
from core.services import strength_samples as strength_service
from core.services import voice_metrics
from core.services import votes as vote_service
from core.services.runs import get_run

router = APIRouter(prefix="/api/v1", tags=["compare"])


class BestCheckpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: int | None = Field(description="The checkpoint step to mark as best; null clears the mark.")


class StrengthBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    video_strength: float = Field(1.0, description="Scale of the LoRA's video-side modules, 0..2 (1 = trained).")
    audio_strength: float = Field(1.0, description="Scale of the LoRA's audio-side modules, 0..2 (0 = off).")


class VoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    choice: Literal["a", "b", "same"] = Field(description="The better sample, or 'same'.")


@router.get("/runs/{run_id}/compare")
def read_compare(run_id: int, session: SessionDep, audio_off: bool = False, strengths: bool = False) -> dict[str, Any]:
    """The compare grid: columns (reference, base, checkpoints; on demand audio-off and per-side
    strength columns), rows (prompts) with media, metrics and flags."""
    run = get_run(session, run_id)
    grid = compare_service.compare_grid([run], audio_off=audio_off, strengths=strengths)
    grid.update(run_id=run.id, best_checkpoint_step=run.best_checkpoint_step,
                charts=compare_service.metric_charts(run), metrics_pending=compare_service.metrics_pending(run),
                best_checkpoint_suggestion=voice_metrics.suggest_best_checkpoint(run))
    return grid


@router.post("/runs/{run_id}/sample-metrics", status_code=202)
def measure_samples(run_id: int, session: SessionDep) -> dict[str, Any]:
    """Queue the measuring of every sample of the run that has no metrics yet."""
    run = get_run(session, run_id)
    job = compare_service.queue_sample_metrics(session, run.id)
    return {"run_id": run.id, "job_id": job.id if job else None, "pending": compare_service.metrics_pending(run)}


@router.post("/runs/{run_id}/checkpoints/{step}/strength-samples", status_code=202)
def queue_strength_samples(run_id: int, step: int, body: StrengthBody, session: SessionDep) -> dict[str, Any]:
    """Render checkpoint ``step``'s validation prompts with the LoRA's video and audio sides at these
    strengths (same seed); the samples appear as a compare column. 422: unknown step, strength outside 0..2."""
    run = get_run(session, run_id)
    job = strength_service.queue_strength_samples(session, run, step, body.video_strength, body.audio_strength)
    return {"job_id": job.id, "run_id": run.id, "step": step, "variant": job.params["variant"]}


@router.put("/runs/{run_id}/best-checkpoint")
def put_best_checkpoint(run_id: int, body: BestCheckpoint, session: SessionDep) -> dict[str, Any]:
    """Mark a checkpoint as the run's best (it is offered for export)."""
    run = compare_service.set_best_checkpoint(session, get_run(session, run_id), body.step)
    return {"run_id": run.id, "best_checkpoint_step": run.best_checkpoint_step}


@router.post("/runs/{run_id}/votes/trials", status_code=201)
def open_trial(run_id: int, session: SessionDep) -> JSONResponse:
    """Open a blind A/B trial: two samples of one prompt behind the letters A and B."""
    vote = vote_service.new_trial(session, get_run(session, run_id))
    return JSONResponse(vote_service.trial_to_dict(vote), status_code=201)


@router.post("/votes/{vote_id}")
def cast_vote(vote_id: int, body: VoteBody, session: SessionDep) -> dict[str, Any]:
    """Decide a blind trial; answers the trial with its labels revealed and the run's summary."""
    vote = vote_service.cast_vote(session, vote_service.get_vote(session, vote_id), body.choice)
    return {"trial": vote_service.trial_to_dict(vote), "summary": vote_service.vote_summary(session, vote.run_id)}


@router.get("/runs/{run_id}/votes")
def read_votes(run_id: int, session: SessionDep) -> dict[str, Any]:
    """Blind votes per contender (base, step N): wins, losses, ties, trials, score."""
    run = get_run(session, run_id)
    return vote_service.vote_summary(session, run.id)


@router.get("/runs/{run_id}/checkpoints/{step}/export")
def export_checkpoint(run_id: int, step: int, session: SessionDep,
                      layout: Literal["comfy", "diffusers"] = "comfy",
                      modules: Literal["all", "no-audio", "audio-only"] = "all") -> FileResponse:
    """A zip with the checkpoint's LoRA (comfy or diffusers layout; all modules, without the
    audio-side modules, or only them) and a model card (README.md + model_card.json)."""
    run = get_run(session, run_id)
    path, name = export_service.build_export(session, run, step, layout, modules)
    return FileResponse(path, media_type="application/zip", filename=name)
