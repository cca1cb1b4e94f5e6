"""How a training run reports progress, how long it has left, and how it is asked to stop (no torch here)."""

from __future__ import annotations

import statistics
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.names import LORA_OFF_VARIANTS, V2A_VARIANTS


@dataclass
class ProgressEvent:
    """One optimizer step's report.

    ``loss_audio`` is None when the run has no audio latents; ``memory_bytes`` is the peak GPU
    memory allocated (CUDA) or the process's peak resident memory (CPU); ``eta_s`` is
    :meth:`EtaClock.eta_s`: the steps left and the validation samples still to render.
    """

    step: int
    total: int
    loss: float
    loss_video: float | None  # None where the training mode scores no video (voice, audio_only)
    loss_audio: float | None
    lr: float
    grad_norm: float
    step_time_s: float
    memory_bytes: int
    eta_s: float

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass
class CheckpointEvent:
    """Files written for one checkpoint."""

    step: int
    official_path: Path
    diffusers_path: Path
    state_path: Path
    key_counts: dict[str, int] = field(default_factory=dict)


@dataclass
class SampleEvent:
    """One validation sample written to disk. ``source``: for a v2a sample, the cache entry name
    of its training clip (``prompt_index`` is then the clip's place among the v2a clips)."""

    step: int
    prompt_index: int
    variant: str
    mp4_path: Path
    wav_path: Path
    seed: int
    source: str | None = None


STEP_WINDOW = 50  # the ETA's step time: the median of the last 50 steps (warm-up and outliers drop out)


class EtaClock:
    """How long a run has left: the median step time over the steps left, plus the validation
    samples still to render, at the time a sample took in the latest round.

    Rendering the validation samples can take longer than all the training steps (a toy run on
    a CPU, or many prompts): an ETA of steps alone ran out while samples were still rendering.
    ``validation_steps`` are the steps after which a round of ``samples_per_round`` samples is
    rendered (the round at step 0, which adds the LoRA-off samples, is timed but never to come).
    """

    def __init__(self, total: int, validation_steps: Iterable[int] = (), samples_per_round: int = 0):
        self.total = total
        self.validation_steps = sorted({s for s in validation_steps if 0 < s <= total})
        self.samples_per_round = samples_per_round
        self.step_times: list[float] = []
        self.sample_s: float | None = None  # seconds per sample in the latest round

    @classmethod
    def for_config(cls, config, plan, clip_count: int) -> EtaClock:
        """The clock of a :class:`core.recipe.run_config.RunConfig` and its validation plan
        (``prompts``, ``variants``, ``v2a_clips``): rounds at checkpoints when
        ``validation.at_checkpoints`` and every ``validation.interval`` steps, each rendering the
        LoRA variants of every prompt and of up to ``v2a_clips`` of the ``clip_count`` clips."""
        def lora(variants) -> int:
            return sum(1 for v in variants if v not in LORA_OFF_VARIANTS)

        per_round = (len(plan.prompts) * lora(v for v in plan.variants if v not in V2A_VARIANTS)
                     + min(plan.v2a_clips, clip_count) * lora(v for v in plan.variants if v in V2A_VARIANTS))
        total, validation = config.optimization.steps, config.validation
        steps = set(config.checkpoint_steps()) if validation.at_checkpoints else set()
        if validation.interval:
            steps |= set(range(validation.interval, total + 1, validation.interval))
        return cls(total, steps, per_round)

    @property
    def last_step_s(self) -> float:
        """How long the latest step took (0 before the first)."""
        return self.step_times[-1] if self.step_times else 0.0

    def step_done(self, seconds: float) -> None:
        """Record one optimizer step's duration."""
        self.step_times.append(seconds)

    def round_done(self, seconds: float, samples: int) -> None:
        """Record a validation round: ``samples`` rendered in ``seconds``."""
        if samples:
            self.sample_s = seconds / samples

    def eta_s(self, done: int) -> float:
        """Seconds left after ``done`` steps, reported before the round at ``done`` (if any) renders."""
        step = statistics.median(self.step_times[-STEP_WINDOW:]) if self.step_times else 0.0
        rounds = sum(1 for s in self.validation_steps if s >= done)
        return step * (self.total - done) + rounds * self.samples_per_round * (self.sample_s or 0.0)


class TrainCallbacks:
    """Hooks a caller overrides to follow a run; the defaults do nothing."""

    def on_progress(self, event: ProgressEvent) -> None:
        """After every optimizer step."""

    def on_checkpoint(self, event: CheckpointEvent) -> None:
        """After a checkpoint's files are in place."""

    def on_sample(self, event: SampleEvent) -> None:
        """After each validation sample is written."""

    def on_sample_generated(self) -> None:
        """A validation sample is generated and handed to the writer (its ``on_sample`` follows
        once its files exist, while the next sample may already be denoising)."""

    def on_log(self, level: str, message: str) -> None:
        """A human-readable line (``level``: info, warning, error)."""

    def on_phase(self, name: str) -> None:
        """A phase of the run begins and the previous one ends (``model_load``, ``text_encoding``,
        ``setup``, ``train_step``, ``checkpoint_write``, ``sampling``, ``sample_write``): what
        ``avlora bench run`` times (:mod:`worker.engine.bench.phases`)."""


class CancelToken:
    """Cooperative cancel: a caller sets it, the trainer checks it between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the run to stop after the current step (it checkpoints first)."""
        self._event.set()

    def is_cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._event.is_set()


class ControlRequests:
    """Actions asked of a running training out of schedule; the trainer takes them between steps.

    ``checkpoint``: write a checkpoint at the current step (and its validation samples when the
    run validates at checkpoints); ``sample``: validation samples at the current step. This base
    class holds requests made with :meth:`ask` (CLI, tests); the job worker overrides
    :meth:`take` and :meth:`done` to read and clear them on the job row.
    """

    CHECKPOINT = "checkpoint"
    SAMPLE = "sample"
    NAMES = (CHECKPOINT, SAMPLE)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: set[str] = set()

    def ask(self, name: str) -> None:
        """Ask for ``checkpoint`` or ``sample`` at the end of the current step."""
        if name not in self.NAMES:
            raise ValueError(f"unknown request {name!r}: use one of {', '.join(self.NAMES)}")
        with self._lock:
            self._pending.add(name)

    def take(self) -> set[str]:
        """The requests pending now (each is returned once)."""
        with self._lock:
            taken, self._pending = self._pending, set()
        return taken

    def done(self, name: str, step: int) -> None:
        """Called once request ``name`` was carried out at ``step``."""


class FileControlRequests(ControlRequests):
    """Requests read from a file (one name a line) that another process appends to: how the job
    worker asks rank 0 of a run on several processes for "checkpoint now" / "sample now"; each
    carried out is printed as a ``control_done`` event by ``avlora train --json``."""

    def __init__(self, path: str | Path, on_done=None) -> None:
        super().__init__()
        self.path, self._on_done = Path(path), on_done

    def take(self) -> set[str]:
        taken = super().take()
        try:
            claimed = self.path.with_suffix(".taken")
            self.path.rename(claimed)  # atomic: lines appended from now go to a new file
        except OSError:
            return taken
        taken |= {line.strip() for line in claimed.read_text().splitlines() if line.strip() in self.NAMES}
        claimed.unlink(missing_ok=True)
        return taken

    def done(self, name: str, step: int) -> None:
        if self._on_done is not None:
            self._on_done(name, step)
