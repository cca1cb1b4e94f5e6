"""The fault and bad-input campaign of issue 13, against the production setup, as a script anyone can run.

It starts what production runs: a fresh Postgres database, a Redis broker of its own (a `redis-server` on a
spare port, so it can be stopped and started), `avlora serve --no-worker` and separate `avlora worker`
processes, with DATA_DIR on a small tmpfs (so the disk can be filled). Then it attacks each class the
campaign once found and prints one line per check; the exit status is the number of checks that failed.

    sudo .venv/bin/python scripts/fault_campaign.py [--report docs/reliability.md] [--tmpfs-mib 400]

Mounting the tmpfs needs root; without it the full-disk checks are reported as not run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.test_training_jobs import _config as tiny_run_config  # noqa: E402  (after the path is set)
from tests.media_factory import MediaFactory  # noqa: E402
from tests.support import celery_worker, free_port, postgres_database, stop_process, web_server  # noqa: E402

FINAL = ("succeeded", "failed", "cancelled", "interrupted")
TOKEN = "campaign-token"


@dataclass
class Campaign:
    """The studio under attack: its URL, environment, worker and the results so far."""

    url: str
    env: dict[str, str]
    data_dir: Path
    media: MediaFactory
    logs: Path
    worker: subprocess.Popen | None = None
    results: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    def record(self, name: str, ok: bool, detail: str) -> None:
        self.results.append((name, ok, detail))
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)

    def job(self, job_id: int) -> dict:
        with self.http as http:
            return http.get(f"/api/v1/jobs/{job_id}").json()

    def wait(self, predicate: Callable[[], object], timeout: float, interval: float = 0.2):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        return None

    def wait_final(self, job_id: int, timeout: float = 180) -> dict:
        return self.wait(lambda: (j := self.job(job_id))["status"] in FINAL and j, timeout) or self.job(job_id)

    def start_worker(self) -> None:
        self._worker_cm = celery_worker(self.env, self.logs / "worker.log", queues="cpu,gpu", concurrency=1)
        self.worker = self._worker_cm.__enter__()

    def stop_worker(self) -> None:
        if self.worker is not None:
            self._worker_cm.__exit__(None, None, None)
            self.worker = None


# ---------------------------------------------------------------- checks

def check_startup_refusals(c: Campaign) -> None:
    """`avlora serve` and `avlora worker` on an unreachable database: one clear line, password hidden."""
    bad = "postgresql+psycopg://root:hunter2@127.0.0.1:1/avlora"
    for command in (["serve", "--no-worker", "--port", str(free_port())], ["worker"]):
        env = {**os.environ, **c.env, "AVLORA_DATABASE_URL": bad}
        started = time.monotonic()
        try:
            done = subprocess.run([sys.executable, "-m", "avlora.cli", *command], env=env, cwd=ROOT,
                                  capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            c.record(f"start-up refusal ({command[0]})", False, "still running after 60 s")
            continue
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        ok = done.returncode != 0 and 0 < len(lines) <= 3 and "hunter2" not in done.stderr + done.stdout
        c.record(f"start-up refusal ({command[0]})", ok,
                 f"exit {done.returncode} after {time.monotonic() - started:.1f} s, {len(lines)} line(s): "
                 f"{lines[-1] if lines else ''}")


def check_out_of_range_ids(c: Campaign) -> None:
    """Every route with an id in its path, given ids the database cannot store: a 4xx JSON answer."""
    with c.http as http:
        spec = http.get("/openapi.json").json()
        bad: list[str] = []
        tried = 0
        for path, methods in spec["paths"].items():
            if "{" not in path:
                continue
            for method in methods:
                for number in (2**31, 2**63, -(2**63) - 1):
                    url = path
                    for part in [p for p in path.split("/") if p.startswith("{")]:
                        url = url.replace(part, str(number) if part.endswith("id}") or "step" in part else "x")
                    answer = http.request(method.upper(), url, json={})
                    tried += 1
                    is_json = answer.headers.get("content-type", "").startswith("application/json")
                    if answer.status_code >= 500 or (path.startswith("/api/") and not is_json):
                        bad.append(f"{method.upper()} {url} -> {answer.status_code}")
    c.record("ids beyond the database's range", not bad, f"{tried} requests, {len(bad)} bad {bad[:3]}")


def check_control_characters(c: Campaign) -> None:
    """NUL and control characters in names, captions, query strings and file names: 4xx JSON, nothing written."""
    with c.http as http:
        before = len(http.get("/api/v1/datasets").json())
        answers = {
            "dataset name": http.post("/api/v1/datasets", json={"name": "bad\x00name", "trigger": "t"}),
            "trigger": http.post("/api/v1/datasets", json={"name": "ok", "trigger": "t\x07"}),
            "query": http.get("/api/v1/jobs", params={"kind": "a\x00b"}),
        }
        dataset = http.post("/api/v1/datasets", json={"name": "campaign-ctl", "trigger": "ctl"}).json()
        clip = c.media.talking_clip().read_bytes()
        boundary = "campaignboundary"
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a\x01b.mp4"\r\n'
                f"Content-Type: video/mp4\r\n\r\n").encode() + clip + f"\r\n--{boundary}--\r\n".encode()
        answers["file name"] = http.post(f"/api/v1/datasets/{dataset['id']}/clips", content=body,
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        after = len(http.get("/api/v1/datasets").json())
        clips = http.get(f"/api/v1/datasets/{dataset['id']}").json()["summary"]["clips"]
    bad = [f"{what}: {a.status_code}" for what, a in answers.items()
           if not (400 <= a.status_code < 500 and a.headers.get("content-type", "").startswith("application/json"))]
    ok = not bad and after == before + 1 and clips == 0
    c.record("control characters in text", ok, f"bad answers {bad}; datasets +{after - before} (1 expected), clips {clips}")


def check_counts(c: Campaign) -> None:
    """Identical uploads are counted as clips, not as distinct file names."""
    with c.http as http:
        dataset = http.post("/api/v1/datasets", json={"name": "campaign-count", "trigger": "cnt"}).json()
        clip = c.media.talking_clip().read_bytes()
        entries = http.post(f"/api/v1/datasets/{dataset['id']}/clips",
                            files=[("files", ("same.mp4", clip, "video/mp4")) for _ in range(5)]).json()
        for entry in entries:
            c.wait_final(entry["job_id"], 120)
        summary = http.get(f"/api/v1/datasets/{dataset['id']}").json()["summary"]
    text = str(summary)
    ok = summary["clips"] == 5 and "1 clip" not in text
    c.record("summary counts clips", ok, f"5 identical uploads: clips={summary['clips']}")
    c.count_dataset = dataset["id"]


def check_config_overrides(c: Campaign) -> None:
    """A run config whose output_dir is replaced, or that sets nothing: the answer says what the studio chose."""
    dataset_id = preprocessed_dataset(c)
    with c.http as http:
        answers = [http.post("/api/v1/runs", json={"dataset_id": dataset_id, "config": config})
                   for config in ({}, {"output_dir": "/tmp/elsewhere"})]
        warnings = [a.json().get("warnings") if a.status_code < 300 else a.json() for a in answers]
        for answer in answers:
            if answer.status_code < 300:
                http.post(f"/api/v1/jobs/{answer.json()['job_id']}/cancel")
    ok = all(answers_ok for answers_ok in (bool(w) for w in warnings))
    c.record("config overrides said", ok, f"{[a.status_code for a in answers]} {str(warnings)[:200]}")


def preprocessed_dataset(c: Campaign) -> int:
    """One captioned talking clip, preprocessed with the toy model (made once)."""
    if getattr(c, "_preprocessed", None):
        return c._preprocessed
    with c.http as http:
        dataset = http.post("/api/v1/datasets", json={"name": "campaign-train", "trigger": "ema",
                                                      "buckets": "64x64x9"}).json()
        (entry,) = http.post(f"/api/v1/datasets/{dataset['id']}/clips",
                             files=[("files", ("take.mp4", c.media.talking_clip().read_bytes(), "video/mp4"))]).json()
        c.wait_final(entry["job_id"])
        http.put(f"/api/v1/clips/{entry['id']}/caption", json={"visual": "a woman talks",
                                                               "transcript": "Hello there, how are you today?"})
        job_id = http.post(f"/api/v1/datasets/{dataset['id']}/preprocess", json={"model": "toy"}).json()["job_id"]
    assert c.wait_final(job_id)["status"] == "succeeded", "preprocessing failed"
    c._preprocessed = dataset["id"]
    return dataset["id"]


def run_config(c: Campaign, dataset_id: int, steps: int, interval: int) -> dict:
    """The tiny toy run the integration tests train (``tests.integration.test_training_jobs._config``)."""
    with c.http as http:
        return tiny_run_config(http, dataset_id, steps, interval)


def start_run(c: Campaign, steps: int, interval: int) -> dict:
    dataset_id = preprocessed_dataset(c)
    with c.http as http:
        answer = http.post("/api/v1/runs", json={"dataset_id": dataset_id, "config": run_config(c, dataset_id, steps,
                                                                                                 interval)})
    answer.raise_for_status()
    return answer.json()


def check_cancel_during_setup(c: Campaign) -> None:
    """Cancel a training job while it loads and compiles: honoured within seconds."""
    run = start_run(c, steps=4, interval=2)
    running = c.wait(lambda: c.job(run["job_id"])["status"] == "running", 60, interval=0.05)
    with c.http as http:
        asked = time.monotonic()
        http.post(f"/api/v1/jobs/{run['job_id']}/cancel")
    job = c.wait(lambda: (j := c.job(run["job_id"]))["status"] in FINAL and j, 60, interval=0.1) or c.job(run["job_id"])
    took = time.monotonic() - asked
    ok = bool(running) and job["status"] == "cancelled" and took < 10
    c.record("cancel during set-up", ok, f"{job['status']} {took:.1f} s after the request (step {job.get('step')})")


def check_kill_9(c: Campaign) -> None:
    """kill -9 of the worker mid-run: interrupted, resumed on a new worker, every checkpoint exactly once."""
    steps, interval = 6, 2
    run = start_run(c, steps=steps, interval=interval)
    c.wait(lambda: (c.job(run["job_id"]).get("step") or 0) >= 3, 180, interval=0.2)
    os.killpg(c.worker.pid, 9)
    c.worker.wait(timeout=10)
    killed = time.monotonic()
    c.worker = None
    interrupted = c.wait(lambda: c.job(run["job_id"])["status"] == "interrupted", 120, interval=0.5)
    detected = time.monotonic() - killed
    c.start_worker()
    with c.http as http:
        resumed = http.post(f"/api/v1/jobs/{run['job_id']}/resume").json()
        final = c.wait_final(resumed["id"], 240)
        checkpoints = [cp["step"] for cp in http.get(f"/api/v1/runs/{run['id']}").json()["checkpoints"]]
    on_disk = sorted(p.name for p in (c.data_dir / f"runs/{run['id']}/checkpoints").glob("lora_weights_step_*[0-9].safetensors"))
    ok = bool(interrupted) and final["status"] == "succeeded" and checkpoints == list(range(interval, steps + 1, interval))
    ok = ok and len(on_disk) == len(checkpoints)
    c.record("kill -9 of the worker", ok, f"interrupted after {detected:.0f} s; resumed run {final['status']}, "
             f"checkpoints {checkpoints}, {len(on_disk)} LoRA files")


def check_broker_down(c: Campaign, redis: RedisServer) -> None:
    """Queueing while the broker is down: the answer says so, the job is sent when it returns, one log line."""
    redis.stop()
    log = c.logs / "serve.log"
    before = log.read_text(errors="replace").count("unreachable")
    with c.http as http:
        clip_id = http.get(f"/api/v1/datasets/{c.count_dataset}").json()["clips"][0]["id"]
        answer = http.post(f"/api/v1/clips/{clip_id}/transcribe")
        job_id = answer.json().get("job_id")
        seen = http.get(f"/api/v1/jobs/{job_id}").json() if job_id else {}
    time.sleep(5)  # several sweeper passes during the outage
    redis.start()
    final = c.wait_final(job_id, 120) if job_id else {"status": "none"}
    said = log.read_text(errors="replace").count("unreachable") - before
    tracebacks = log.read_text(errors="replace").count("Traceback")
    warned = "unreachable" in (answer.text + str(seen)).lower()
    ok = answer.status_code < 300 and warned and final["status"] == "succeeded" and said <= 2 and tracebacks == 0
    c.record("broker down", ok, f"answer {answer.status_code} warned={warned}; job {final['status']} after the "
             f"broker returned; log lines about it: {said}, tracebacks: {tracebacks}")


def check_full_disk(c: Campaign) -> None:
    """Fill DATA_DIR's disk: uploads and a checkpoint save name the condition, leave no partial file."""
    if not os.path.ismount(c.data_dir):
        c.record("full disk", False, "not run: DATA_DIR is not a tmpfs (run as root)")
        return
    filler = c.data_dir / "filler.bin"

    def fill(leave: int) -> None:
        free = shutil.disk_usage(c.data_dir).free
        with open(filler, "ab") as out:
            os.posix_fallocate(out.fileno(), out.seek(0, 2), max(0, free - leave))

    def empty() -> None:
        filler.unlink(missing_ok=True)

    fill(300 * 1024)
    files_before = _files(c.data_dir)
    try:
        with c.http as http:
            dataset = http.post("/api/v1/datasets", json={"name": "campaign-full", "trigger": "full"})
            upload = http.post(f"/api/v1/datasets/{dataset.json()['id']}/clips",
                               files=[("files", ("big.mp4", c.media.talking_clip().read_bytes() * 3, "video/mp4"))]) \
                if dataset.status_code < 300 else dataset
            alive = http.get("/healthz").status_code == 200
        new_files = sorted(str(p.relative_to(c.data_dir)) for p in _files(c.data_dir) - files_before)
        named = "is full" in upload.text and "MiB free" in upload.text
        ok = upload.status_code == 507 and named and alive and not [f for f in new_files if "uploads" in f]
        c.record("full disk: upload", ok, f"{upload.status_code} {upload.text[:160]}; serving={alive}; new files {new_files[:4]}")
        check_full_disk_checkpoint(c, fill, empty)
    finally:
        empty()


def check_full_disk_checkpoint(c: Campaign, fill: Callable[[int], None], empty: Callable[[], None]) -> None:
    """Training on a full disk: refused up front; a disk that fills mid-run fails the run naming the
    condition, with no partial LoRA file and every checkpoint row's files intact."""
    dataset_id = c._preprocessed
    with c.http as http:
        refused = http.post("/api/v1/runs", json={"dataset_id": dataset_id, "config": run_config(c, dataset_id, 4, 2)})
    c.record("full disk: run refused up front", refused.status_code == 507 and "disk_full" in refused.text,
             f"{refused.status_code} {refused.text[:140]}")
    empty()
    run = start_run(c, steps=40, interval=20)
    c.wait(lambda: (c.job(run["job_id"]).get("step") or 0) >= 1, 180, interval=0.1)
    fill(64 * 1024)
    job = c.wait_final(run["job_id"], 240)
    with c.http as http:
        checkpoints = http.get(f"/api/v1/runs/{run['id']}").json()["checkpoints"]
    folder = c.data_dir / f"runs/{run['id']}"
    partial = [p.name for p in folder.rglob("*") if p.is_file() and ".tmp" in p.name]
    missing = [f for cp in checkpoints for f in cp.get("files", {}).values() if not (c.data_dir / f).is_file()]
    named = "is full" in (job.get("error") or "")
    ok = job["status"] == "failed" and named and not partial and not missing
    c.record("full disk: during a training run", ok, f"{job['status']}: {(job.get('error') or '')[:120]}; "
             f"checkpoints {[cp['step'] for cp in checkpoints]}, partial files {partial[:3]}, missing {missing[:2]}")


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def check_cli_linter(c: Campaign) -> None:
    """`avlora train` refuses a config the run form refuses (LoRA targets with no audio module), unless --force."""
    dataset_id = preprocessed_dataset(c)
    config = run_config(c, dataset_id, 2, 2)
    config["lora"]["target_modules"] = ["attn1.to_q"]
    config["output_dir"] = str(c.logs / "cli-run")
    path = c.logs / "bad.yaml"
    import yaml

    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, **c.env}
    done = subprocess.run([sys.executable, "-m", "avlora.cli", "train", str(path)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    said = (done.stdout + done.stderr).strip().splitlines()
    ok = done.returncode != 0 and any("audio" in line for line in said) and not (c.logs / "cli-run/checkpoints").exists()
    c.record("avlora train runs the linter", ok, f"exit {done.returncode}: {said[-1] if said else ''}")


# ---------------------------------------------------------------- services


class RedisServer:
    """A redis-server of the campaign's own, on a spare port, that can be stopped and started."""

    def __init__(self, folder: Path):
        self.port = free_port()
        self.folder = folder
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.folder)],
                                     stdout=subprocess.DEVNULL, start_new_session=True)
        time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


@contextlib.contextmanager
def small_disk(folder: Path, mib: int):
    """A tmpfs of ``mib`` MiB mounted at ``folder`` (root only); else a plain folder."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def write_report(path: Path, results: list[tuple[str, bool, str]], started: datetime) -> None:
    minutes = (datetime.now(UTC) - started).total_seconds() / 60
    lines = [f"Last run: {started:%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} cores), {minutes:.1f} min, "
             f"`scripts/fault_campaign.py`, {sum(ok for _, ok, _ in results)}/{len(results)} checks passed.", "",
             "| check | result | what happened |", "|---|---|---|"]
    lines += [f"| {name} | {'pass' if ok else '**FAIL**'} | {detail.replace('|', '/')} |" for name, ok, detail in results]
    text = path.read_text() if path.exists() else "# Reliability\n"
    marker = "<!-- campaign results -->"
    head = text.split(marker)[0].rstrip() + "\n\n" + marker + "\n"
    path.write_text(head + "\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, help="write the results table into this markdown file")
    parser.add_argument("--tmpfs-mib", type=int, default=400)
    args = parser.parse_args()
    started = datetime.now(UTC)
    work = Path(tempfile.mkdtemp(prefix="avlora-campaign-"))
    redis = RedisServer(work)
    redis.start()
    try:
        with small_disk(work / "data", args.tmpfs_mib) as mounted, postgres_database() as db_url:
            print(f"DATA_DIR {work / 'data'} ({'tmpfs ' + str(args.tmpfs_mib) + ' MiB' if mounted else 'plain folder'}), "
                  f"database {db_url}, broker {redis.url}", flush=True)
            results = run_checks(work, db_url, redis)
    finally:
        redis.stop()
    if args.report:
        write_report(args.report, results, started)
    failed = sum(not ok for _, ok, _ in results)
    print(f"{len(results) - failed}/{len(results)} checks passed (logs in {work})")
    return failed


def run_checks(work: Path, db_url: str, redis: RedisServer) -> list[tuple[str, bool, str]]:
    env = {"AVLORA_DATA_DIR": str(work / "data"), "AVLORA_DATABASE_URL": db_url, "AVLORA_BROKER_URL": redis.url,
           "AVLORA_MODEL_PRESET": "toy", "AVLORA_API_TOKEN": TOKEN, "AVLORA_HEARTBEAT_INTERVAL_S": "1",
           "AVLORA_HEARTBEAT_TIMEOUT_S": "6", "AVLORA_SWEEP_INTERVAL_S": "1"}
    logs = work / "logs"
    logs.mkdir()
    with web_server(env, logs / "serve.log") as url:
        c = Campaign(url=url, env=env, data_dir=work / "data", media=MediaFactory(work / "media"), logs=logs)
        check_startup_refusals(c)
        c.start_worker()
        try:
            for check in (check_out_of_range_ids, check_control_characters, check_counts, check_config_overrides,
                          check_cancel_during_setup, check_kill_9, check_cli_linter):
                _guarded(c, check)
            _guarded(c, lambda c: check_broker_down(c, redis))
            _guarded(c, check_full_disk)
        finally:
            c.stop_worker()
    return c.results


def _guarded(c: Campaign, check: Callable[[Campaign], None]) -> None:
    """Run one check; a crash of the check itself is a failed check, not the end of the campaign."""
    try:
        check(c)
    except Exception as exc:  # noqa: BLE001 - report and go on
        c.record(getattr(check, "__name__", "check"), False, f"the check crashed: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
