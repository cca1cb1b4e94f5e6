"""What the training pages show: the run form (config from fields or YAML, lint with dataset
findings, preprocessing and free disk space), the preprocess progress per clip, the run header
and the jobs list. No HTTP here; the page routes call these and render templates.

The run form has two editors of one config: a few fields and the whole config as YAML. The
``source`` form value says which one the person edited last: with ``fields`` the fields are
applied onto the YAML; with ``yaml`` the YAML alone is the config (the fields are redrawn from it).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.config import get_settings
from core.models import Dataset, Job, JobStatus, PreprocessRun, TrainingRun
from core.recipe.config_yaml import ConfigFileError, load_yaml_mapping
from core.recipe.lint import lint_run_config_data
from core.recipe.run_config import PRESET_NAMES, RunConfig, parse_run_config, preset_config, run_config_to_yaml
from core.services import preflight, workers
from core.services import preprocess_runs as preprocess_service
from core.services.runs import lint_dataset_summary
from core.services.workers import waiting_for

LIVE_STATES = (JobStatus.queued.value, JobStatus.running.value, JobStatus.cancelling.value)
RESUMABLE_STATES = (JobStatus.failed.value, JobStatus.cancelled.value, JobStatus.interrupted.value)


def _yes_no(text: str) -> bool:
    """A select's "True"/"False" (what ``str`` makes of a bool) as a bool; anything else is refused."""
    choices = {"true": True, "false": False}
    if text.lower() not in choices:
        raise ValueError(text)
    return choices[text.lower()]


# Form field name -> (dotted config path, type). ``rank`` also sets ``lora.alpha`` (keep alpha == rank).
FORM_FIELDS: dict[str, tuple[str, Any]] = {
    "model": ("model", str),
    "mode": ("training.mode", str),
    "video_frozen": ("training.video_frozen", _yes_no),
    "audio_loss_weight": ("training.audio_loss_weight", float),
    "independent_audio_timesteps": ("training.independent_audio_timesteps", _yes_no),
    "buckets": ("data.buckets", str),
    "trigger": ("data.trigger", str),
    "steps": ("optimization.steps", int),
    "num_processes": ("optimization.num_processes", int),
    "learning_rate": ("optimization.learning_rate", float),
    "rank": ("lora.rank", int),
    "checkpoint_interval": ("checkpoints.interval", int),
    "sample_steps": ("validation.inference_steps", int),
}


def live(status: str | None) -> bool:
    """Whether a job in ``status`` may still change (queued, running, cancelling)."""
    return status in LIVE_STATES


def human_seconds(seconds: float | None) -> str:
    """``3725`` -> ``1 h 2 min``; empty for None."""
    if seconds is None:
        return ""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


# --- the run form ------------------------------------------------------------------------------


@dataclass
class RunForm:
    """One state of the new-run form: the YAML, the field values and what the linter says."""

    yaml_text: str
    fields: dict[str, str]
    data: dict[str, Any] | None = None  # the config as a dict (None when the YAML does not parse)
    issues: list[dict[str, Any]] = field(default_factory=list)
    disk: dict[str, Any] | None = None  # {"needed", "free", "ok"} once the config is valid
    preprocess_run: PreprocessRun | None = None  # the succeeded, current preprocessing to train from
    valid: bool = False  # the config passes the schema (the YAML shown was regenerated from it)

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [i for i in self.issues if i["severity"] == "error"]

    @property
    def warnings(self) -> list[dict[str, Any]]:
        return [i for i in self.issues if i["severity"] != "error"]

    @property
    def can_queue(self) -> bool:
        return self.data is not None and not self.errors


def _get_dotted(data: dict[str, Any], dotted: str) -> Any:
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        if not isinstance(data.get(part), dict):
            data[part] = {}
        data = data[part]
    data[last] = value


def fields_of(data: dict[str, Any]) -> dict[str, str]:
    """The form fields' values read from a config dict (missing ones are empty)."""
    values = {}
    for name, (dotted, _kind) in FORM_FIELDS.items():
        value = _get_dotted(data, dotted)
        values[name] = "" if value is None else str(value)
    dims = _get_dotted(data, "validation.video_dims")
    values["sample_size"] = "x".join(str(v) for v in dims) if isinstance(dims, (list, tuple)) else ""
    prompts = _get_dotted(data, "validation.prompts")
    values["prompts"] = "\n".join(prompts) if isinstance(prompts, list) else ""
    return values


def apply_fields(data: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """A copy of ``data`` with the form fields written in. A number that does not parse is kept
    as text, so the linter names the setting and says what is wrong with it."""
    data = copy.deepcopy(data)
    for name, (dotted, kind) in FORM_FIELDS.items():
        if name not in values:
            continue
        text = values[name].strip()
        value: Any = text
        if kind is not str:
            try:
                value = kind(text)
            except ValueError:
                value = text
        _set_dotted(data, dotted, value)
        if name == "rank":
            _set_dotted(data, "lora.alpha", value)
    if "sample_size" in values:
        parts = values["sample_size"].lower().replace(" ", "").split("x")
        try:
            _set_dotted(data, "validation.video_dims", [int(p) for p in parts])
        except ValueError:
            _set_dotted(data, "validation.video_dims", values["sample_size"])
    if "prompts" in values:
        _set_dotted(data, "validation.prompts", [p.strip() for p in values["prompts"].splitlines() if p.strip()])
    return data


def starting_config(session, dataset: Dataset, preset: str = "sanity", preprocess_run: PreprocessRun | None = None,
                    base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The config a new run starts from: ``base`` (a cloned run's) or the preset, with the model and
    buckets of ``preprocess_run`` (default: the dataset's newest succeeded, current preprocessing)."""
    if preprocess_run is None:
        preprocess_run = newest_ready_preprocess_run(session, dataset)
    if base is not None:
        data = copy.deepcopy(base)
        data.pop("output_dir", None)
        if isinstance(data.get("data"), dict):
            data["data"].pop("preprocessed_dir", None)
    else:
        model = preprocess_run.model if preprocess_run else get_settings().model_preset
        buckets = preprocess_run.buckets if preprocess_run else dataset.buckets
        config = preset_config(preset if preset in PRESET_NAMES else "sanity", model=model,
                               data={"trigger": dataset.trigger, "buckets": buckets})
        data = config.model_dump(mode="json")
        data["data"].pop("preprocessed_dir", None)
        data.pop("output_dir", None)
    if preprocess_run is not None:
        data["model"] = preprocess_run.model
        data.setdefault("data", {})["buckets"] = preprocess_run.buckets
    return data


def config_yaml(data: dict[str, Any]) -> str:
    """Commented YAML of a config dict (plain YAML when it does not validate)."""
    try:
        return run_config_to_yaml(parse_run_config(data))
    except ConfigFileError:
        import yaml

        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def newest_ready_preprocess_run(session, dataset: Dataset) -> PreprocessRun | None:
    """The dataset's newest succeeded preprocess run that still matches its clips and captions."""
    for run in preprocess_service.list_preprocess_runs(session, dataset.id):
        if run.status == JobStatus.succeeded.value and preprocess_service.is_current(run):
            return run
    return None


def read_form(yaml_text: str, values: dict[str, str], source: str) -> tuple[dict[str, Any] | None, list[dict]]:
    """The config dict the form stands for, or None with the YAML problem as an issue."""
    try:
        data = load_yaml_mapping(yaml_text, "YAML")
    except ConfigFileError as exc:
        return None, [{"code": "invalid_yaml", "severity": "error", "message": p, "detail": {}} for p in exc.problems]
    if source == "fields":
        data = apply_fields(data, values)
    return data, []


def lint_form(session, dataset: Dataset, yaml_text: str, values: dict[str, str], source: str) -> RunForm:
    """Lint what the form holds: the recipe linter with the dataset's findings, whether a matching
    preprocessing succeeded, and free disk space against the run's estimated size."""
    data, issues = read_form(yaml_text, values, source)
    form = RunForm(yaml_text=yaml_text, fields=dict(values), data=data, issues=issues)
    if data is None:
        return form
    form.fields = fields_of(data)
    form.issues = [i.to_dict() for i in lint_run_config_data(data, lint_dataset_summary(dataset))]
    try:
        config = parse_run_config(data)
    except ConfigFileError:
        return form  # the linter already reported why
    form.valid = True
    form.yaml_text = run_config_to_yaml(config) if source == "fields" else yaml_text
    form.issues += preprocess_issues(session, dataset, config, form)
    form.issues += disk_issues(config, form)
    form.issues += workers.processes_issues(session, config.optimization.num_processes)
    form.issues.sort(key=lambda issue: issue["severity"] != "error")
    return form


def preprocess_issues(session, dataset: Dataset, config: RunConfig, form: RunForm) -> list[dict[str, Any]]:
    """An error unless a succeeded preprocessing with the config's model, buckets and trigger is current."""
    run = preprocess_service.find_ready_run(session, dataset, config.model, config.data.buckets)
    if run is not None and run.trigger == config.data.trigger:
        form.preprocess_run = run
        return []
    other = next(iter(preprocess_service.ready_runs_of_other_models(session, dataset, config.model,
                                                                    config.data.buckets)), None)
    if other is not None and other.trigger == config.data.trigger:
        return [other_model_issue(other, config.model)]
    return [{"code": "preprocess_needed", "severity": "error",
             "message": f"Preprocess the dataset with model {config.model} and buckets {config.data.buckets} "
                        f"(trigger {config.data.trigger or 'none'}) first: training reads that cache, and the "
                        "clips or captions must not have changed since.",
             "detail": {"model": config.model, "buckets": config.data.buckets}}]


def other_model_issue(run: PreprocessRun, model: str) -> dict[str, Any]:
    """The error for a config whose model differs from the one the dataset's cache was made for."""
    return {"code": "preprocess_other_model", "severity": "error",
            "message": f"The dataset's preprocessed cache (preprocess run #{run.id}) was made for model {run.model}, "
                       f"but this run trains {model}. A cache made for one model never trains another: its latents "
                       "and caption features come from that model's VAEs and text encoder (LTX-2.5 reads captions "
                       f"with Gemma 4, LTX-2.3 and LTX-2 with Gemma 3). Preprocess with {model}, or train {run.model}.",
            "detail": {"model": model, "cache_model": run.model, "preprocess_run_id": run.id}}


def disk_issues(config: RunConfig, form: RunForm) -> list[dict[str, Any]]:
    """An error when DATA_DIR lacks the estimated size of checkpoints and samples (plus a margin)."""
    data_dir = get_settings().data_dir
    needed = preflight.estimate_run_bytes(config) + preflight.SAFETY_MARGIN_BYTES
    free = preflight.free_bytes(data_dir)
    form.disk = {"needed": preflight.human_bytes(needed), "free": preflight.human_bytes(free), "ok": free >= needed}
    if free >= needed:
        return []
    return [{"code": "disk_full", "severity": "error",
             "message": f"Not enough free disk space in {data_dir}: about {preflight.human_bytes(needed)} needed for "
                        f"checkpoints and samples, {preflight.human_bytes(free)} free. Free some space, keep fewer "
                        "checkpoints (keep_last_n) or sample less often.",
             "detail": {"needed_bytes": needed, "free_bytes": free}}]


# --- preprocess progress -----------------------------------------------------------------------


def preprocess_clip_rows(run: PreprocessRun, view: dict[str, Any]) -> list[dict[str, Any]]:
    """Each clip of a preprocess run with its state while the job runs: done, working or waiting.

    The engine reports progress clip by clip (``job.step`` clips done of ``job.total``); once the
    job is over the per-clip outcome on the row (ok, cached, error with reason) is shown instead.
    """
    job = run.job
    done = job.step if job is not None else 0
    rows = []
    for index, clip in enumerate(view["clips"]):
        row = dict(clip)
        if clip.get("status") in (None, "pending"):
            if job is not None and job.status == JobStatus.running.value:
                row["state"] = "done" if index < done else ("working" if index == done else "waiting")
            elif job is not None and job.status == JobStatus.queued.value:
                row["state"] = "waiting"
            else:
                row["state"] = "not done"
        else:
            row["state"] = clip["status"]
        rows.append(row)
    return rows


# --- run header and jobs -----------------------------------------------------------------------


def heartbeat_age_s(job: Job | None, now: datetime | None = None) -> float | None:
    """Seconds since the job's worker last beat (None before it started)."""
    if job is None or job.heartbeat_at is None:
        return None
    beat = job.heartbeat_at if job.heartbeat_at.tzinfo else job.heartbeat_at.replace(tzinfo=UTC)
    return max(0.0, ((now or datetime.now(UTC)) - beat).total_seconds())


def eta_left_s(job: Job | None, last: Any, now: datetime | None = None) -> float | None:
    """The worker's ETA (steps and validation samples left) counted down from when it was written,
    with the latest step's metric row: between two steps, while samples render, time still passes."""
    if job is None or job.eta_s is None:
        return None
    if last is None or last.step != job.step or last.created_at is None:
        return job.eta_s
    written = last.created_at if last.created_at.tzinfo else last.created_at.replace(tzinfo=UTC)
    return max(0.0, job.eta_s - max(0.0, ((now or datetime.now(UTC)) - written).total_seconds()))


def device_labels(gpu: str | None) -> dict[str, str]:
    """What ran where: a CPU run has no GPU, and its memory figure is the process's peak resident memory."""
    if gpu == "cpu":
        return {"gpu": "CPU (no GPU)", "device_label": "Device", "memory_label": "Memory (process peak RSS)"}
    if gpu and gpu.endswith(" processes (cpu)"):  # a run on several CPU processes: rank 0's memory
        processes = gpu.split(" ", 1)[0]
        return {"gpu": f"CPU, {processes} processes (no GPU)", "device_label": "Device",
                "memory_label": "Memory (rank 0's peak RSS)"}
    return {"gpu": gpu or "", "device_label": "GPU" if gpu else "Device", "memory_label": "GPU memory" if gpu else "Memory"}


def run_header(run: TrainingRun) -> dict[str, Any]:
    """The run page's progress header: step/total, speed, ETA, heartbeat, worker, GPU, memory."""
    job = run.job
    config = run.config or {}
    total = (job.total if job and job.total else None) or _get_dotted(config, "optimization.steps") or 0
    last = run.metrics[-1] if run.metrics else None
    peak = max((m.gpu_mem for m in run.metrics), default=None)
    return {
        "status": run.status,
        "step": job.step if job else 0,
        "total": total,
        "percent": round(100 * (job.step / total), 1) if job and total else 0,
        "step_time": f"{last.step_time:.2f} s/step" if last else "",
        "eta": human_seconds(eta_left_s(job, last)) if job and live(job.status) else "",
        "heartbeat_at": job.heartbeat_at.isoformat() if job and job.heartbeat_at else "",
        "heartbeat_age": human_seconds(heartbeat_age_s(job)) if job and job.heartbeat_at else "",
        "worker": (job.worker if job else None) or "",
        **device_labels(job.gpu if job else None),
        "gpu_mem": preflight.human_bytes(last.gpu_mem) if last else "",
        "gpu_mem_peak": preflight.human_bytes(peak) if peak is not None else "",
        "attempt": job.attempt if job else 0,
        "error": job.error if job else None,
        "message": job.message if job else "",
        "live": live(run.status),
        "resumable": run.status in RESUMABLE_STATES,
        "now_offered": now_offered(job),
        "requests": dict(job.requests or {}) if job else {},
        "pending": pending_request_lines(job),
        "waiting_for": waiting_for(job) if job else None,  # queued with no live worker for its queue
    }


def now_offered(job: Job | None) -> bool:
    """Whether "Save checkpoint now" and "Sample now" are offered: the job is a running training."""
    return job is not None and job.kind == "train" and job.status == JobStatus.running.value


_REQUEST_LINES = {"checkpoint": "Checkpoint requested at {at}: the worker saves it after the step in progress.",
                  "sample": "Samples requested at {at}: the worker renders them after the step in progress."}


def pending_request_lines(job: Job | None) -> list[str]:
    """One sentence per "now" request the worker has not carried out yet (static/js/run.js
    writes the same sentences after a click)."""
    if job is None or not live(job.status):
        return []
    lines = []
    for name, asked_at in sorted((job.requests or {}).items()):
        if name in _REQUEST_LINES:
            lines.append(_REQUEST_LINES[name].format(at=_clock(asked_at)))
    return lines


def _clock(iso: str) -> str:
    """``2026-11-25T01:02:03.4+00:00`` -> ``01:02:03 UTC`` (the text itself when it does not parse)."""
    try:
        moment = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return str(iso)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%H:%M:%S UTC")


def job_link(job: dict[str, Any]) -> tuple[str | None, str]:
    """The page a job belongs to and a label: a training run, a preprocess run, a clip or a key report."""
    run = job.get("run")
    if run and run["type"] == "training":
        return f"/runs/{run['id']}", f"Training run #{run['id']}"
    if run and run["type"] == "preprocess":
        return f"/preprocess/{run['id']}", f"Preprocess run #{run['id']}"
    subject = job.get("subject")
    if subject and subject["type"] == "clip":
        return f"/clips/{subject['id']}", f"Clip #{subject['id']}"
    if subject and subject["type"] == "key_report":
        return f"/lora/reports/{subject['id']}", f"Key report #{subject['id']}"
    return None, job.get("kind", "job")
