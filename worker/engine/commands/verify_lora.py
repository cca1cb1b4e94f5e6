"""``avlora verify-lora FILE --preset P [--json] [--allow-video-only]``.

Loads FILE into a fresh pipeline of preset P through diffusers' ``load_lora_weights`` and
compares every tensor in the file with what the model holds afterwards (alpha folding and
scale accounted for). Reports per family (attn1, attn2, audio_attn1, audio_attn2,
audio_to_video_attn, video_to_audio_attn, ff, audio_ff, connectors, other) how many keys
loaded and names those that did not. Works on official (ComfyUI / ltx-trainer) and diffusers
layouts, ours or another trainer's. Exit status: 0 only if every key loaded with its value;
1 if any key was dropped or differs, the file was altered after export, or it has no audio-side
keys (unless --allow-video-only); 2 for an unreadable file or missing model weights.
"""

from __future__ import annotations

import argparse
import json
import sys

from core.names import MODEL_PRESETS


def register(subparsers) -> None:
    """Add the ``verify-lora`` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "verify-lora",
        help="prove every tensor of a LoRA file loads into the model",
        description=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("file", help="LoRA .safetensors file (official or diffusers layout)")
    parser.add_argument("--preset", default=None, help=f"{' | '.join(MODEL_PRESETS)} (default: AVLORA_MODEL_PRESET)")
    parser.add_argument("--allow-video-only", action="store_true", help="do not fail a file without audio-side keys")
    parser.add_argument("--json", action="store_true", help="print the key report as JSON")
    parser.add_argument("--data-dir", default=None, help="DATA_DIR (toy models live here; default: AVLORA_DATA_DIR)")
    parser.add_argument("--model-dir", default=None, help="MODEL_DIR for the real presets (default: AVLORA_MODEL_DIR)")
    parser.add_argument("--device", default="cpu", help="device to load the model on (default: cpu)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Handle ``avlora verify-lora``; returns the exit status."""
    from core.config import Settings
    from core.model_files import ModelFilesMissing
    from core.presets import UnknownPreset
    from worker.engine.lora.verify import verify_lora_file
    from worker.engine.model.pipelines import load_pipeline

    settings = Settings()
    preset = args.preset or settings.model_preset

    def fresh_pipeline():
        return load_pipeline(
            preset,
            data_dir=args.data_dir or settings.data_dir,
            model_dir=args.model_dir or settings.model_dir,
            device=args.device,
        )

    try:
        report = verify_lora_file(args.file, fresh_pipeline, require_audio=not args.allow_video_only)
    except (FileNotFoundError, ValueError, ModelFilesMissing, UnknownPreset) as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc)}))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.format_text())
    return 0 if report.ok else 1
