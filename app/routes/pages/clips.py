"""Pages: one clip with its players, images, findings and the caption form."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse

from core.errors import ApiError
from app.routes.deps import SessionDep
from core.services import clips as clip_service
from core.services.captions import compose_for, save_caption
from core.services.datasets import dataset_to_dict
from app.templating import templates

router = APIRouter(include_in_schema=False)


def _neighbours(clip) -> tuple[int | None, int | None]:
    ids = [c.id for c in clip.dataset.clips]
    index = ids.index(clip.id)
    return (ids[index - 1] if index > 0 else None, ids[index + 1] if index + 1 < len(ids) else None)


def _clip_context(clip, **extra) -> dict:
    previous_id, next_id = _neighbours(clip)
    return {"clip": clip_service.clip_to_dict(clip), "dataset": dataset_to_dict(clip.dataset, with_clips=False),
            "previous_id": previous_id, "next_id": next_id, **extra}


@router.get("/clips/{clip_id}", response_class=HTMLResponse)
def clip_page(clip_id: int, request: Request, session: SessionDep, saved: int = 0):
    """The clip: players, waveform and spectrogram, findings, caption form with live preview."""
    clip = clip_service.get_clip(session, clip_id)
    return templates.TemplateResponse(request, "clip.html", _clip_context(clip, saved=bool(saved), error=None))


@router.get("/clips/{clip_id}/status", response_class=HTMLResponse)
def clip_status_partial(clip_id: int, request: Request, session: SessionDep):
    """Status and findings (htmx polls it while the clip is being checked)."""
    clip = clip_service.get_clip(session, clip_id)
    return templates.TemplateResponse(request, "partials/clip_findings.html", _clip_context(clip))


@router.get("/clips/{clip_id}/preview", response_class=PlainTextResponse)
def caption_preview(clip_id: int, session: SessionDep, visual: str = "", transcript: str = "", voice: str = "",
                    sounds: str = "", text: str = ""):
    """The caption the trainer would see for these fields (the live preview)."""
    clip = clip_service.get_clip(session, clip_id)
    parts = {"visual": visual, "transcript": transcript, "voice": voice, "sounds": sounds, "text": text}
    return compose_for(clip.dataset, parts)


@router.post("/clips/{clip_id}/caption", response_class=HTMLResponse)
def caption_form(clip_id: int, request: Request, session: SessionDep, visual: str = Form(""),
                 transcript: str = Form(""), voice: str = Form(""), sounds: str = Form(""), text: str = Form(""),
                 go: str = Form("stay")):
    """Save the caption; ``go=next`` continues with the next clip of the dataset."""
    clip = clip_service.get_clip(session, clip_id)
    values = {"visual": visual, "transcript": transcript, "voice": voice, "sounds": sounds, "text": text}
    try:
        save_caption(session, clip, values)
    except ApiError as exc:
        session.rollback()
        return templates.TemplateResponse(request, "clip.html", _clip_context(clip, saved=False, error=exc),
                                          status_code=422)
    _previous, next_id = _neighbours(clip)
    if go == "next" and next_id is not None:
        return RedirectResponse(f"/clips/{next_id}", status_code=303)
    return RedirectResponse(f"/clips/{clip_id}?saved=1", status_code=303)


@router.post("/clips/{clip_id}/reprobe")
def reprobe_clip_form(clip_id: int, session: SessionDep) -> RedirectResponse:
    """Queue the clip's analysis again (after a failed or cancelled one)."""
    clip = clip_service.reprobe_clip(session, clip_service.get_clip(session, clip_id))
    return RedirectResponse(f"/clips/{clip.id}", status_code=303)


@router.post("/clips/{clip_id}/delete")
def delete_clip_form(clip_id: int, session: SessionDep) -> RedirectResponse:
    """Delete the clip and go back to its dataset."""
    clip = clip_service.get_clip(session, clip_id)
    dataset_id = clip.dataset_id
    clip_service.delete_clip(session, clip)
    return RedirectResponse(f"/datasets/{dataset_id}?notice=Clip+deleted", status_code=303)
