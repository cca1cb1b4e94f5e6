"""``avlora config``: print a run config (YAML) to edit, or the official trainer's YAML.

Pure Python (no torch): the config schema lives in :mod:`core.recipe.run_config`. Without
``--model`` the config names the studio's model (``AVLORA_MODEL_PRESET``), the model
``avlora preprocess`` uses by default, so the two commands a newcomer runs first agree.
"""

from __future__ import annotations

import argparse
import json
import sys

from core.config import Settings
from core.names import MODEL_PRESETS
from core.recipe.config_yaml import ConfigFileError
from core.recipe.run_config import PRESET_DESCRIPTIONS, PRESET_NAMES, preset_config, run_config_to_yaml


def register(subparsers) -> None:
    """Add the ``config`` subcommand to an argparse sub-parser collection."""
    presets = "; ".join(f"{name}: {PRESET_DESCRIPTIONS[name]}" for name in PRESET_NAMES)
    parser = subparsers.add_parser(
        "config",
        help="print a run config (YAML) to edit",
        description=f"Print a run config to edit and pass to `avlora train`. Presets: {presets}",
    )
    parser.add_argument("--preset", choices=PRESET_NAMES, default="full", help="recipe to start from (default: full)")
    parser.add_argument("--model", choices=MODEL_PRESETS, default=None,
                        help="base model (default: AVLORA_MODEL_PRESET or toy, as `avlora preprocess`)")
    parser.add_argument("--trigger", default=None, help="trigger word, e.g. ema_voice")
    parser.add_argument("--buckets", default=None, help='resolution buckets, e.g. "512x512x49;512x512x89"')
    parser.add_argument("--data", dest="preprocessed_dir", default=None, help="preprocessed data folder")
    parser.add_argument("--output-dir", default=None, help="run folder for checkpoints and samples")
    parser.add_argument(
        "--official", action="store_true", help="print the official ltx-trainer YAML instead of ours"
    )
    parser.add_argument(
        "--official-form", choices=("text_to_video", "flexible"), default="text_to_video",
        help="training_strategy form of the official YAML (default: text_to_video)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    parser.set_defaults(func=run_config_command)


def run_config_command(args: argparse.Namespace) -> int:
    """Build the preset with the given overrides and print it; exit 2 with a message if invalid."""
    model = args.model or Settings().model_preset
    if model not in MODEL_PRESETS:
        print(f"avlora config: AVLORA_MODEL_PRESET is {model!r}: use one of {', '.join(MODEL_PRESETS)} "
              "(or pass --model)", file=sys.stderr)
        return 2
    overrides: dict = {"model": model}
    if args.output_dir:
        overrides["output_dir"] = args.output_dir
    data = {k: v for k, v in (("trigger", args.trigger), ("buckets", args.buckets),
                              ("preprocessed_dir", args.preprocessed_dir)) if v is not None}
    if data:
        overrides["data"] = data
    try:
        config = preset_config(args.preset, **overrides)
    except ConfigFileError as exc:
        for problem in exc.problems:
            print(f"avlora config: {problem}", file=sys.stderr)
        return 2

    if args.official:
        from core.recipe.official_yaml import OfficialConfigError, to_official

        try:
            export = to_official(config, args.official_form)
        except OfficialConfigError as exc:
            print(f"avlora config: {exc}", file=sys.stderr)
            return 2
        if args.json:
            print(json.dumps({"config": export.data, "notes": export.notes}, indent=2))
        else:
            sys.stdout.write(export.to_yaml())
        return 0

    if args.json:
        print(json.dumps(config.model_dump(mode="json"), indent=2))
    else:
        sys.stdout.write(run_config_to_yaml(config))
    return 0
