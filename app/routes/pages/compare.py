"""Pages: compare a run's checkpoints by ear (grid, transport, charts), blind A/B, best checkpoint."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from app.routes.deps import SessionDep
from app.templating import templates
from core.errors import ApiError
from core.models import TrainingRun
from core.recipe.sample_rules import SPEAKER_SIMILARITY_MIN
from core.services import compare as compare_service
from core.services import compare_runs, lora_check, voice_metrics
from core.services import votes as vote_service
from core.services.datasets import get_dataset
from core.services.runs import get_run, list_runs

router = APIRouter(include_in_schema=False)
IMAGE_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=60"}


def _run_context(session, run: TrainingRun, audio_off: bool, strengths: bool = False) -> dict:
    grid = compare_service.compare_grid([run], audio_off=audio_off, strengths=strengths)
    key_reports = {c.step: lora_check.checkpoint_key_report(session, c)["status"] for c in run.checkpoints}
    return {"run": run, "run_id": run.id, "dataset": run.dataset, "grid": grid, "audio_off": audio_off,
            "strengths": strengths,
            "charts": compare_service.metric_charts(run), "flags": compare_service.checkpoint_flags(run),
            "pending": compare_service.metrics_pending(run), "summary": vote_service.vote_summary(session, run.id),
            "trial": None, "checkpoints": [c.step for c in run.checkpoints], "key_reports": key_reports,
            "suggestion": voice_metrics.suggest_best_checkpoint(run), "suggestion_rule": voice_metrics.SUGGESTION_RULE,
            "voice_reference": voice_metrics.voice_reference(session, run),
            "similarity_line": SPEAKER_SIMILARITY_MIN, "compare_url": f"/runs/{run.id}/compare"}


@router.get("/runs/{run_id}/compare", response_class=HTMLResponse)
def run_compare_page(run_id: int, request: Request, session: SessionDep, audio_off: bool = False,
                     strengths: bool = False, notice: str = ""):
    """Every checkpoint against the base model and the training clip, prompt by prompt."""
    run = get_run(session, run_id)
    return templates.TemplateResponse(request, "compare.html", {**_run_context(session, run, audio_off, strengths),
                                                                "notice": notice, "error": None})


@router.get("/datasets/{dataset_id}/compare", response_class=HTMLResponse)
def dataset_compare_page(dataset_id: int, request: Request, session: SessionDep, audio_off: bool = False,
                         strengths: bool = False):
    """The checkpoints of every run of a dataset side by side (prompt i of each run in row i), each
    run labelled with its training mode and model, and a summary of each run's voice measures."""
    dataset = get_dataset(session, dataset_id)
    runs = sorted(list_runs(session, dataset_id=dataset.id), key=lambda r: r.id)
    context = {"run": None, "dataset": dataset, "runs": runs, "audio_off": audio_off, "strengths": strengths, "grid": None,
               "charts": [], "flags": {}, "pending": 0, "summary": None, "trial": None, "checkpoints": [],
               "key_reports": {}, "compare_url": f"/datasets/{dataset.id}/compare", "notice": "", "error": None,
               "summaries": [], "run_modes": {}}
    if runs:
        context["grid"] = compare_service.compare_grid(runs, audio_off=audio_off, strengths=strengths)
        context["summaries"] = compare_runs.run_summaries(runs)
        context["run_modes"] = {row["run_id"]: row for row in context["summaries"]}
        context["voice_reference"] = voice_metrics.voice_reference(session, runs[0])
    return templates.TemplateResponse(request, "compare.html", context)


@router.post("/runs/{run_id}/best")
def mark_best(run_id: int, session: SessionDep, step: str = Form("")):
    """Mark (or clear) the run's best checkpoint from the compare page."""
    run = get_run(session, run_id)
    chosen = int(step) if step.strip().isdigit() else None
    compare_service.set_best_checkpoint(session, run, chosen)
    notice = f"Step {chosen} marked best" if chosen is not None else "Best mark cleared"
    return RedirectResponse(f"/runs/{run_id}/compare?notice={notice.replace(' ', '+')}", status_code=303)


@router.post("/runs/{run_id}/sample-metrics")
def measure_samples(run_id: int, session: SessionDep):
    """Queue the measuring of the run's unmeasured samples (button on the compare page)."""
    run = get_run(session, run_id)
    compare_service.queue_sample_metrics(session, run.id)
    return RedirectResponse(f"/runs/{run_id}/compare?notice=Measuring+queued", status_code=303)


@router.get("/compare/samples/{sample_id}/{kind}.png")
def sample_image(sample_id: int, kind: str, session: SessionDep) -> FileResponse:
    """A sample's waveform or spectrogram (drawn on first request, cached beside its wav)."""
    return FileResponse(compare_service.sample_image(session, sample_id, kind), media_type="image/png",
                        headers=IMAGE_HEADERS)


@router.get("/compare/references/{preprocess_run_id}/{clip_id}/{kind}.png")
def reference_image(preprocess_run_id: int, clip_id: int, kind: str, session: SessionDep) -> FileResponse:
    """A training clip's decoded-audio waveform or spectrogram."""
    path = compare_service.reference_image(session, preprocess_run_id, clip_id, kind)
    return FileResponse(path, media_type="image/png", headers=IMAGE_HEADERS)


def _blind(request: Request, session, run_id: int, trial=None, error: ApiError | None = None, status: int = 200):
    context = {"run_id": run_id, "trial": vote_service.trial_to_dict(trial) if trial else None,
               "summary": vote_service.vote_summary(session, run_id), "blind_error": error}
    return templates.TemplateResponse(request, "partials/compare_blind.html", context, status_code=status)


@router.post("/runs/{run_id}/compare/blind", response_class=HTMLResponse)
def open_blind_trial(run_id: int, request: Request, session: SessionDep):
    """A new blind A/B trial (htmx swaps the blind panel)."""
    run = get_run(session, run_id)
    try:
        trial = vote_service.new_trial(session, run)
    except ApiError as exc:
        return _blind(request, session, run.id, error=exc)
    return _blind(request, session, run.id, trial)


@router.post("/compare/blind/{vote_id}", response_class=HTMLResponse)
def cast_blind_vote(vote_id: int, request: Request, session: SessionDep, choice: str = Form("")):
    """Record the pick of a blind trial and reveal which was which."""
    vote = vote_service.get_vote(session, vote_id)
    try:
        vote_service.cast_vote(session, vote, choice)
    except ApiError as exc:
        return _blind(request, session, vote.run_id, vote, error=exc, status=exc.status)
    return _blind(request, session, vote.run_id, vote)


@router.get("/compare/blind/{vote_id}/{letter}.wav")
def blind_audio(vote_id: int, letter: str, session: SessionDep) -> FileResponse:
    """The audio behind letter A or B (the URL names no step)."""
    vote = vote_service.get_vote(session, vote_id)
    return FileResponse(vote_service.trial_audio(vote, letter), media_type="audio/wav",
                        headers={"Cache-Control": "no-store"})
