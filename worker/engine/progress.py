"""How a training run reports progress and is asked to stop (no torch here)."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class ProgressEvent:
    """One optimizer step's report.

    ``loss_audio`` is None when the run has no audio latents; ``memory_bytes`` is the peak GPU
    memory allocated (CUDA) or the process's peak resident memory (CPU); ``eta_s`` extrapolates
    the median step time over the steps left.
    """

    step: int
    total: int
    loss: float
    loss_video: float
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


class TrainCallbacks:
    """Hooks a caller overrides to follow a run; the defaults do nothing."""

    def on_progress(self, event: ProgressEvent) -> None:
        """After every optimizer step."""

    def on_checkpoint(self, event: CheckpointEvent) -> None:
        """After a checkpoint's files are in place."""

    def on_sample(self, event: SampleEvent) -> None:
        """After each validation sample is written."""

    def on_log(self, level: str, message: str) -> None:
        """A human-readable line (``level``: info, warning, error)."""


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
