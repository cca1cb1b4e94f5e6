"""Checkpoint files written off the training's critical path.

Serialising and writing a checkpoint (two LoRA layouts and the training state) took seconds per
checkpoint on an H200 run (docs/benchmarks.md, "Time to a verdict"); the next steps need none of
it. The trainer copies what a checkpoint holds into CPU memory first (a copy is needed anyway),
then hands the write to a :class:`CheckpointWriter`, which writes on one background thread while
the steps go on.

Only the write leaves the training thread: what follows a complete write (the checkpoint
callback, which makes the database row) runs on the training thread, at the next step boundary
(:meth:`CheckpointWriter.poll`) or when the run ends (:meth:`CheckpointWriter.draining`). A write's
error (a full disk) is raised there too, so the run fails with its message. One write at a time:
a second checkpoint waits for the first, so at most one snapshot is held in memory.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Write:
    thread: threading.Thread
    on_done: Callable[[Any], None]
    outcome: dict[str, Any] = field(default_factory=dict)  # "result" or "error", set by the thread


class CheckpointWriter:
    """At most one background write in flight; its result is delivered on the caller's thread."""

    def __init__(self) -> None:
        self._pending: _Write | None = None

    def submit(self, write: Callable[[], Any], on_done: Callable[[Any], None]) -> None:
        """Start ``write()`` in the background (after the previous write is finished and delivered);
        ``on_done(result)`` is called later, on this thread, by :meth:`poll` or :meth:`wait`."""
        self.wait()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["result"] = write()
            except BaseException as exc:  # noqa: BLE001 - raised again on the training thread by _deliver
                outcome["error"] = exc

        thread = threading.Thread(target=work, name="checkpoint-writer", daemon=True)
        self._pending = _Write(thread, on_done, outcome)
        thread.start()

    def poll(self) -> None:
        """Deliver a finished write (call its ``on_done``, or raise its error); never waits."""
        if self._pending is not None and not self._pending.thread.is_alive():
            self._deliver()

    def wait(self) -> None:
        """Wait for the write in flight, then deliver it as :meth:`poll` does."""
        if self._pending is not None:
            self._pending.thread.join()
            self._deliver()

    @contextlib.contextmanager
    def draining(self) -> Iterator[None]:
        """Every write started inside is finished and delivered on the way out. When the body
        fails, its own error wins: the pending write still completes (its files are whole, so its
        row is still made), and an error of the write's own is dropped."""
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                self.wait()
            raise
        self.wait()

    def _deliver(self) -> None:
        pending, self._pending = self._pending, None
        if "error" in pending.outcome:
            raise pending.outcome["error"]
        pending.on_done(pending.outcome["result"])
