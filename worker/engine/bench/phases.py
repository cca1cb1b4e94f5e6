"""Wall time per phase of a training run, as ``avlora bench run`` reports it.

The trainer and the validation announce each phase through ``TrainCallbacks.on_phase``
(``model_load``, ``text_encoding``, ``setup``, ``train_step``, ``checkpoint_write``, ``sampling``,
``sample_write``); :class:`PhaseCallbacks` turns those marks into contiguous intervals: each mark
ends the phase before it, so the intervals add up to the time from the first mark to the last.
On CUDA each mark waits for the device first: the GPU runs behind the host, and without the wait a
phase would be charged for the kernels its predecessor queued.

Inside a sample, :func:`decoders_marked` adds two marks where the pipeline hands its latents to
the decoders: ``vae_decode`` (the video VAE, then the frames to arrays) and ``audio_decode`` (the
audio VAE and the vocoder), so a sample splits into denoising, decoding and file writing.

:func:`summarise` then reads the intervals as a person asks about them: the phases of
:data:`PHASES` (the first training step's excess over a steady step is the compile and CUDA-graph
capture; the first step after each sampling round re-records the graph; the first sample of each
variant compiles the blocks for sampling again, as the LoRA switches change what the compiled code
depends on), each validation round with its samples, and each checkpoint.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from worker.engine.progress import ProgressEvent, SampleEvent, TrainCallbacks

# The report's phases, in run order, with what each holds; every one is reported (0 if absent)
PHASES: dict[str, str] = {
    "model_load": "model build or load",
    "text_encoding": "text encoding of the validation prompts (Gemma, then released)",
    "setup": "LoRA, step levers, optimizer, dataset, run folder",
    "compile_and_capture": "first training step's excess over a steady step (compile, warm-up, CUDA graph)",
    "graph_rerecord": "first step after each sampling round: excess (CUDA graph recorded again)",
    "training_steps": "training steps (steady)",
    "checkpoint_write": "checkpoints: the copy off the device (the files are written in the background)",
    "sampling_compile": "first sample of each variant: denoising excess over a steady one (blocks compiled)",
    "sampling_denoise": "sampling: denoising loop with guidance (and the pipeline's set-up)",
    "vae_decode": "sampling: video VAE decode and frames to arrays",
    "audio_decode": "sampling: audio VAE decode and vocoder",
    "sample_write": "sampling: mp4 and wav writing",
}
SAMPLING_MARKS = ("sampling", "vae_decode", "audio_decode", "sample_write")


@dataclass
class Interval:
    """One phase's stretch of wall time: ``step`` is the last training step done when it began,
    ``sample`` the number of samples written before it (so a sample's intervals share it)."""

    name: str
    seconds: float
    step: int
    sample: int


@dataclass
class PhaseCallbacks(TrainCallbacks):
    """Records the run's phase marks (see the module docstring), samples and log lines.

    ``sync``: waits for the device's queued work before each mark; ``echo``: told a line as each
    phase ends (``avlora bench run --progress``: a run cut short still shows where its time went).
    """

    sync: Callable[[], None] = lambda: None
    echo: Callable[[str], None] | None = None
    intervals: list[Interval] = field(default_factory=list)
    samples: list[SampleEvent] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    step: int = 0
    generated: int = 0  # samples generated so far: a mark belongs to the sample being generated
    _current: str | None = None
    _started: float = 0.0
    _tags: tuple[int, int] = (0, 0)

    def on_phase(self, name: str | None) -> None:
        """End the current phase and begin ``name`` (None: end the run)."""
        if self._current is not None:  # before the first mark no phase runs that a wait could be charged to
            self.sync()
        now = time.perf_counter()
        if self._current is not None:
            step, sample = self._tags
            self.intervals.append(Interval(self._current, now - self._started, step, sample))
            if self.echo is not None:
                self.echo(f"{self._current:<16} {now - self._started:9.3f} s  (after step {step}, sample {sample})")
        self._current, self._started, self._tags = name, now, (self.step, self.generated)

    def on_progress(self, event: ProgressEvent) -> None:
        self.step = event.step

    def on_sample(self, event: SampleEvent) -> None:
        self.samples.append(event)

    def on_sample_generated(self) -> None:
        self.generated += 1

    def on_log(self, level: str, message: str) -> None:
        self.logs.append(f"{level}: {message}")


@contextlib.contextmanager
def decoders_marked(callbacks: TrainCallbacks):
    """Mark ``vae_decode`` and ``audio_decode`` where any LTX-2 pipeline calls its decoders, for the
    duration of the block (the classes' ``decode`` are wrapped, then restored)."""
    from diffusers import AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video

    originals = [(cls, cls.decode) for cls in (AutoencoderKLLTX2Video, AutoencoderKLLTX2Audio)]

    def marked(original, name):
        def decode(self, *args, **kwargs):
            callbacks.on_phase(name)
            return original(self, *args, **kwargs)
        return decode

    AutoencoderKLLTX2Video.decode = marked(AutoencoderKLLTX2Video.decode, "vae_decode")
    AutoencoderKLLTX2Audio.decode = marked(AutoencoderKLLTX2Audio.decode, "audio_decode")
    try:
        yield
    finally:
        for cls, original in originals:
            cls.decode = original


def _excess(first: float, others: list[float]) -> float:
    """How much longer ``first`` took than the median of ``others`` (0 when it did not)."""
    return max(0.0, first - statistics.median(others)) if others else 0.0


def _step_times(intervals: list[Interval]) -> tuple[list[float], list[int]]:
    """Each training step's seconds, and the positions of those that follow a sampling round."""
    times, after_sampling, previous = [], [], None
    for interval in intervals:
        if interval.name == "train_step":
            if previous in SAMPLING_MARKS:
                after_sampling.append(len(times))
            times.append(interval.seconds)
        previous = interval.name
    return times, after_sampling


def step_detail(intervals: list[Interval]) -> dict:
    """The training steps: every step's time, the first one, those after a sampling round, and
    the steady steps' median (the others)."""
    times, after = _step_times(intervals)
    steady = [t for i, t in enumerate(times) if i != 0 and i not in after]
    return {
        "count": len(times),
        "all_s": times,
        "first_s": times[0] if times else 0.0,
        "after_sampling_s": [times[i] for i in after if i != 0],
        "steady_median_s": statistics.median(steady) if steady else (min(times) if times else 0.0),
    }


def sample_rows(intervals: list[Interval], samples: list[SampleEvent]) -> list[dict]:
    """One row per written sample: its round's step, prompt, variant and seconds per part."""
    rows = []
    for number, event in enumerate(samples):
        parts = {"sampling_denoise": 0.0, "vae_decode": 0.0, "audio_decode": 0.0, "sample_write": 0.0}
        for interval in intervals:
            if interval.sample == number and interval.name in SAMPLING_MARKS:
                key = "sampling_denoise" if interval.name == "sampling" else interval.name
                parts[key] += interval.seconds
        rows.append({"step": event.step, "prompt_index": event.prompt_index, "variant": event.variant,
                     "seconds": sum(parts.values()), **parts})
    return rows


def sampling_compile(rows: list[dict]) -> float:
    """The denoising time the first sample of each variant takes beyond the median of the other
    samples: the compiled blocks are compiled again for sampling (no gradients, the guidance
    batches), and again when a variant switches the LoRA (off, or its audio side off)."""
    first_of_variant: dict[str, int] = {}
    for index, row in enumerate(rows):
        first_of_variant.setdefault(row["variant"], index)
    firsts = set(first_of_variant.values())
    others = [row["sampling_denoise"] for i, row in enumerate(rows) if i not in firsts]
    return sum(_excess(rows[i]["sampling_denoise"], others) for i in firsts)


def _rounds(rows: list[dict]) -> list[dict]:
    rounds: dict[int, list[dict]] = {}
    for row in rows:
        rounds.setdefault(row["step"], []).append(row)
    return [{"step": step, "samples": len(items), "seconds": sum(r["seconds"] for r in items),
             "sample_rows": items} for step, items in rounds.items()]


def summarise(intervals: list[Interval], samples: list[SampleEvent]) -> dict:
    """``phases`` (seconds per :data:`PHASES` key, in order, then any other mark's own name),
    ``steps`` (:func:`step_detail`), ``rounds`` (each validation round and its samples) and
    ``checkpoints`` (seconds per checkpoint write)."""
    seconds: dict[str, float] = dict.fromkeys(PHASES, 0.0)
    for interval in intervals:
        name = "sampling_denoise" if interval.name == "sampling" else interval.name
        if name != "train_step":
            seconds[name] = seconds.get(name, 0.0) + interval.seconds
    steps = step_detail(intervals)
    rows = sample_rows(intervals, samples)
    steady = steps["steady_median_s"]
    seconds["compile_and_capture"] = _excess(steps["first_s"], [steady]) if steps["count"] else 0.0
    seconds["graph_rerecord"] = sum(_excess(t, [steady]) for t in steps["after_sampling_s"])
    seconds["training_steps"] = sum(steps["all_s"]) - seconds["compile_and_capture"] - seconds["graph_rerecord"]
    seconds["sampling_compile"] = sampling_compile(rows)
    seconds["sampling_denoise"] -= seconds["sampling_compile"]
    checkpoints = [{"step": i.step, "seconds": i.seconds} for i in intervals if i.name == "checkpoint_write"]
    return {"phases": seconds, "steps": steps, "rounds": _rounds(rows), "checkpoints": checkpoints}
