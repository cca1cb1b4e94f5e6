"""Benchmark one run on several processes: tokens per second and scaling efficiency.

``avlora bench scaling --processes 1,2,4 ...`` runs ``avlora bench run`` (the real ``avlora train``
path, without validation samples: the training steps alone) once per process count, each count as
that many ranks (:mod:`worker.engine.distributed.launch`, one GPU each, or gloo on the CPU), and
reads rank 0's result: the steady step time (the median after the first step) and the global
batch's tokens. Tokens per second = tokens of a step's global batch / steady step time; the scaling
efficiency of N processes = its tokens per second / (N x those of one process). Each rank trains
``batch_size`` (1) clip a step, so N processes train N times the clips in (ideally) the same time.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from worker.engine.distributed.launch import RankProcesses, rank_command


@dataclass
class ScalingPoint:
    """One process count's measurement."""

    processes: int
    status: str
    steady_step_s: float = 0.0
    tokens_per_step: int = 0
    tokens_per_s: float = 0.0
    efficiency: float | None = None  # against N x one process's tokens per second
    peak_memory_bytes: int = 0
    message: str = ""


@dataclass
class ScalingResult:
    preset: str
    size: str
    steps: int
    device: str
    points: list[ScalingPoint] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _bench_arguments(preset: str, size: str, steps: int, device: str, random_weights: bool, data_dir, out: Path,
                     model_dir=None) -> list[str]:
    arguments = ["bench", "run", "--preset", preset, "--size", size, "--steps", str(steps), "--checkpoints", "1",
                 "--no-samples", "--device", device, "--out", str(out), "--json"]
    arguments += ["--random-weights"] if random_weights else []
    arguments += ["--data-dir", str(data_dir)] if data_dir else []
    return arguments + (["--model-dir", str(model_dir)] if model_dir else [])


def measure(processes: int, arguments: list[str], log_dir: Path, *, on_cpu: bool) -> ScalingPoint:
    """Run the bench as ``processes`` ranks; rank 0's JSON result as a :class:`ScalingPoint`."""
    ranks = RankProcesses(rank_command(arguments), processes, log_dir, rank0_stdout=subprocess.PIPE,
                          cpu_threads=1 if on_cpu else None)
    stdout = ranks.procs[0].stdout.read().decode("utf-8", "replace")
    ended = ranks.wait()
    if ended.status != "completed":
        return ScalingPoint(processes, ended.status, message=ended.message or ranks.log_tail(0))
    result = json.loads(stdout[stdout.index("{"):])
    steady = result["steps_detail"]["steady_median_s"]
    tokens = result["tokens_per_step"]
    return ScalingPoint(processes, "completed", steady_step_s=steady, tokens_per_step=tokens,
                        tokens_per_s=tokens / steady if steady else 0.0,
                        peak_memory_bytes=result["peak_memory_bytes"])


def bench_scaling(counts: list[int], *, preset: str, size: str, steps: int, device: str, random_weights: bool,
                  data_dir=None, model_dir=None, echo=None) -> ScalingResult:
    """Measure each process count of ``counts`` in turn (see the module docstring)."""
    result = ScalingResult(preset=preset, size=size, steps=steps, device=device)
    with tempfile.TemporaryDirectory(prefix="avlora-bench-scaling-") as folder:
        for count in counts:
            out = Path(folder) / f"processes-{count}"
            arguments = _bench_arguments(preset, size, steps, device, random_weights, data_dir, out, model_dir)
            point = measure(count, arguments, out / "ranks", on_cpu=device == "cpu")
            result.points.append(point)
            if echo:
                echo(f"{count} process(es): {point.status}, {point.tokens_per_s:,.0f} tokens/s")
    base = next((p for p in result.points if p.processes == 1 and p.status == "completed"), None)
    for point in result.points:
        if base is not None and point.status == "completed" and base.tokens_per_s:
            point.efficiency = point.tokens_per_s / (point.processes * base.tokens_per_s)
    return result


def scaling_table(result: dict) -> str:
    """The result as a table."""
    lines = [f"{result['preset']} {result['size']} on {result['device']}, {result['steps']} steps a count",
             "processes  step (s)  tokens/step  tokens/s  efficiency  peak memory"]
    for p in result["points"]:
        if p["status"] != "completed":
            lines.append(f"{p['processes']:>9}  {p['status']}: {p['message'][:200]}")
            continue
        efficiency = "" if p["efficiency"] is None else f"{p['efficiency']:.1%}"
        lines.append(f"{p['processes']:>9}  {p['steady_step_s']:8.3f}  {p['tokens_per_step']:>11,}  "
                     f"{p['tokens_per_s']:>8,.0f}  {efficiency:>10}  {p['peak_memory_bytes'] / 2**30:8.1f} GiB")
    return "\n".join(lines)
