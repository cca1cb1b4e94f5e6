"""JSON API v1: run-config presets (the same configs ``avlora config`` prints)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from app.routes.deps import SessionDep
from core.config import get_settings
from core.errors import InvalidInput, NotFound
from core.recipe.config_yaml import ConfigFileError
from core.recipe.run_config import PRESET_DESCRIPTIONS, PRESET_NAMES, preset_config, run_config_to_yaml
from core.services.datasets import get_dataset

router = APIRouter(prefix="/api/v1", tags=["presets"])


@router.get("/presets")
def list_presets() -> list[dict[str, str]]:
    """The run-config presets with a one-line description each."""
    return [{"name": name, "description": PRESET_DESCRIPTIONS[name]} for name in PRESET_NAMES]


@router.get("/presets/{name}", response_model=None)
def read_preset(name: str, session: SessionDep, model: str | None = None, trigger: str | None = None,
                buckets: str | None = None, dataset_id: int | None = None,
                format: Literal["json", "yaml"] = "json") -> dict[str, Any] | PlainTextResponse:
    """A run config of preset sanity | full | low-vram.

    The model defaults to the studio's MODEL_PRESET; with `dataset_id`, trigger and buckets
    default to the dataset's.
    """
    if name not in PRESET_NAMES:
        raise NotFound("preset", name)
    if dataset_id is not None:
        dataset = get_dataset(session, dataset_id)
        trigger, buckets = trigger or dataset.trigger, buckets or dataset.buckets
    overrides: dict[str, Any] = {"model": model or get_settings().model_preset}
    data = {k: v for k, v in (("trigger", trigger), ("buckets", buckets)) if v}
    if data:
        overrides["data"] = data
    try:
        config = preset_config(name, **overrides)
    except ConfigFileError as exc:
        raise InvalidInput("invalid_preset_options", "; ".join(exc.problems)) from exc
    if format == "yaml":
        return PlainTextResponse(run_config_to_yaml(config), media_type="application/yaml")
    return config.model_dump(mode="json")
