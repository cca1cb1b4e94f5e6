"""The flags of ``avlora bench train`` and ``avlora bench sampling`` (their handlers are
:func:`worker.engine.commands.bench.run_train` and :func:`worker.engine.commands.bench.run_sampling`)."""

from __future__ import annotations

import argparse

from core.names import CHECKPOINT_POLICIES, MODEL_PRESETS
from core.recipe.modes import MODE_AUDIO_VIDEO, MODE_REFERENCE_VOICE, TRAINING_MODES
from core.recipe.reference_pairs import REFERENCE_MAX_S

PRESET_HELP = " | ".join(MODEL_PRESETS)


def add_train_parser(kinds, handler) -> argparse.ArgumentParser:
    """Add ``bench train`` to the ``bench`` kinds, handled by ``handler``; returns its parser."""
    train = kinds.add_parser("train", help="time LoRA training steps")
    train.add_argument("--preset", default="ltx-2.3", help=f"{PRESET_HELP} (default ltx-2.3)")
    train.add_argument("--random-weights", action="store_true", help="full-size model with random weights (no files)")
    train.add_argument("--size", default="512x512x49", help="clip size WxHxF (default 512x512x49)")
    train.add_argument("--mode", choices=TRAINING_MODES, default=MODE_AUDIO_VIDEO,
                       help="the training mode whose step is timed: its LoRA layers (the mode's default targets, "
                            "narrowed as training narrows them), its inputs and its reference (default audio_video)")
    train.add_argument("--reference-seconds", type=float, default=None,
                       help=f"with --mode {MODE_REFERENCE_VOICE}: the reference clip's seconds of random audio "
                            f"latents, at most {REFERENCE_MAX_S:g} (default: as long as the clip, a reference "
                            "clip of the same bucket)")
    train.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    train.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps (default 3)")
    train.add_argument("--rank", type=int, default=32, help="LoRA rank (default 32)")
    train.add_argument("--no-gradient-checkpointing", action="store_true", help="keep activations (more memory)")
    # spelled as the run config's optimization.checkpointing_*; --checkpoint-* are the older aliases
    train.add_argument("--checkpointing-policy", "--checkpoint-policy", dest="checkpointing_policy",
                       choices=CHECKPOINT_POLICIES, default="full",
                       help="what the checkpoint recompute redoes: full (default), attention (keep SDPA outputs), "
                            "matmul (keep matmul + SDPA outputs, recompute norms and pointwise ops), none (keep all)")
    train.add_argument("--checkpointing-ratio", "--checkpoint-ratio", dest="checkpointing_ratio", type=_ratio,
                       default=1.0,
                       help="share of the blocks that take --checkpointing-policy, in (0, 1] (default 1: all)")
    train.add_argument("--checkpointing-rest-policy", "--checkpoint-rest", dest="checkpointing_rest_policy",
                       choices=CHECKPOINT_POLICIES, default="full", help="the other blocks' policy (default full)")
    train.add_argument("--no-cast-once", dest="cast_once", action="store_false", default=None,
                       help="cast the LoRA weights to bf16 at every call, not once per step")
    compile_group = train.add_mutually_exclusive_group()
    compile_group.add_argument("--compile", dest="compile", action="store_true", default=None,
                               help="torch.compile each transformer block (default: on CUDA)")
    train.add_argument("--compile-mode", choices=["reduce-overhead"], default=None,
                       help="reduce-overhead: CUDA graphs of the compiled blocks (CUDA only)")
    compile_group.add_argument("--no-compile", dest="compile", action="store_false", help="run the blocks eagerly")
    train.add_argument("--memory-budget", type=_budget, default=None,
                       help="instead of gradient checkpointing: the compiled blocks keep the activations that "
                            "are dearest to recompute within this share (0 to 1) of all of them "
                            "(needs --no-gradient-checkpointing and the compile)")
    graph_group = train.add_mutually_exclusive_group()
    graph_group.add_argument("--cuda-graph", dest="cuda_graph", action="store_true", default=None,
                             help="record the step's forward and backward as one CUDA graph and replay it "
                                  "(default: on CUDA, except with --baseline or --compile-mode)")
    graph_group.add_argument("--no-cuda-graph", dest="cuda_graph", action="store_false",
                             help="launch the step's kernels one by one")
    train.add_argument("--baseline", action="store_true",
                       help="the straightforward diffusers + peft step: no engine levers, no compile")
    train.add_argument("--quantization", choices=["none", "int8"], default="none",
                       help="int8: torchao int8 weight-only frozen base (low VRAM)")
    train.add_argument("--optimizer", choices=["adamw", "adamw8bit"], default="adamw", help="default adamw")
    train.add_argument("--low-vram", action="store_true", help="shorthand for --quantization int8 --optimizer adamw8bit")
    train.add_argument("--profile", action="store_true", help="also profile one step (top ops in the JSON)")
    train.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    add_common(train)
    train.set_defaults(func=handler)
    return train


def add_sampling_parser(kinds, handler) -> argparse.ArgumentParser:
    """Add ``bench sampling`` to the ``bench`` kinds, handled by ``handler``; returns its parser."""
    sampling = kinds.add_parser(
        "sampling", help="time one checkpoint's validation: the eager diffusers pipeline against the engine's path",
        description="On one pipeline with a LoRA attached as the trainer attaches it (random non-zero up-weights), "
                    "generate one checkpoint's validation (--prompts prompts x lora and lora-audio-off) two ways in "
                    "the same process: the plain LTX2Pipeline call with PEFT's adapter switches, no compile "
                    "(eager), and the engine's validation as a training run calls it (fast: compiled blocks on "
                    "CUDA). Reports each way's seconds, their ratio, how far their samples agree, and the "
                    "transformer's FLOP floor at a given rate.")
    sampling.add_argument("--preset", default="ltx-2.3", help=f"{PRESET_HELP} (default ltx-2.3)")
    sampling.add_argument("--random-weights", action="store_true",
                          help="full-size pipeline with random weights built on the GPU (no files)")
    sampling.add_argument("--size", default="512x512x49", help="sample size WxHxF (default 512x512x49)")
    sampling.add_argument("--prompts", type=int, default=2, help="validation prompts (default 2)")
    sampling.add_argument("--inference-steps", type=int, default=30, help="denoising steps per sample (default 30)")
    sampling.add_argument("--modality-scale", type=float, default=3.0,
                          help="modality-isolation guidance scale of both ways (default 3, the pipeline's; "
                               "1 drops its pass)")
    sampling.add_argument("--fast-rounds", type=int, default=2,
                          help="times the engine's path runs the checkpoint's validation; the last (warm) is "
                               "compared (default 2: the first compiles)")
    sampling.add_argument("--rate-tflops", type=float, default=None,
                          help="the training step's measured model FLOP rate (avlora bench train), for the FLOP "
                               "floor (default: the best bf16 matmul rate measured here, on CUDA only)")
    sampling.add_argument("--out", default=None, help="keep both ways' samples here (default: a temporary folder)")
    sampling.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    add_common(sampling)
    sampling.set_defaults(func=handler)
    return sampling


def add_common(parser) -> None:
    """The options every ``avlora bench`` kind takes: ``--json``, ``--data-dir`` and ``--model-dir``."""
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--data-dir", default=None, help="DATA_DIR (toy models live here; default: AVLORA_DATA_DIR)")
    parser.add_argument("--model-dir", default=None, help="MODEL_DIR for real weights (default: AVLORA_MODEL_DIR)")


def _fraction(text: str, *, zero_allowed: bool) -> float:
    """A number in (0, 1], or [0, 1] when ``zero_allowed``; else an argparse error naming the range."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    low_ok = value >= 0.0 if zero_allowed else value > 0.0
    if not (low_ok and value <= 1.0):
        raise argparse.ArgumentTypeError(f"{text} is not in {'[' if zero_allowed else '('}0, 1]")
    return value


def _ratio(text: str) -> float:
    """argparse type for ``--checkpointing-ratio``: a number in (0, 1]."""
    return _fraction(text, zero_allowed=False)


def _budget(text: str) -> float:
    """argparse type for ``--memory-budget``: a number in [0, 1]."""
    return _fraction(text, zero_allowed=True)
