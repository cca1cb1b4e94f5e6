"""Pages: one clip with its players, images, findings and the caption form."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse

from app.routes.deps import SessionDep
from app.templating import templates
from core.errors import ApiError
from core.services import clips as clip_service
from core.services.captions import caption_progress, caption_walk, compose_for, save_caption
from core.services.clip_findings import finding_label
from core.services.datasets import dataset_to_dict
from core.services.speech import ANALYSED, plan_limits

router = APIRouter(include_in_schema=False)

UNSURE_BELOW = 0.6  # words the recogniser heard with less confidence are marked for checking


def _neighbours(clip) -> tuple[int | None, int | None]:
    ids = [c.id for c in clip.dataset.clips]
    index = ids.index(clip.id)
    return (ids[index - 1] if index > 0 else None, ids[index + 1] if index + 1 < len(ids) else None)


def _speech_context(clip, data: dict) -> dict:
    """What the transcript and split parts of the page show: the words heard (unsure ones marked),
    the split plan and its limits, the clips a split made and the clip this one was cut from."""
    names = {c.id: c.original_name for c in clip.dataset.clips}
    words = [{**w, "unsure": (w.get("confidence") if w.get("confidence") is not None else 1.0) < UNSURE_BELOW}
             for w in data["words"]]
    audio = (data["analysis"] or {}).get("audio") or {}
    return {
        "speech_ready": clip.status in ANALYSED and bool(data["facts"]["has_audio"]),
        "words": words,
        "unsure_count": sum(1 for w in words if w["unsure"]),
        "split_plan": clip.split_plan if clip.status != "split" else None,
        "split_limits": plan_limits(clip),
        "waveform_seconds": audio.get("duration") or data["facts"]["duration"] or 0,
        "split_parts": [{"id": i, "name": names.get(i, f"Clip #{i}")} for i in data["split_into"] or []],
        "split_from": ({"id": clip.split_from_id, "name": names.get(clip.split_from_id, f"Clip #{clip.split_from_id}")}
                       if clip.split_from_id else None),
    }


def _clip_context(clip, **extra) -> dict:
    previous_id, next_id = _neighbours(clip)
    data = clip_service.clip_to_dict(clip)
    return {"clip": data, "dataset": dataset_to_dict(clip.dataset, with_clips=False),
            "previous_id": previous_id, "next_id": next_id, "finding_label": finding_label,
            **_speech_context(clip, data), **extra}


def _passed(pairs) -> list[dict]:
    return [{"id": c.id, "name": c.original_name, "why": why} for c, why in pairs]


def _saved_context(clip, saved: int, saved_from: int, last: int) -> dict:
    """What the page says after a save: which caption was saved, the clips "Save and next"
    passed by because they cannot train (links, to visit them anyway), and, after the last clip
    that can train, whether every such clip has a caption (the dataset is done) or which have none."""
    if not (saved or saved_from or last):
        return {"saved": False}
    source = next((c for c in clip.dataset.clips if c.id == saved_from and c.id != clip.id), None)
    passed = []
    if last:
        passed = caption_walk(clip).passed
    elif source is not None and (walk := caption_walk(source)).next_id == clip.id:
        passed = walk.passed
    context = {"saved": True, "saved_from": {"id": source.id, "name": source.original_name} if source else None,
               "passed": _passed(passed), "last": bool(last), "progress": None}
    if last:
        progress = caption_progress(clip.dataset)
        context["progress"] = {"trainable": progress["trainable"],
                               "uncaptioned": _passed((c, "") for c in progress["uncaptioned"])}
    return context


@router.get("/clips/{clip_id}", response_class=HTMLResponse)
def clip_page(clip_id: int, request: Request, session: SessionDep, saved: int = 0, saved_from: int = 0,
              last: int = 0):
    """The clip: players, waveform and spectrogram, findings, caption form with live preview.
    ``saved_from``: "Save and next" came here from that clip; ``last``: it found no clip after."""
    clip = clip_service.get_clip(session, clip_id)
    context = _clip_context(clip, error=None, caption_error=None, **_saved_context(clip, saved, saved_from, last))
    return templates.TemplateResponse(request, "clip.html", context)


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
                 go: str = Form("stay"), confirm_transcript: str = Form("")):
    """Save the caption; ``go=next`` continues with the next clip of the dataset; the "Confirm
    transcript" button (``confirm_transcript``) marks an automatic transcript as checked."""
    clip = clip_service.get_clip(session, clip_id)
    values = {"visual": visual, "transcript": transcript, "voice": voice, "sounds": sounds, "text": text}
    if confirm_transcript:
        values["transcript_source"] = "user"
    try:
        save_caption(session, clip, values)
    except ApiError as exc:  # said beside the form, with what is missing
        session.rollback()
        return templates.TemplateResponse(request, "clip.html",
                                          _clip_context(clip, saved=False, error=None, caption_error=exc),
                                          status_code=exc.status)
    if go != "next":
        return RedirectResponse(f"/clips/{clip_id}?saved=1", status_code=303)
    next_id = caption_walk(clip).next_id  # passes by the clips that cannot train
    if next_id is None:
        return RedirectResponse(f"/clips/{clip_id}?saved=1&last=1", status_code=303)
    return RedirectResponse(f"/clips/{next_id}?saved_from={clip_id}", status_code=303)


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
