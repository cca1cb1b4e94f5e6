"""The layers' boundaries: the web never reaches the engine, the worker never loads the web.

``app`` (web) and ``core`` (shared) may not import torch, diffusers, peft, transformers or
``worker``, not even lazily inside a function; ``core`` and ``worker`` may not import the web's
FastAPI/Starlette, Jinja, argon2 or ``app``. Checked twice: statically over every import
statement, and by running the web (the preflight and every page route) and the worker's task
module in processes where the forbidden modules cannot be imported at all.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ("torch", "diffusers", "peft", "transformers", "torchao", "worker", "avlora")
WEB = ("app", "fastapi", "starlette", "jinja2", "argon2", "itsdangerous", "avlora")
FORBIDDEN = {"app": ENGINE, "core": ENGINE + WEB, "worker": WEB}


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module an import statement in ``path`` names (at any depth, lazy ones included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_across_its_boundary(package):
    forbidden = FORBIDDEN[package]
    crossings = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, name in _imports(path)
        if name.split(".")[0] in forbidden
    ]
    assert not crossings, "\n".join(crossings)


def test_the_static_check_sees_lazy_imports(tmp_path):
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from worker.engine.model import toy\n    import torch\n")
    assert [name for _, name in _imports(module)] == ["worker.engine.model", "torch"]


BLOCKER = """
import importlib.abc, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is not importable in this process")
        return None
sys.meta_path.insert(0, Blocked())
"""

WEB_SCRIPT = """
from pathlib import Path
from fastapi.testclient import TestClient
from core.migrate import upgrade
from core.db import session_scope
from core import models as m
from core.recipe.run_config import preset_config
from core.services import preflight

upgrade()
with session_scope() as s:
    ds = m.Dataset(name="d", trigger="ema_voice")
    s.add(ds); s.flush()
    clip = m.Clip(dataset_id=ds.id, original_name="a.mp4", stored_path="clips/a.mp4", content_hash="0" * 64,
                  size_bytes=1)
    s.add(clip)
    pre = m.PreprocessRun(dataset_id=ds.id, model="toy", buckets="64x64x9", trigger="ema_voice",
                          fingerprint="f", output_dir="pre/1")
    s.add(pre); s.flush()
    config = preset_config("sanity", model="toy").model_dump(mode="json")
    run = m.TrainingRun(dataset_id=ds.id, preprocess_run_id=pre.id, config=config, output_dir="runs/1")
    s.add(run); s.flush()
    job = m.Job(kind="train", queue="gpu", params={{"run_id": run.id}})
    s.add(job); s.flush()
    ids = {{"dataset_id": ds.id, "clip_id": clip.id, "run_id": run.id, "job_id": job.id, "preprocess_id": pre.id,
            "id": 1, "step": 0}}

# the preflight of a GPU job: model files of every preset, disk estimates of a toy run
for preset in ("toy", "ltx-2.3"):
    try:
        preflight.check_model_files(preset)
    except preflight.ModelNotAvailable as exc:
        assert preset != "toy", exc
        assert "MODEL_DIR" in exc.message
preflight.estimate_run_bytes(preset_config("sanity", model="toy"))

from app.main import create_app
from app.routes import ROUTERS
client = TestClient(create_app())
checked = 0
for route in [route for router in ROUTERS for route in router.routes]:
    path = getattr(route, "path", "")
    if "GET" not in getattr(route, "methods", ()) or path.startswith(("/api/", "/static", "/docs", "/openapi", "/redoc")):
        continue
    url = path
    for name, value in ids.items():
        url = url.replace("{{" + name + "}}", str(value))
    url = url.replace("{{" , "").replace("}}", "")
    response = client.get(url, headers={{"accept": "text/html"}})
    assert response.status_code < 500, (path, response.status_code, response.text[:300])
    checked += 1
assert checked >= 10, checked
print("pages", checked)
"""


def _run(script: str, blocked: tuple[str, ...], tmp_path: Path) -> str:
    code = BLOCKER.format(blocked=set(blocked)) + textwrap.dedent(script)
    env = {"AVLORA_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin", "AVLORA_MODEL_PRESET": "toy"}
    (tmp_path / "data").mkdir()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_web_serves_every_page_and_the_preflight_without_the_engine(tmp_path):
    out = _run(WEB_SCRIPT.format(), ("torch", "diffusers", "peft", "transformers", "worker"), tmp_path)
    assert "pages" in out


def test_worker_loads_without_the_web(tmp_path):
    script = """
    import worker.tasks, worker.jobs, worker.handlers
    import pkgutil, importlib
    for info in pkgutil.iter_modules(worker.handlers.__path__, "worker.handlers."):
        importlib.import_module(info.name)
    from avlora.cli import build_parser
    build_parser()
    print("ok")
    """
    assert "ok" in _run(script, ("app", "fastapi", "jinja2", "argon2", "itsdangerous"), tmp_path)


def test_cli_help_does_not_import_torch(tmp_path):
    script = """
    from avlora.cli import build_parser
    build_parser()
    print("ok")
    """
    assert "ok" in _run(script, ("torch", "diffusers", "peft", "transformers"), tmp_path)
