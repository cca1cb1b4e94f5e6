"""Each list of names is declared once, in core/names.py, and everything else derives from it:
the run-config schema, the command lines' choices, the presets table, the worker's handlers."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

from core.names import (
    CHECKPOINT_POLICIES,
    JOB_KINDS,
    MODEL_PRESETS,
    QUEUES,
    SAMPLE_VARIANTS,
    VARIANT_AUDIO_OFF,
    JobKind,
    Queue,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "core", "worker", "avlora")
NAMES_FILE = ROOT / "core" / "names.py"


def _sources():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path, ast.parse(path.read_text(), str(path))


def _schema_enum(schema: dict, *path: str) -> tuple:
    node = schema
    for key in path:
        node = node[key]
        if "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return tuple(node.get("enum") or node["items"]["enum"])


def test_the_run_config_schema_takes_its_choices_from_core_names():
    from core.recipe.run_config import RunConfig

    schema = RunConfig.model_json_schema()
    assert _schema_enum(schema, "properties", "model") == MODEL_PRESETS
    for field in ("checkpointing_policy", "checkpointing_rest_policy"):
        assert _schema_enum(schema, "properties", "optimization", "properties", field) == CHECKPOINT_POLICIES
    assert _schema_enum(schema, "properties", "validation", "properties", "variants") == SAMPLE_VARIANTS


def test_the_presets_table_and_the_layouts_list_every_model_preset():
    from core.presets import PRESETS
    from core.recipe.architecture import MODEL_CONFIGS
    from core.recipe.lint import LAYOUT_OF_MODEL

    assert tuple(PRESETS) == MODEL_PRESETS
    assert tuple(LAYOUT_OF_MODEL) == MODEL_PRESETS and set(LAYOUT_OF_MODEL.values()) <= set(MODEL_CONFIGS)
    assert LAYOUT_OF_MODEL["toy"] == "ltx-2.3" and LAYOUT_OF_MODEL["toy-2.0"] == "ltx-2"


def _subparser(module, *names: str) -> argparse.ArgumentParser:
    root = argparse.ArgumentParser()
    module.register(root.add_subparsers(dest="command"))
    parser = root
    for name in names:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    return parser


def _choices(parser: argparse.ArgumentParser, option: str) -> tuple:
    action = next(a for a in parser._actions if option in a.option_strings)
    return tuple(action.choices)


def test_command_line_choices_come_from_core_names():
    from worker.engine.commands import bench, config

    assert _choices(_subparser(config, "config"), "--model") == MODEL_PRESETS
    train = _subparser(bench, "bench", "train")
    for option in ("--checkpointing-policy", "--checkpoint-policy", "--checkpointing-rest-policy", "--checkpoint-rest"):
        assert _choices(train, option) == CHECKPOINT_POLICIES, option


def test_bench_checkpointing_flags_keep_their_older_spellings():
    from worker.engine.commands import bench

    root = argparse.ArgumentParser()
    bench.register(root.add_subparsers(dest="command"))
    new = root.parse_args(["bench", "train", "--checkpointing-policy", "none", "--checkpointing-ratio", "0.5",
                           "--checkpointing-rest-policy", "matmul"])
    old = root.parse_args(["bench", "train", "--checkpoint-policy", "none", "--checkpoint-ratio", "0.5",
                           "--checkpoint-rest", "matmul"])
    assert vars(new) == vars(old)
    assert (new.checkpointing_policy, new.checkpointing_ratio, new.checkpointing_rest_policy) == ("none", 0.5, "matmul")
    with pytest.raises(SystemExit):
        root.parse_args(["bench", "train", "--checkpointing-policy", "some"])


def test_the_bench_spec_takes_the_checkpointing_flags_as_the_run_config_spells_them():
    from worker.engine.commands import bench

    root = argparse.ArgumentParser()
    bench.register(root.add_subparsers(dest="command"))
    args = root.parse_args(["bench", "train", "--checkpoint-policy", "attention", "--checkpointing-ratio", "0.25"])
    spec = bench.spec_from_args(args, (64, 64, 9))
    assert (spec.checkpointing_policy, spec.checkpointing_ratio, spec.checkpointing_rest_policy) == (
        "attention", 0.25, "full")
    levers = spec.levers("cpu")
    assert (levers.checkpointing_policy, levers.checkpointing_ratio) == ("attention", 0.25)


def test_the_audio_off_variant_is_spelled_only_in_core_names():
    """``git grep '"lora-audio-off"'`` finds it in core/names.py alone (prose may still name it)."""
    spelled = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path, tree in _sources()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value == VARIANT_AUDIO_OFF and path != NAMES_FILE
    ]
    assert not spelled, spelled
    assert f'"{VARIANT_AUDIO_OFF}"' in NAMES_FILE.read_text()


def _literal_strings(node: ast.AST) -> set[str] | None:
    """The strings of a tuple, list or set display made only of string constants."""
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and node.elts and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
        return {e.value for e in node.elts}
    return None


@pytest.mark.parametrize("names", [MODEL_PRESETS, CHECKPOINT_POLICIES, SAMPLE_VARIANTS, QUEUES, JOB_KINDS],
                         ids=["model presets", "checkpoint policies", "sample variants", "queues", "job kinds"])
def test_no_other_module_spells_a_whole_list_of_names(names):
    """A tuple, list, set or ``Literal[...]`` holding the whole list is declared in core/names.py
    only (a second copy would drift from it)."""
    copies = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path, tree in _sources() if path != NAMES_FILE
        for node in ast.walk(tree)
        if (found := _literal_strings(node)) is not None and found == set(names)
    ]
    assert not copies, copies


def test_jobs_are_queued_and_handled_by_the_declared_kinds_and_queues():
    from core.queue import QUEUES as BROKER_QUEUES
    from worker.handlers import HANDLERS

    assert BROKER_QUEUES is QUEUES and QUEUES == ("cpu", "gpu") and Queue.gpu == "gpu"
    assert all(isinstance(kind, JobKind) for kind in HANDLERS), "the handler registry is keyed by JobKind"
    missing = sorted(set(JobKind) - set(HANDLERS))
    assert not missing, f"job kinds without a worker handler: {missing}"
    assert HANDLERS.get("train") is HANDLERS[JobKind.train]  # a job row's plain kind finds its handler


def test_add_job_stores_plain_names_and_refuses_unknown_ones():
    from core.models import Job
    from core.services.job_queue import add_job

    class Session:
        added: list = []

        def add(self, row):
            self.added.append(row)

        def flush(self):
            pass

    job = add_job(Session(), JobKind.sample_metrics, Queue.cpu, {"run_id": 1})
    assert isinstance(job, Job) and type(job.kind) is str and type(job.queue) is str
    assert (job.kind, job.queue) == ("sample_metrics", "cpu")
    with pytest.raises(ValueError):
        add_job(Session(), "no_such_kind", Queue.cpu, {})
    with pytest.raises(ValueError):
        add_job(Session(), JobKind.train, "tpu", {})


def test_the_worker_command_accepts_only_the_declared_queues():
    from avlora.serve import EVERY_QUEUE, worker_command

    assert ",".join(QUEUES) == EVERY_QUEUE
    assert "-Q" in worker_command(EVERY_QUEUE, 1)
    with pytest.raises(SystemExit, match="use cpu, gpu"):
        worker_command("cpu,tpu", 1)
