"""Helpers for the web tests: create datasets, upload files, run probe jobs in-process."""

from __future__ import annotations

import html as html_module
import re
from pathlib import Path

from fastapi.testclient import TestClient


def csrf_of(client: TestClient, path: str) -> str:
    """The CSRF token of the page at ``path`` (its meta tag)."""
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', client.get(path).text).group(1)


def page_text(html: str) -> str:
    """A page's text as a reader sees it: tags gone, white space collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def config_yaml_of(html: str) -> str:
    """The run form's config YAML (its textarea), unescaped."""
    body = re.search(r'<textarea id="config-yaml"[^>]*>(.*?)</textarea>', html, re.S).group(1)
    return html_module.unescape(body)


def create_dataset(api: TestClient, name: str = "Ema", trigger: str = "ema_voice", **extra) -> dict:
    response = api.post("/api/v1/datasets", json={"name": name, "trigger": trigger, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def upload(api: TestClient, dataset_id: int, *paths: Path, names: list[str] | None = None):
    """POST the files as multipart field "files"; returns the response."""
    names = names or [p.name for p in paths]
    files = [("files", (name, path.read_bytes(), "video/mp4")) for name, path in zip(names, paths)]
    return api.post(f"/api/v1/datasets/{dataset_id}/clips", files=files)


# Jobs a training queues for itself as it goes (measuring samples, key reports of checkpoints).
FOLLOW_UP_KINDS = ("sample_metrics", "key_report")


def run_pending_jobs() -> list[str]:
    """Run every queued job in this process with the worker's handlers (no broker needed) and
    return their final statuses; follow-up jobs those jobs queued are run too, not reported."""
    from sqlalchemy import select

    from core.config import get_settings
    from core.db import session_scope
    from core.models import Job
    from worker.handlers import HANDLERS
    from worker.jobs import run_job

    def queued(*where) -> list[int]:
        with session_scope() as session:
            return list(session.scalars(select(Job.id).where(Job.status == "queued", *where).order_by(Job.id)))

    timeout = get_settings().heartbeat_timeout_s
    ids = queued()
    statuses = [run_job(job_id, HANDLERS, timeout) for job_id in ids]
    if ids:
        while follow_ups := queued(Job.id > max(ids), Job.kind.in_(FOLLOW_UP_KINDS)):
            for job_id in follow_ups:
                run_job(job_id, HANDLERS, timeout)
    return statuses


def stored_files(data_dir: Path) -> list[Path]:
    """Every file under DATA_DIR/clips (partial uploads included)."""
    root = data_dir / "clips"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
