"""Helpers for the web tests: create datasets, upload files, run probe jobs in-process."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient


def create_dataset(api: TestClient, name: str = "Ema", trigger: str = "ema_voice", **extra) -> dict:
    response = api.post("/api/v1/datasets", json={"name": name, "trigger": trigger, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def upload(api: TestClient, dataset_id: int, *paths: Path, names: list[str] | None = None):
    """POST the files as multipart field "files"; returns the response."""
    names = names or [p.name for p in paths]
    files = [("files", (name, path.read_bytes(), "video/mp4")) for name, path in zip(names, paths)]
    return api.post(f"/api/v1/datasets/{dataset_id}/clips", files=files)


def run_pending_jobs() -> list[str]:
    """Run every queued job in this process with the worker's handlers (no broker needed)."""
    from sqlalchemy import select

    from app.config import get_settings
    from app.db import session_scope
    from app.models import Job
    from worker.handlers import HANDLERS
    from worker.jobs import run_job

    with session_scope() as session:
        ids = list(session.scalars(select(Job.id).where(Job.status == "queued").order_by(Job.id)))
    return [run_job(job_id, HANDLERS, get_settings().heartbeat_timeout_s) for job_id in ids]


def stored_files(data_dir: Path) -> list[Path]:
    """Every file under DATA_DIR/clips (partial uploads included)."""
    root = data_dir / "clips"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
