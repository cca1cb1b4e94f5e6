"""`avlora config` prints presets as YAML / JSON / official YAML, without importing torch."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from core.recipe.official_yaml import from_official_yaml
from core.recipe.run_config import RunConfig, run_config_from_yaml
from worker.engine.commands import config as config_command

REPO_ROOT = Path(__file__).resolve().parents[3]


def run(argv, capsys):
    parser = argparse.ArgumentParser(prog="avlora")
    config_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["config", *argv])
    code = args.func(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_prints_the_preset_as_yaml_that_loads_back(capsys):
    code, out, _ = run(["--preset", "sanity", "--model", "toy", "--trigger", "ema_voice"], capsys)
    assert code == 0
    config = run_config_from_yaml(out)
    assert (config.preset, config.model, config.optimization.steps, config.data.trigger) == ("sanity", "toy", 500, "ema_voice")


def test_json_output(capsys):
    code, out, _ = run(["--preset", "low-vram", "--json"], capsys)
    assert code == 0
    config = RunConfig.model_validate(json.loads(out))
    assert (config.lora.rank, config.quantization) == (16, "int8")


def test_official_output_is_the_trainer_schema(capsys):
    code, out, _ = run(["--preset", "full", "--official", "--official-form", "flexible", "--trigger", "ema"], capsys)
    assert code == 0
    assert "training_strategy:\n  name: flexible" in out
    assert from_official_yaml(out, base=RunConfig(data={"trigger": "ema"})).optimization.steps == 2000


def test_bad_option_value_exits_2_with_the_reason(capsys):
    code, out, err = run(["--buckets", "512x512x48"], capsys)
    assert code == 2 and out == ""
    assert "multiple of 8 plus 1" in err


def test_command_module_does_not_import_torch():
    code = (
        "import sys, argparse; from worker.engine.commands import config as c; "
        "p = argparse.ArgumentParser(); c.register(p.add_subparsers()); "
        "a = p.parse_args(['config', '--official']); a.func(a); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
