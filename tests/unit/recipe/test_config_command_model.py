"""`avlora config` names the studio's model (AVLORA_MODEL_PRESET), the one `avlora preprocess`
uses by default, so the config a newcomer prints trains on the cache they just wrote."""

from __future__ import annotations

from avlora.cli import main as avlora
from core.recipe.run_config import run_config_from_yaml


def test_config_names_the_model_preset_of_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("AVLORA_MODEL_PRESET", "toy-2.0")
    assert avlora(["config", "--preset", "sanity", "--trigger", "ema_voice"]) == 0
    assert run_config_from_yaml(capsys.readouterr().out).model == "toy-2.0"
    assert avlora(["config", "--preset", "sanity", "--model", "ltx-2", "--trigger", "ema_voice"]) == 0
    assert run_config_from_yaml(capsys.readouterr().out).model == "ltx-2"  # --model still wins


def test_without_the_variable_config_and_preprocess_share_the_default(monkeypatch, capsys):
    from core.config import Settings

    monkeypatch.delenv("AVLORA_MODEL_PRESET", raising=False)
    assert avlora(["config", "--preset", "sanity", "--trigger", "ema_voice"]) == 0
    assert run_config_from_yaml(capsys.readouterr().out).model == Settings().model_preset == "toy"


def test_an_unknown_model_preset_in_the_environment_is_named(monkeypatch, capsys):
    monkeypatch.setenv("AVLORA_MODEL_PRESET", "ltx-9")
    assert avlora(["config"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "AVLORA_MODEL_PRESET is 'ltx-9'" in captured.err
