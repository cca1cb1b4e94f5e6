"""``avlora validate RUN_DIR [--step N] [--video-strength S] [--audio-strength S] [--variants ...]``.

Samples a run's checkpoint with the run's fixed validation prompts (trigger included) and seed:
the LoRA file is loaded into a fresh pipeline through diffusers' ``load_lora_weights``. Writes
mp4 (audio muxed in) and wav files under RUN_DIR/samples/. Video-side and audio-side LoRA
modules can be scaled apart. Exit status: 0 on success, 2 for a missing run, checkpoint or
model weights.
"""

from __future__ import annotations

import argparse
import json
import sys

from core.names import SAMPLE_VARIANTS


def register(subparsers) -> None:
    """Add the ``validate`` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "validate", help="sample a run's checkpoint (base / LoRA / LoRA audio off)",
        description=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("run_dir", help="a run's output_dir (holds training_config.yaml and checkpoints/)")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    parser.add_argument("--video-strength", type=float, default=1.0, help="LoRA strength of the video-side modules")
    parser.add_argument("--audio-strength", type=float, default=1.0, help="LoRA strength of the audio-side modules")
    parser.add_argument(
        "--variants", default=None,
        help=f"comma-separated: {', '.join(SAMPLE_VARIANTS)} (default: the run config's variants)",
    )
    parser.add_argument("--json", action="store_true", help="print the written samples as JSON")
    parser.add_argument("--data-dir", default=None, help="DATA_DIR (toy models live here; default: AVLORA_DATA_DIR)")
    parser.add_argument("--model-dir", default=None, help="MODEL_DIR for the real presets (default: AVLORA_MODEL_DIR)")
    parser.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Handle ``avlora validate``; returns the exit status."""
    from core.config import Settings
    from core.model_files import ModelFilesMissing
    from core.recipe.config_yaml import ConfigFileError
    from worker.engine.validate import validate_run

    settings = Settings()
    variants = [v.strip() for v in args.variants.split(",")] if args.variants else None
    try:
        events = validate_run(
            args.run_dir,
            data_dir=args.data_dir or settings.data_dir,
            model_dir=args.model_dir or settings.model_dir,
            step=args.step,
            video_strength=args.video_strength,
            audio_strength=args.audio_strength,
            variants=variants,
            device=args.device,
        )
    except (FileNotFoundError, ModelFilesMissing, ConfigFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = [
        {"step": e.step, "prompt": e.prompt_index + 1, "variant": e.variant, "mp4": str(e.mp4_path),
         "wav": str(e.wav_path), "seed": e.seed}
        for e in events
    ]
    if args.json:
        print(json.dumps({"samples": rows}, indent=2))
    else:
        for row in rows:
            print(f"{row['variant']:15s} prompt {row['prompt']}  {row['mp4']}")
    return 0
