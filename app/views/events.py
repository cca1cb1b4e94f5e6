"""Server-sent events of a job, read from the database rows (the rows are the only truth).

Event names: ``job.status``, ``job.progress``, ``job.log``, ``run.metric``, ``run.checkpoint``,
``run.sample``. Every event carries an id that encodes how far the client has read each kind of
row (``l<log>.m<metric>.c<checkpoint>.s<sample>``); a client reconnecting with that id as
``Last-Event-ID`` receives only newer rows, plus the job's current status and progress.
A :class:`JobEventFeed` is polled; it is finished once the job is final and every row was sent.

A feed with ``html`` (the run page's) also sends each checkpoint and sample rendered by the page's
own partial, as ``run.checkpoint.html`` and ``run.sample.html`` right after its JSON event (htmx's sse
extension swaps them in), and ends with ``job.end`` so the page closes the stream instead of
reconnecting to a job that is over.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.templating import templates
from core.errors import NotFound
from core.models import Checkpoint, Job, JobStatus, LogLine, Metric, Sample, TrainingRun
from core.services.job_queue import job_summary, log_line_to_dict, run_link
from core.services.runs import checkpoint_to_dict, metric_to_dict, sample_to_dict

ROWS_PER_POLL = 500
_CURSOR = re.compile(r"^l(\d+)\.m(\d+)\.c(\d+)\.s(\d+)$")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def checkpoint_row_html(run: TrainingRun | dict[str, Any], checkpoint: dict[str, Any]) -> str:
    """A checkpoint's row of the run page (``checkpoint`` as :func:`checkpoint_to_dict` gives it)."""
    return templates.get_template("partials/run_checkpoint_row.html").render(run=run, checkpoint=checkpoint)


def sample_tile_html(sample: dict[str, Any]) -> str:
    """A sample's tile of the run page (``sample`` as :func:`sample_to_dict` gives it)."""
    return templates.get_template("partials/run_sample_tile.html").render(sample=sample)


@dataclass
class Cursor:
    """The last row id of each kind a client has received."""

    log: int = 0
    metric: int = 0
    checkpoint: int = 0
    sample: int = 0

    def encode(self) -> str:
        return f"l{self.log}.m{self.metric}.c{self.checkpoint}.s{self.sample}"

    @classmethod
    def parse(cls, text: str | None) -> Cursor:
        """A cursor from a ``Last-Event-ID`` header; an absent or unreadable one starts from the beginning."""
        match = _CURSOR.match((text or "").strip())
        return cls(*(int(g) for g in match.groups())) if match else cls()


@dataclass
class ServerEvent:
    """One SSE message."""

    name: str
    data: dict[str, Any] | str  # a dict is sent as JSON, a str (HTML) as it is
    id: str | None = None

    def encode(self) -> str:
        """The wire form: ``id:``, ``event:``, ``data:`` lines (one of JSON, or one per line of
        text), then a blank line."""
        text = self.data if isinstance(self.data, str) else json.dumps(self.data, separators=(",", ":"))
        lines = [f"id: {self.id}"] if self.id else []
        lines += [f"event: {self.name}"] + [f"data: {line}" for line in _LINE_BREAK.split(text)]
        return "\n".join(lines) + "\n\n"


@dataclass
class JobEventFeed:
    """Polls the rows of one job (and its training run) and turns what is new into events."""

    job_id: int
    cursor: Cursor = field(default_factory=Cursor)
    html: bool = False  # also the rendered rows, and job.end (the run page's feed)
    finished: bool = False
    _status: str | None = None
    _progress: tuple | None = None
    _more_rows: bool = False

    def poll(self, session: Session) -> list[ServerEvent]:
        """Events for everything new since the last poll (the first poll includes status and progress)."""
        job = session.get(Job, self.job_id)
        if job is None:
            raise NotFound("job", self.job_id)
        session.refresh(job)
        final = JobStatus(job.status).is_final  # read before the rows: nothing written after is missed
        events: list[ServerEvent] = []
        summary = job_summary(job)
        progress = (job.status, job.step, job.total, job.progress, job.eta_s, job.message, job.gpu)
        if progress != self._progress:
            self._progress = progress
            events.append(self._event("job.progress", {k: summary[k] for k in (
                "id", "status", "progress", "step", "total", "eta_s", "message", "gpu", "result")}))
        events += self._new_rows(session, job)
        if job.status != self._status:
            self._status = job.status
            events.append(self._event("job.status", summary))
        self.finished = final and not self._more_rows
        if self.finished and self.html:
            events.append(self._event("job.end", {"id": job.id}))
        return events

    def _event(self, name: str, data: dict[str, Any] | str) -> ServerEvent:
        return ServerEvent(name, data, self.cursor.encode())

    def _new_rows(self, session: Session, job: Job) -> list[ServerEvent]:
        self._more_rows = False
        events = []
        lines = list(session.scalars(select(LogLine).where(LogLine.job_id == job.id, LogLine.id > self.cursor.log)
                                     .order_by(LogLine.id).limit(ROWS_PER_POLL)))
        self._more_rows |= len(lines) == ROWS_PER_POLL
        for line in lines:
            self.cursor.log = line.id
            events.append(self._event("job.log", log_line_to_dict(line)))
        link = run_link(job)
        if link is None or link["type"] != "training":
            return events
        run_id = link["id"]
        for model, attr, name, to_dict in ((Metric, "metric", "run.metric", metric_to_dict),
                                           (Checkpoint, "checkpoint", "run.checkpoint", checkpoint_to_dict),
                                           (Sample, "sample", "run.sample", sample_to_dict)):
            rows = list(session.scalars(select(model).where(model.run_id == run_id,
                                                            model.id > getattr(self.cursor, attr))
                                        .order_by(model.id).limit(ROWS_PER_POLL)))
            self._more_rows |= len(rows) == ROWS_PER_POLL
            for row in rows:
                setattr(self.cursor, attr, row.id)
                data = to_dict(row)
                events.append(self._event(name, {"run_id": run_id, **data}))
                if self.html and model is not Metric:
                    events.append(self._event(f"{name}.html", self._row_html(session, run_id, model, data)))
        return events

    @staticmethod
    def _row_html(session: Session, run_id: int, model: type, data: dict[str, Any]) -> str:
        """A checkpoint or sample as the run page shows it (its partial)."""
        if model is Sample:
            return sample_tile_html(data)
        return checkpoint_row_html(session.get(TrainingRun, run_id), data)  # the best one has export links
