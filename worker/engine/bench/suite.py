"""Run a list of training / preprocessing benchmarks in one process and keep every result.

``python -m worker.engine.bench.suite --plan h100-a --out DIR`` runs the plan's configurations in
order (the ones that matter most first), appends each result (or its error) as one JSON line to
``DIR/results.jsonl`` as soon as it is done, writes the profile table of profiled runs to
``DIR/profile_<name>.txt``, and prints a one-line summary per configuration. A configuration that
fails (out of memory, missing package) is recorded and the suite goes on. ``docs/benchmarks.md``
gives the plans' figures; ``--plan cpu-smoke`` runs the same code on the toy in seconds.
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from pathlib import Path

TRAIN_PLANS: dict[str, list[dict]] = {
    # name: BenchSpec fields (preset / steps / warmup filled in per plan), "repeats" for preprocessing
    "h100-a": [  # in order of importance: a run cut short by its time limit keeps the first ones
        {"name": "baseline-512-gc", "size": (512, 512, 49), "baseline": True, "gradient_checkpointing": True},
        {"name": "compiled-512-gc", "size": (512, 512, 49), "compile_blocks": True, "profile": True},
        {"name": "preprocess-512", "size": (512, 512, 49), "repeats": 5},
        {"name": "compiled-768x121-gc", "size": (768, 768, 121), "compile_blocks": True},
        {"name": "lowvram-512-gc", "size": (512, 512, 49), "compile_blocks": True,
         "quantization": "int8", "optimizer_name": "adamw8bit"},
        {"name": "lowvram-512-gc-eager", "size": (512, 512, 49), "compile_blocks": False,
         "quantization": "int8", "optimizer_name": "adamw8bit", "fallback_for": "lowvram-512-gc"},
        {"name": "levers-512-gc", "size": (512, 512, 49), "compile_blocks": False},
        {"name": "compiled-512-nogc", "size": (512, 512, 49), "compile_blocks": True, "gradient_checkpointing": False},
        {"name": "baseline-512-nogc", "size": (512, 512, 49), "baseline": True, "gradient_checkpointing": False},
    ],
    "h100-b": [  # the second call: low-VRAM, where a compiled 512 step's host time goes, the rest
        {"name": "lowvram-512-gc-eager", "size": (512, 512, 49), "compile_blocks": False,
         "quantization": "int8", "optimizer_name": "adamw8bit"},
        {"name": "profile-compiled-512-gc", "size": (512, 512, 49), "compile_blocks": True, "profile": True,
         "steps": 5, "warmup": 2},
        {"name": "levers-512-gc", "size": (512, 512, 49), "compile_blocks": False},
        {"name": "compiled-512-nogc", "size": (512, 512, 49), "compile_blocks": True, "gradient_checkpointing": False},
        {"name": "baseline-512-nogc", "size": (512, 512, 49), "baseline": True, "gradient_checkpointing": False},
    ],
    "h100-c": [  # next session, call 1: selective checkpointing at 768x768x121 (GPU-bound)
        {"name": "sac-attn-768x121", "size": (768, 768, 121), "checkpointing_policy": "attention"},
        {"name": "sac-attn-r75-768x121", "size": (768, 768, 121), "checkpointing_policy": "attention",
         "checkpointing_ratio": 0.75},
        {"name": "sac-attn-r875-768x121", "size": (768, 768, 121), "checkpointing_policy": "attention",
         "checkpointing_ratio": 0.875, "fallback_for": "sac-attn-r75-768x121"},
        {"name": "r75-768x121", "size": (768, 768, 121), "checkpointing_ratio": 0.75},
    ],
    "h100-d": [  # next session, call 2: host overhead at 512x512x49 (host-bound)
        {"name": "cudagraphs-512-gc", "size": (512, 512, 49), "compile_mode": "reduce-overhead"},
        {"name": "default-512-gc", "size": (512, 512, 49), "profile": True},
        {"name": "nocast-512-gc", "size": (512, 512, 49), "cast_lora_weights_once": False},
        {"name": "cudagraphs-512-nogc", "size": (512, 512, 49), "compile_mode": "reduce-overhead",
         "gradient_checkpointing": False},
    ],
    "h100-e": [  # whole-step CUDA graph at 512x512x49 (host-bound): the new default first
        {"name": "graph-512-gc", "size": (512, 512, 49), "profile": True},
        {"name": "graph-512-nogc", "size": (512, 512, 49), "gradient_checkpointing": False},
        {"name": "graph-512-budget30", "size": (512, 512, 49), "gradient_checkpointing": False, "memory_budget": 0.3},
        {"name": "baseline-512-nogc", "size": (512, 512, 49), "baseline": True, "gradient_checkpointing": False},
        {"name": "nograph-512-gc", "size": (512, 512, 49), "cuda_graph": False, "profile": True},
    ],
    "h100-f": [  # 768x768x121 (GPU-bound): recompute less within 80 GB; then 512 memory with the graph
        {"name": "graph-768-gc", "size": (768, 768, 121)},
        {"name": "graph-768-budget50", "size": (768, 768, 121), "gradient_checkpointing": False, "memory_budget": 0.5},
        {"name": "graph-768-budget25", "size": (768, 768, 121), "gradient_checkpointing": False, "memory_budget": 0.25,
         "fallback_for": "graph-768-budget50"},
        {"name": "graph-512-gc", "size": (512, 512, 49)},
        {"name": "graph-512-nogc", "size": (512, 512, 49), "gradient_checkpointing": False},
    ],
    "h100-g": [  # 768x768x121: a budget small enough for 80 GB (0.25 ran out of memory), profiled
        {"name": "graph-768-budget15", "size": (768, 768, 121), "gradient_checkpointing": False, "memory_budget": 0.15,
         "profile": True},
        {"name": "graph-768-budget08", "size": (768, 768, 121), "gradient_checkpointing": False, "memory_budget": 0.08,
         "profile": True, "fallback_for": "graph-768-budget15"},
    ],
    "h100-h": [  # 768x768x121: selective checkpointing inside the compiled blocks
        {"name": "graph-768-attn", "size": (768, 768, 121), "checkpointing_policy": "attention"},
        {"name": "graph-768-none15-attn", "size": (768, 768, 121), "checkpointing_policy": "none",
         "checkpointing_ratio": 0.15, "checkpointing_rest_policy": "attention"},
        {"name": "graph-768-none08-attn", "size": (768, 768, 121), "checkpointing_policy": "none",
         "checkpointing_ratio": 0.08, "checkpointing_rest_policy": "attention",
         "fallback_for": "graph-768-none15-attn"},
        {"name": "graph-768-full", "size": (768, 768, 121)},
    ],
    "h100-i": [  # 768x768x121: spend the memory left over by the attention policy
        {"name": "graph-768-matmul25-attn", "size": (768, 768, 121), "checkpointing_policy": "matmul",
         "checkpointing_ratio": 0.25, "checkpointing_rest_policy": "attention"},
        {"name": "graph-768-matmul15-attn", "size": (768, 768, 121), "checkpointing_policy": "matmul",
         "checkpointing_ratio": 0.15, "checkpointing_rest_policy": "attention",
         "fallback_for": "graph-768-matmul25-attn"},
        {"name": "graph-768-none19-attn", "size": (768, 768, 121), "checkpointing_policy": "none",
         "checkpointing_ratio": 0.19, "checkpointing_rest_policy": "attention"},
        {"name": "graph-768-attn", "size": (768, 768, 121), "checkpointing_policy": "attention"},
    ],
    "h100-j": [  # the new default at 512 (checkpoint inside the compiled blocks), the best 768 mix
        {"name": "graph-512-full", "size": (512, 512, 49)},
        {"name": "graph-768-matmul30-attn", "size": (768, 768, 121), "checkpointing_policy": "matmul",
         "checkpointing_ratio": 0.3, "checkpointing_rest_policy": "attention"},
    ],
    "h100-k": [  # low VRAM: the int8 base's eager step replayed as one CUDA graph
        {"name": "lowvram-512-graph", "size": (512, 512, 49), "compile_blocks": False, "cuda_graph": True,
         "quantization": "int8", "optimizer_name": "adamw8bit"},
        {"name": "lowvram-512-eager", "size": (512, 512, 49), "compile_blocks": False, "cuda_graph": False,
         "quantization": "int8", "optimizer_name": "adamw8bit"},
    ],
    "h100-l": [  # low VRAM with the CUDA graph again, its reserved memory counted after the cache is returned
        {"name": "lowvram-512-graph", "size": (512, 512, 49), "compile_blocks": False, "cuda_graph": True,
         "quantization": "int8", "optimizer_name": "adamw8bit"},
    ],
    "cpu-smoke": [
        {"name": "baseline", "size": (64, 64, 9), "baseline": True},
        {"name": "levers", "size": (64, 64, 9), "profile": True},
        {"name": "int8", "size": (64, 64, 9), "quantization": "int8"},
        {"name": "sac-attn-r50", "size": (64, 64, 9), "checkpointing_policy": "attention",
         "checkpointing_ratio": 0.5},
        {"name": "preprocess", "size": (64, 64, 9), "repeats": 2},
    ],
}
PLAN_PRESETS = {"h100-a": ("ltx-2.3", 20, 3), "h100-b": ("ltx-2.3", 20, 2), "h100-c": ("ltx-2.3", 20, 2),
                "h100-d": ("ltx-2.3", 20, 3), "h100-e": ("ltx-2.3", 20, 2),
                "h100-f": ("ltx-2.3", 20, 2), "h100-g": ("ltx-2.3", 20, 2),
                "h100-h": ("ltx-2.3", 20, 2),
                "h100-i": ("ltx-2.3", 20, 2),
                "h100-j": ("ltx-2.3", 20, 2),
                "h100-k": ("ltx-2.3", 20, 2),
                "h100-l": ("ltx-2.3", 20, 2), "cpu-smoke": ("toy", 2, 1)}


def _summary(name: str, data: dict) -> str:
    if "error" in data:
        return f"{name:24s} ERROR {data['error'][:160]}"
    if "median_s_per_step" in data:
        mem = data.get("memory", {})
        act = mem.get("activations_and_temporaries_bytes")
        return (
            f"{name:24s} {data['median_s_per_step']:.3f} s/step  MFU {data['mfu']:.1%}  "
            f"peak {data['peak_memory_bytes'] / 2**30:.1f} GiB (reserved {data['peak_reserved_bytes'] / 2**30:.1f})  (weights "
            f"{(mem.get('model_weights_bytes') or 0) / 2**30:.1f}, act {(act or 0) / 2**30:.1f})  "
            f"sdpa {data['sdpa_backends']} / masked {data['sdpa_backends_with_mask']}"
        )
    return (
        f"{name:24s} VAE {data['vae_encodes_per_s']:.2f}/s ({data['vae_peak_memory_bytes'] / 2**30:.1f} GiB)  "
        f"captions {data['caption_embeddings_per_s']:.2f}/s ({data['text_peak_memory_bytes'] / 2**30:.1f} GiB)"
    )


def _record(out: Path, name: str, data: dict) -> None:
    profile = data.get("profile")
    if profile:
        (out / f"profile_{name}.txt").write_text(profile.pop("table"))
    data["name"] = name
    with (out / "results.jsonl").open("a") as handle:
        handle.write(json.dumps(data) + "\n")
    print(_summary(name, data), flush=True)


def environment() -> dict:
    """Device and software versions, for the benchmark notes."""
    import importlib.metadata
    import platform

    import torch

    versions = {}
    for package in ("torch", "diffusers", "peft", "transformers", "torchao", "bitsandbytes", "triton"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    cuda = torch.cuda.is_available()
    return {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "versions": versions,
        "sdpa_flash_enabled": torch.backends.cuda.flash_sdp_enabled() if cuda else None,
        "sdpa_cudnn_enabled": torch.backends.cuda.cudnn_sdp_enabled() if cuda else None,
    }


def run_plan(plan: str, out: Path, *, data_dir=None, only: list[str] | None = None,
             deadline_s: float | None = None) -> None:
    """Run ``plan``'s configurations (all, or those named in ``only``), recording each.

    A configuration with ``fallback_for`` runs only when that one failed. None starts after
    ``deadline_s`` seconds.
    """
    import gc

    import torch
    import torch._dynamo

    from worker.engine.bench.preprocess import bench_preprocess
    from worker.engine.bench.train import BenchSpec, bench_train

    preset, steps, warmup = PLAN_PRESETS[plan]
    out.mkdir(parents=True, exist_ok=True)
    suite_start, failed = time.perf_counter(), set()
    env = environment()
    with (out / "results.jsonl").open("a") as handle:
        handle.write(json.dumps({"name": "environment", **env}) + "\n")
    print(json.dumps(env), flush=True)
    for spec in TRAIN_PLANS[plan]:
        spec = dict(spec)
        name, fallback_for = spec.pop("name"), spec.pop("fallback_for", None)
        if (only and name not in only) or (fallback_for and fallback_for not in failed):
            continue
        if deadline_s is not None and time.perf_counter() - suite_start > deadline_s:
            print(f"{name:24s} SKIPPED (suite deadline)", flush=True)
            continue
        started = time.perf_counter()
        try:
            if name.startswith("preprocess-") or name == "preprocess":
                result = bench_preprocess(preset, data_dir=data_dir, **spec)
            else:
                result = bench_train(BenchSpec(**{"preset": preset, "steps": steps, "warmup": warmup, **spec}),
                                     data_dir=data_dir)
            data = result.to_dict()
        except Exception as exc:  # noqa: BLE001 - recorded, and the suite goes on
            data = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
            failed.add(name)
        data["wall_s"] = time.perf_counter() - started
        _record(out, name, data)
        torch._dynamo.reset()  # compiled graphs hold the finished model's weights
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--plan``, ``--out``, ``--data-dir``, ``--only NAME ...``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", choices=sorted(TRAIN_PLANS), required=True)
    parser.add_argument("--out", required=True, help="folder for results.jsonl and profile tables")
    parser.add_argument("--data-dir", default=None, help="DATA_DIR for the toy (cpu-smoke)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these configuration names")
    parser.add_argument("--deadline-s", type=float, default=None, help="start no configuration after this many s")
    args = parser.parse_args(argv)
    run_plan(args.plan, Path(args.out), data_dir=args.data_dir, only=args.only, deadline_s=args.deadline_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
