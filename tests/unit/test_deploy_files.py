"""Static checks of Dockerfile, docker-compose.yml and .dockerignore (no Docker engine here)."""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from avlora.cli import build_parser
from avlora.serve import worker_command
from core.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
DOCKERIGNORE = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` (error when unset)."""
    env = env or {}

    def one(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op == ":-":
            return arg
        if op == ":?":
            raise KeyError(f"{name} is required: {arg}")
        return ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)


def parses_as_avlora(command: list[str]) -> None:
    assert command[0] == "avlora", command
    try:
        build_parser().parse_args(command[1:])
    except SystemExit as exc:  # argparse exits on an unknown command or option
        pytest.fail(f"not an avlora command line: {command} (exit {exc.code})")


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def workers(queue: str) -> list[dict]:
    return [s for s in SERVICES.values()
            if s.get("command", [None, None])[1:2] == ["worker"] and option(s["command"], "--queues") == queue]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in DOCKERFILE.splitlines()
                                          if not line.lstrip().startswith("#")))
    out = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def dockerignored(path: str) -> bool:
    return any(fnmatch.fnmatch(path, pattern.lstrip("/")) or path.startswith(pattern.rstrip("/") + "/")
               for pattern in DOCKERIGNORE)


# --- docker-compose.yml ----------------------------------------------------------------------

def test_compose_has_the_production_services():
    assert {"postgres", "redis", "web"} <= set(SERVICES)
    assert len(workers("cpu")) == 1 and len(workers("gpu")) == 1


def test_every_command_is_a_real_avlora_command():
    studio = [s for s in SERVICES.values() if s.get("command", [""])[0] == "avlora"]
    assert len(studio) >= 3
    for service in studio:
        parses_as_avlora(service["command"])


def test_redis_keeps_an_append_only_file_on_a_volume():
    redis = SERVICES["redis"]
    command = " ".join(redis["command"]) if isinstance(redis["command"], list) else redis["command"]
    assert re.search(r"--appendonly\s+yes", command)
    named = {v.split(":")[0] for v in redis["volumes"]}
    assert any(v.split(":")[1] == "/data" for v in redis["volumes"])
    assert named <= set(COMPOSE["volumes"])


def test_postgres_data_lives_on_a_named_volume():
    mounts = dict(v.split(":")[:2] for v in SERVICES["postgres"]["volumes"])
    source = [s for s, target in mounts.items() if target == "/var/lib/postgresql/data"]
    assert source and source[0] in COMPOSE["volumes"]


def test_web_and_workers_share_data_database_and_broker():
    studio = [SERVICES["web"], *workers("cpu"), *workers("gpu")]
    pg_env = SERVICES["postgres"]["environment"]
    for service in studio:
        env = {k: interpolate(str(v), {"AVLORA_PASSWORD": "x"}) for k, v in service["environment"].items()}
        data_dir = env["AVLORA_DATA_DIR"]
        volume = [v for v in service["volumes"] if v.split(":")[1] == data_dir]
        assert volume and volume[0].split(":")[0] in COMPOSE["volumes"], "data dir must be the shared volume"
        db = urlsplit(env["AVLORA_DATABASE_URL"])
        assert db.scheme == "postgresql+psycopg" and db.hostname == "postgres"
        assert db.username == interpolate(pg_env["POSTGRES_USER"])
        assert db.password == interpolate(pg_env["POSTGRES_PASSWORD"])
        assert db.path.lstrip("/") == interpolate(pg_env["POSTGRES_DB"])
        broker = urlsplit(env["AVLORA_BROKER_URL"])
        assert broker.scheme == "redis" and broker.hostname == "redis"
        settings = Settings(**{k.removeprefix("AVLORA_").lower(): v for k, v in env.items()
                               if k.startswith("AVLORA_") and v})
        assert not settings.uses_file_broker and "sqlite" not in settings.sqlalchemy_url


def test_web_listens_publicly_only_with_a_password():
    web = SERVICES["web"]
    command = web["command"]
    assert command[1] == "serve" and "--no-worker" in command
    host, port = option(command, "--host"), option(command, "--port")
    with pytest.raises(KeyError, match="AVLORA_PASSWORD"):
        interpolate(web["environment"]["AVLORA_PASSWORD"], {})
    password = interpolate(web["environment"]["AVLORA_PASSWORD"], {"AVLORA_PASSWORD": "pw"})
    Settings(password=password).check_bind_address(host)  # would raise without one
    assert any(str(p).split(":")[-1] == port for p in web["ports"])
    assert f"EXPOSE {port}" in DOCKERFILE


def test_gpu_worker_reserves_an_nvidia_gpu_and_runs_one_job_at_a_time():
    (gpu,) = workers("gpu")
    assert option(gpu["command"], "--concurrency") == "1"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    cmd = worker_command(option(gpu["command"], "--queues"), int(option(gpu["command"], "--concurrency")))
    assert cmd[cmd.index("-Q") + 1] == "gpu" and cmd[cmd.index("-c") + 1] == "1"
    assert cmd[cmd.index("--prefetch-multiplier") + 1] == "1"
    (cpu,) = workers("cpu")
    assert "deploy" not in cpu  # the CPU worker holds no GPU


def test_workers_start_after_the_web_process_migrated():
    for service in [*workers("cpu"), *workers("gpu")]:
        assert service["depends_on"]["web"]["condition"] == "service_healthy"
    assert "/healthz" in " ".join(SERVICES["web"]["healthcheck"]["test"])


# --- Dockerfile and .dockerignore ------------------------------------------------------------

def test_dockerfile_installs_cuda_torch_before_the_project():
    pinned = [d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
              if re.split(r"[=<>~!\[ ]", d, maxsplit=1)[0] == "torch"]
    assert pinned == ["torch==2.13.0"]
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", DOCKERFILE, re.M))
    assert args["TORCH_VERSION"] == "2.13.0"
    assert args["TORCH_INDEX"].startswith("https://download.pytorch.org/whl/cu")
    runs = [rest for word, rest in dockerfile_instructions() if word == "RUN"]
    torch_step = next(i for i, r in enumerate(runs) if "torch==${TORCH_VERSION}" in r)
    assert '--index-url "${TORCH_INDEX}"' in runs[torch_step]
    project_steps = [i for i, r in enumerate(runs) if "pip install" in r and ("-r /tmp/requirements" in r or " -e ." in r)]
    assert project_steps and min(project_steps) > torch_step


def test_dockerfile_copies_what_the_app_needs_and_nothing_missing():
    copied = []
    for word, rest in dockerfile_instructions():
        if word == "COPY" and "--from=" not in rest:
            *sources, _target = shlex.split(rest)
            copied += sources
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert not dockerignored(source), f"COPY {source} but .dockerignore excludes it"
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    for needed in [p.rstrip("*") for p in packages] + ["templates", "static", "pyproject.toml"]:
        assert needed in copied, f"the image lacks {needed}/ (a package of pyproject.toml)"


def test_dockerfile_runs_the_web_as_a_non_root_user_with_a_real_command():
    instructions = dockerfile_instructions()
    user = [rest for word, rest in instructions if word == "USER"]
    assert user and user[-1] not in ("root", "0")
    cmd = [rest for word, rest in instructions if word == "CMD"][-1]
    command = yaml.safe_load(cmd)  # exec form is a JSON list
    parses_as_avlora(command)
    assert option(command, "--host") == "0.0.0.0"
    assert len([w for w, _ in instructions if w == "FROM"]) >= 2  # build and runtime stages


@pytest.mark.parametrize("path", [".venv", ".env", "data", ".git", "app/__pycache__"])
def test_dockerignore_keeps_local_state_and_secrets_out(path):
    assert dockerignored(path)
