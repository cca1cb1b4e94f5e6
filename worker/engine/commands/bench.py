"""``avlora bench train --preset P [--random-weights] --size WxHxF [--mode M] [--steps N] [--json]``,
``avlora bench preprocess --preset P --size WxHxF [--json]``,
``avlora bench preprocess --preset P [--random-weights] --clips DIR | --generate N [--json]``,
``avlora bench run --preset P [--random-weights] --size WxHxF --steps N --checkpoints K [--json]``,
``avlora bench load --preset P [--device D] [--dtype T] [--repeats N] [--warm] [--json]`` and
``avlora bench sampling --preset P [--random-weights] [--prompts N] [--inference-steps S] [--json]``.

Times LoRA training steps of the transformer on synthetic latents: median seconds per step after
warm-up, tokens per second, peak memory, and model FLOP utilisation (FLOPs counted with
``torch.utils.flop_counter``; reference: a dense matmul in the same dtype measured in the same
run). ``--random-weights`` builds the full-size model with random weights directly on the GPU
in bf16 (no model files needed). ``--baseline`` times the straightforward diffusers + peft step
(no engine levers) for comparison; ``--low-vram`` the int8 base + 8-bit AdamW configuration;
``--mode`` a training mode's step (voice, audio_only, reference_voice: its LoRA layers and inputs).
``bench preprocess`` times video VAE encodes and caption embeddings (Gemma-3 + connectors) per
second; with ``--clips DIR`` (or ``--generate N`` real-sized test clips) it runs the real
``avlora preprocess`` path over a folder of clips and reports clips per second and each phase's
time (decode, resize, VAE encodes, audio, captions, cache writes). ``bench run`` runs the real
``avlora train`` path end to end (the sanity preset shortened to N steps and K checkpoints, a
synthetic preprocessed dataset) and reports the wall time of each phase: model build or load,
text encoding, compile and CUDA-graph capture, training steps, checkpoint writes, validation
sampling (denoising, VAE decode, audio decode, mp4/wav writing) and the total. ``bench load`` loads the
model from local files as a training run does, against the disk's read of the same files. ``bench sampling``
times one checkpoint's validation the eager diffusers way and the engine's way, with the FLOP floor. Exit status: 0 on
success, 1 when the step does not fit in memory (or the run did not complete, or a clip could not
be preprocessed), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys

from worker.engine.commands.bench_args import PRESET_HELP, add_common, add_sampling_parser, add_train_parser


def register(subparsers) -> None:
    """Add the ``bench`` subcommand (with ``bench train``) to an argparse subparsers object."""
    parser = subparsers.add_parser("bench", help="benchmark engine steps", description=__doc__.split("\n\n", 1)[1])
    kinds = parser.add_subparsers(dest="bench_kind", required=True, metavar="KIND")
    add_train_parser(kinds, run_train)
    _register_preprocess(kinds)
    _register_run(kinds)
    _register_load(kinds)
    add_sampling_parser(kinds, run_sampling)


def _register_preprocess(kinds) -> None:
    pre = kinds.add_parser(
        "preprocess", help="time preprocessing: a folder of clips (--clips/--generate), or VAE encodes and captions",
        description="Without --clips or --generate: time video VAE encodes of random pixels and caption embeddings. "
                    "With them: run the real `avlora preprocess` path over every clip of a folder into a fresh "
                    ".precomputed cache and report clips per second and where the time goes, phase by phase.")
    pre.add_argument("--preset", default="ltx-2.3", help=f"{PRESET_HELP} (full size: random weights)")
    pre.add_argument("--size", default="512x512x49", help="clip size WxHxF (default 512x512x49; not with --clips)")
    pre.add_argument("--repeats", type=int, default=5, help="timed repeats (default 5; not with --clips)")
    pre.add_argument("--clips", default=None, metavar="DIR",
                     help="preprocess every video in DIR (a DIR/<clip>.txt is its caption); with --generate the "
                          "generated clips are written into DIR and kept")
    pre.add_argument("--generate", type=int, default=0, metavar="N",
                     help="first write N test clips (H.264 + AAC speech-like audio; default a temporary folder)")
    pre.add_argument("--generate-size", default="1920x1080", metavar="WxH", help="generated clips' size (default 1920x1080)")
    pre.add_argument("--generate-fps", type=int, default=30, help="generated clips' frame rate (default 30)")
    pre.add_argument("--generate-seconds", type=float, default=3.0, help="generated clips' length (default 3)")
    pre.add_argument("--buckets", default=None, help="with --clips: the resolution buckets (default: the studio's, "
                                                     "512x512x49;512x512x89)")
    pre.add_argument("--random-weights", action="store_true",
                     help="with --clips: full-size VAEs, Gemma and connectors with random weights (no files)")
    pre.add_argument("--decode", action="store_true",
                     help="with --clips: also write the decoded previews, as the studio's preprocess job does")
    pre.add_argument("--out", default=None, help="with --clips: keep the cache here (default: a temporary folder)")
    pre.add_argument("--progress", action="store_true", help="with --clips: print each clip to stderr as it goes")
    pre.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    pre.add_argument("--json", action="store_true", help="print the result as JSON")
    pre.add_argument("--data-dir", default=None, help="DATA_DIR (toy models live here; default: AVLORA_DATA_DIR)")
    pre.add_argument("--model-dir", default=None, help="with --clips: MODEL_DIR for real weights "
                                                       "(default: AVLORA_MODEL_DIR)")
    pre.set_defaults(func=run_preprocess)


def _register_run(kinds) -> None:
    run = kinds.add_parser("run", help="time a whole shortened training run, phase by phase",
                           description="Run the real `avlora train` path (a run preset shortened to --steps and "
                                       "--checkpoints, on a synthetic preprocessed dataset) and report the wall "
                                       "time of each phase and the total.")
    run.add_argument("--preset", default="ltx-2.3", help=f"{PRESET_HELP} (default ltx-2.3)")
    run.add_argument("--random-weights", action="store_true",
                     help="full-size model with random weights built on the GPU (no files)")
    run.add_argument("--size", default="512x512x49", help="clip and sample size WxHxF (default 512x512x49)")
    run.add_argument("--steps", type=int, default=20, help="training steps (default 20)")
    run.add_argument("--checkpoints", type=int, default=2, help="checkpoints, evenly spaced, the last at the end "
                                                                "(default 2); each has its validation samples")
    run.add_argument("--run-preset", default="sanity", choices=["sanity", "full", "low-vram"],
                     help="the run config preset to shorten (default sanity)")
    run.add_argument("--inference-steps", type=int, default=None,
                     help="denoising steps per sample (default: the run preset's, 30)")
    run.add_argument("--prompts", type=int, default=None,
                     help="keep the first N of the run preset's validation prompts (default: all)")
    run.add_argument("--clips", type=int, default=4, help="synthetic clips in the dataset (default 4)")
    run.add_argument("--out", default=None, help="keep the run folder here (default: a temporary one, removed)")
    run.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    run.add_argument("--progress", action="store_true", help="print each phase's time to stderr as it ends")
    add_common(run)
    run.add_argument("--no-samples", action="store_true",
                     help="no validation samples: the training steps alone (what `bench scaling` times)")
    run.set_defaults(func=run_run)

    scaling = kinds.add_parser("scaling", help="tokens/s and scaling efficiency of one run on 1, 2, 4... processes",
                               description="Run `avlora bench run --no-samples` once per process count, each as "
                                           "that many ranks (one GPU each, or gloo on the CPU), and report tokens "
                                           "per second and the scaling efficiency against one process.")
    scaling.add_argument("--processes", default="1,2", help="process counts, comma-separated (default 1,2)")
    scaling.add_argument("--preset", default="ltx-2.3", help=f"{PRESET_HELP} (default ltx-2.3)")
    scaling.add_argument("--random-weights", action="store_true", help="full-size model with random weights")
    scaling.add_argument("--size", default="512x512x49", help="clip size WxHxF (default 512x512x49)")
    scaling.add_argument("--steps", type=int, default=20, help="training steps per count (default 20)")
    scaling.add_argument("--device", default="cuda", help="cuda (one GPU per process) | cpu (default cuda)")
    add_common(scaling)
    scaling.set_defaults(func=run_scaling)


def _register_load(kinds) -> None:
    load = kinds.add_parser("load", help="time loading the model from local files against the disk's speed",
                            description="Load the preset's weights as a training run does (the pipeline without "
                                        "the text encoder, moved to the device; then the text encoder alone) and "
                                        "report per component the bytes, wall time and GB/s against the disk's "
                                        "sequential read of the same files, host memory, and dtype passes.")
    load.add_argument("--preset", default="ltx-2.3", help=f"{PRESET_HELP} (default ltx-2.3)")
    load.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    load.add_argument("--dtype", default=None, choices=["bfloat16", "float16", "float32"],
                      help="the weights' dtype (default: the trainer's, bfloat16 on a GPU, float32 on the CPU)")
    load.add_argument("--repeats", type=int, default=1, help="measured repeats, each cold (default 1)")
    load.add_argument("--warm", action="store_true", help="keep the files in the page cache (default: dropped)")
    add_common(load)
    load.set_defaults(func=run_load)


def run_sampling(args: argparse.Namespace) -> int:
    """Handle ``avlora bench sampling``; returns the exit status."""
    from worker.engine.bench.sampling import run_sampling_command

    return run_sampling_command(args)


def run_load(args: argparse.Namespace) -> int:
    """Handle ``avlora bench load``; returns the exit status."""
    from worker.engine.bench.load import run_load_command

    return run_load_command(args)


def _si(value: float, unit: str) -> str:
    """``1.23e12, "FLOP"`` -> ``1.23 TFLOP``."""
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def _human(result) -> str:
    return (
        f"{result.preset} {result.size}, mode {result.mode}, on {result.device} ({result.dtype}"
        f"{', compiled' if result.compiled else ''}"
        f"{', CUDA graph' if result.levers.get('cuda_graph') else ''}"
        f"{', baseline' if result.baseline else ''}{', int8 base' if result.quantization == 'int8' else ''}): "
        f"{result.median_s_per_step:.3f} s/step (median of {result.steps}), {result.tokens_per_s:,.0f} tokens/s, "
        f"peak memory {result.peak_memory_bytes / 2**30:.2f} GiB (reserved {result.peak_reserved_bytes / 2**30:.2f} GiB)\n"
        f"  tokens: {result.video_tokens} video + {result.audio_tokens} audio"
        f"{f' (+ {result.reference_audio_tokens} reference)' if result.reference_audio_tokens else ''}"
        f" + {result.text_tokens} text; parameters {_si(result.transformer_parameters, '')}, "
        f"LoRA {_si(result.lora_parameters, '')} on {result.lora_families}\n"
        f"  per step: model {_si(result.model_flops_per_step, 'FLOP')}, hardware "
        f"{_si(result.hardware_flops_per_step, 'FLOP')} (forward {_si(result.forward_flops, 'FLOP')}); "
        f"matmul rate {_si(result.matmul_flops_per_s, 'FLOP/s')}; MFU {result.mfu:.2%}, HFU {result.hfu:.2%}\n"
        f"  memory: {_memory_line(result.memory)}; attention: {result.sdpa_backends or 'none seen'}"
    )


def _memory_line(memory: dict) -> str:
    labels = (("model_weights_bytes", "weights"), ("lora_gradient_bytes", "LoRA grads"),
              ("optimizer_state_bytes", "optimizer"), ("activations_and_temporaries_bytes", "activations"))
    parts = [f"{label} {memory[key] / 2**30:.2f} GiB" for key, label in labels if memory.get(key) is not None]
    return ", ".join(parts) or "n/a"


def spec_from_args(args: argparse.Namespace, size: tuple[int, int, int]):
    """The :class:`~worker.engine.bench.train.BenchSpec` that ``avlora bench train``'s flags ask for."""
    from worker.engine.bench.train import BenchSpec

    return BenchSpec(
        preset=args.preset,
        size=size,
        random_weights=args.random_weights,
        steps=args.steps,
        warmup=args.warmup,
        rank=args.rank,
        gradient_checkpointing=not args.no_gradient_checkpointing,
        checkpointing_policy=args.checkpointing_policy,
        checkpointing_ratio=args.checkpointing_ratio,
        checkpointing_rest_policy=args.checkpointing_rest_policy,
        cast_lora_weights_once=args.cast_once,
        compile_blocks=args.compile,
        compile_mode=args.compile_mode,
        cuda_graph=args.cuda_graph,
        memory_budget=args.memory_budget,
        baseline=args.baseline,
        quantization="int8" if args.low_vram else args.quantization,
        optimizer_name="adamw8bit" if args.low_vram else args.optimizer,
        profile=args.profile,
        device=args.device,
        mode=args.mode,
        reference_seconds=args.reference_seconds,
    )


def run_train(args: argparse.Namespace) -> int:
    """Handle ``avlora bench train``; returns the exit status."""
    from core.config import Settings
    from core.model_files import ModelFilesMissing
    from core.presets import UnknownPreset, get_preset
    from worker.engine.bench.train import BenchOutOfMemory, bench_train, parse_size
    from worker.engine.step.optim import OptimizerUnavailable
    from worker.engine.step.quantize import QuantizationUnavailable

    settings = Settings()
    try:
        size = parse_size(args.size)
        info = get_preset(args.preset)
        if not info.is_toy and not args.random_weights and not (args.model_dir or settings.model_dir):
            raise ValueError(f"--preset {args.preset} needs --random-weights or MODEL_DIR with its weights")
        result = bench_train(spec_from_args(args, size), data_dir=args.data_dir or settings.data_dir,
                             model_dir=args.model_dir or settings.model_dir)
    except (ValueError, UnknownPreset, ModelFilesMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (BenchOutOfMemory, QuantizationUnavailable, OptimizerUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result.to_dict(), indent=2) if args.json else _human(result))
    return 0


def run_preprocess(args: argparse.Namespace) -> int:
    """Handle ``avlora bench preprocess``; returns the exit status."""
    if args.clips is not None or args.generate:
        return run_preprocess_clips(args)
    from core.config import Settings
    from core.presets import UnknownPreset
    from worker.engine.bench.preprocess import bench_preprocess
    from worker.engine.bench.train import parse_size

    try:
        result = bench_preprocess(
            args.preset, size=parse_size(args.size), repeats=args.repeats, device=args.device,
            data_dir=args.data_dir or Settings().data_dir,
        )
    except (ValueError, UnknownPreset) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(
            f"{result.preset} on {result.device} ({result.dtype}): video VAE {result.vae_encodes_per_s:.2f} encodes/s "
            f"at {result.size} (peak {result.vae_peak_memory_bytes / 2**30:.2f} GiB); captions "
            f"{result.caption_embeddings_per_s:.2f} embeddings/s at {result.text_tokens} tokens "
            f"(peak {result.text_peak_memory_bytes / 2**30:.2f} GiB)"
        )
    return 0


def run_preprocess_clips(args: argparse.Namespace) -> int:
    """Handle ``avlora bench preprocess --clips DIR`` / ``--generate N``; returns the exit status."""
    from core.config import Settings
    from core.model_files import ModelFilesMissing
    from core.presets import UnknownPreset
    from core.recipe.buckets import DEFAULT_BUCKETS_STRING
    from worker.engine.bench.clip_phases import clips_table
    from worker.engine.bench.preprocess_clips import ClipsBenchSpec, bench_preprocess_clips
    from worker.engine.data.preprocess import PreprocessError

    settings = Settings()
    try:
        width, height = (int(v) for v in args.generate_size.lower().split("x"))
        spec = ClipsBenchSpec(
            preset=args.preset, clips=args.clips, generate=args.generate, generate_size=(width, height),
            generate_fps=args.generate_fps, generate_seconds=args.generate_seconds,
            buckets=args.buckets or DEFAULT_BUCKETS_STRING, random_weights=args.random_weights, decode=args.decode,
            device=args.device, output_dir=args.out,
            progress=(lambda i, n, m: print(f"[{i}/{n}] {m}", file=sys.stderr, flush=True)) if args.progress else None,
        )
        result = bench_preprocess_clips(spec, data_dir=args.data_dir or settings.data_dir,
                                        model_dir=args.model_dir or settings.model_dir)
    except (ValueError, UnknownPreset, ModelFilesMissing, PreprocessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=2) if args.json else clips_table(result.to_dict()))
    return 0 if result.clips_ok == result.clips and not result.errors else 1


def run_run(args: argparse.Namespace) -> int:
    """Handle ``avlora bench run``; returns the exit status."""
    from core.config import Settings
    from core.model_files import ModelFilesMissing
    from core.presets import UnknownPreset, get_preset
    from core.recipe.config_yaml import ConfigFileError
    from worker.engine.bench.run import RunBenchSpec, bench_run
    from worker.engine.bench.train import parse_size

    settings = Settings()
    model_dir = args.model_dir or settings.model_dir
    try:
        info = get_preset(args.preset)
        if not info.is_toy and not args.random_weights and not model_dir:
            raise ValueError(f"--preset {args.preset} needs --random-weights or MODEL_DIR with its weights")
        spec = RunBenchSpec(
            preset=args.preset, random_weights=args.random_weights, size=parse_size(args.size), steps=args.steps,
            checkpoints=args.checkpoints, run_preset=args.run_preset, inference_steps=args.inference_steps,
            prompts=args.prompts, clips=args.clips, device=args.device, output_dir=args.out,
            echo=(lambda line: print(line, file=sys.stderr, flush=True)) if args.progress else None,
            samples=not args.no_samples,
        )
        result = bench_run(spec, data_dir=args.data_dir or settings.data_dir, model_dir=model_dir)
    except (ValueError, UnknownPreset, ModelFilesMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ConfigFileError as exc:
        print("error: " + "; ".join(exc.problems), file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=2) if args.json else run_table(result.to_dict()))
    return 0 if result.status == "completed" else 1


def run_scaling(args: argparse.Namespace) -> int:
    """Handle ``avlora bench scaling``; returns the exit status."""
    from core.config import Settings
    from worker.engine.bench.scaling import bench_scaling, scaling_table

    try:
        counts = [int(part) for part in args.processes.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        print(f"error: --processes takes counts like 1,2,4, got {args.processes!r}", file=sys.stderr)
        return 2
    if args.device.startswith("cuda"):
        import torch

        if torch.cuda.device_count() < max(counts):
            print(f"error: {max(counts)} processes need {max(counts)} GPUs; this host has "
                  f"{torch.cuda.device_count()} (on the CPU: --device cpu)", file=sys.stderr)
            return 2
    settings = Settings()
    result = bench_scaling(counts, preset=args.preset, size=args.size, steps=args.steps, device=args.device,
                           random_weights=args.random_weights, data_dir=args.data_dir or settings.data_dir,
                           model_dir=args.model_dir or settings.model_dir,
                           echo=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps(result.to_dict(), indent=2) if args.json else scaling_table(result.to_dict()))
    return 0 if all(p.status == "completed" for p in result.points) else 1


def run_table(result: dict) -> str:
    """``avlora bench run``'s result as a table: each phase's seconds and share, the total, then
    each validation round and the training steps."""
    total = result["total_s"]
    samples = sum(r["samples"] for r in result["rounds"])
    lines = [
        f"{result['preset']} {result['size']} on {result['device']} ({result['dtype']}): {result['run_preset']} run "
        f"of {result['steps']} steps, checkpoints at {result['checkpoint_steps']}, {samples} samples of "
        f"{result['inference_steps']} steps ({result['prompts']} prompts x {', '.join(result['variants'])})",
        f"{'phase':<96} {'seconds':>9} {'share':>6}",
    ]
    for name, seconds in result["phases"].items():
        label = result["phase_labels"].get(name, name)
        lines.append(f"{label:<96} {seconds:9.2f} {seconds / total if total else 0:6.1%}")
    lines.append(f"{'total (model build or load to the last sample)':<96} {total:9.2f} {1:6.1%}")
    for round_ in result["rounds"]:
        rows = round_["sample_rows"]
        parts = {key: sum(r[key] for r in rows) / len(rows)
                 for key in ("sampling_denoise", "vae_decode", "audio_decode", "sample_write")}
        lines.append(f"round at step {round_['step']}: {round_['samples']} samples in {round_['seconds']:.2f} s; "
                     f"per sample {round_['seconds'] / len(rows):.2f} s (denoise {parts['sampling_denoise']:.2f}, "
                     f"VAE {parts['vae_decode']:.2f}, audio {parts['audio_decode']:.2f}, "
                     f"write {parts['sample_write']:.2f})")
    steps = result["steps_detail"]
    lines.append(f"training steps: {steps['count']}, first {steps['first_s']:.2f} s, steady median "
                 f"{steps['steady_median_s']:.3f} s, after sampling {[round(t, 2) for t in steps['after_sampling_s']]}")
    return "\n".join(lines)
