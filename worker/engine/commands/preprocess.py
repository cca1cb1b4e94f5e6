"""``avlora preprocess METADATA --preset P --buckets "WxHxF;..." --trigger T --out DIR [--decode] [--json]``.

Writes the official ``.precomputed`` layout under DIR, recomputing only entries whose inputs
changed. Exit status: 0 when every clip was usable and every entry is present, 1 when a clip
could not be used (each named with its reason) or an entry is missing, 2 for bad arguments or
missing model weights, 130 when cancelled.
"""

from __future__ import annotations

import argparse
import json
import sys

from core.names import MODEL_PRESETS


def register(subparsers) -> None:
    """Add the ``preprocess`` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "preprocess",
        help="encode a dataset (official metadata file) into the .precomputed cache",
        description=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("metadata", help="dataset.jsonl | .json | .csv in the official ltx-trainer layout")
    parser.add_argument(
        "--preset", default=None, help=f"{' | '.join(MODEL_PRESETS)} (default: AVLORA_MODEL_PRESET or toy)"
    )
    parser.add_argument("--buckets", required=True, help='resolution buckets, e.g. "512x512x49;512x512x89"')
    parser.add_argument("--trigger", default=None, help="trigger word prepended to captions that lack it")
    parser.add_argument("--out", required=True, help="output folder; receives .precomputed/")
    parser.add_argument("--decode", action="store_true", help="also write decoded_videos/ and decoded_audio/ to check")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--data-dir", default=None, help="DATA_DIR (toy models live here; default: AVLORA_DATA_DIR)")
    parser.add_argument("--model-dir", default=None, help="MODEL_DIR for the real presets (default: AVLORA_MODEL_DIR)")
    parser.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    parser.set_defaults(func=run)


def _print_human(result) -> None:
    for clip in result.clips:
        bucket = clip.bucket or "-"
        detail = clip.reason if clip.status == "error" else (", ".join(clip.recomputed) or "all entries reused")
        shown = detail if clip.status == "error" else f"{clip.name}: {detail}"
        print(f"{clip.status:7} {bucket:>14}  {shown}")
    for line in result.missing:
        print(f"missing {line}")
    for line in result.removed:
        print(f"removed {line} (no longer matches a usable clip)")
    ok, errors = len(result.clips) - len(result.errors), len(result.errors)
    print(f"{ok} clip(s) ready, {errors} error(s); model {result.model}; output {result.out_dir}/.precomputed")


def run(args: argparse.Namespace) -> int:
    """Handle ``avlora preprocess``; returns the exit status."""
    from core.config import Settings
    from core.model_files import ModelFilesMissing
    from core.presets import UnknownPreset
    from worker.engine.data.preprocess import PreprocessCancelled, PreprocessError, preprocess_dataset

    settings = Settings()
    preset = args.preset or settings.model_preset

    def progress(index: int, total: int, message: str) -> None:
        if not args.json:
            print(f"[{index}/{total}] {message}", file=sys.stderr)

    try:
        result = preprocess_dataset(
            args.metadata,
            out_dir=args.out,
            preset=preset,
            buckets=args.buckets,
            trigger=args.trigger,
            data_dir=args.data_dir or settings.data_dir,
            model_dir=args.model_dir or settings.model_dir,
            decode=args.decode,
            device=args.device,
            progress=progress,
        )
    except (PreprocessError, UnknownPreset, ModelFilesMissing) as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc)}))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (PreprocessCancelled, KeyboardInterrupt) as exc:
        print(f"cancelled: {exc}", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
    else:
        _print_human(result)
    for clip in result.errors:
        print(f"error: {clip.reason}", file=sys.stderr)
    return 0 if result.ok else 1
