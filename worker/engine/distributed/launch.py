"""Start the ranks of one data-parallel run, watch them, and end them together.

``avlora train CONFIG --num-processes N`` (or ``--gpus N``, or the config's
``optimization.num_processes``) runs :func:`launch`: it starts N copies of the same ``avlora train``
command, each with the environment ``torchrun`` would give it (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), so the engine also runs under ``torchrun``
unchanged. Rank 0's output is the run's output; the other ranks write theirs to
``OUTPUT_DIR/ranks/rank-R.log``, whose tail is printed when that rank fails.

Stopping: a cancel (Ctrl-C, or the job's cancel) is passed to rank 0 alone as SIGINT; rank 0
checkpoints, tells the others at the next step, and every rank exits 130. When any rank dies (a
crash, an out-of-memory kill, ``kill -9``) the others are ended at once (SIGTERM, then SIGKILL) and
the run is reported interrupted: ``--resume`` continues from its latest checkpoint, with any number
of processes. Each rank also ends when its launcher is gone (:func:`exit_with_launcher`), so none is left behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

POLL_S = 0.1
TERMINATE_GRACE_S = 10.0
CANCELLED_EXIT = 130
LOG_TAIL_LINES = 20
LAUNCHER_PID_ENV = "AVLORA_LAUNCHER_PID"


def free_port() -> int:
    """A TCP port free on this host now (for the ranks' rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rank_environment(rank: int, world: int, port: int, *, cpu_threads: int | None = None,
                     base: dict | None = None) -> dict[str, str]:
    """The environment of rank ``rank`` of ``world`` (torchrun's variable names)."""
    env = dict(os.environ if base is None else base)
    env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), PYTHONUNBUFFERED="1")
    env[LAUNCHER_PID_ENV] = str(os.getpid())
    if cpu_threads is not None and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(cpu_threads)  # the ranks share the host's cores
    return env


def exit_with_launcher(poll_s: float = 1.0) -> None:
    """In a rank: end this process when its launcher is gone (a ``kill -9`` of the launcher, or of
    the worker that ran it), so no rank is left holding a GPU. A thread compares the parent's pid
    with the launcher's, which the launcher put in ``AVLORA_LAUNCHER_PID``."""
    launcher = os.environ.get(LAUNCHER_PID_ENV)
    if not launcher:
        return

    def watch() -> None:
        while os.getppid() == int(launcher):
            time.sleep(poll_s)
        os._exit(137)

    threading.Thread(target=watch, name="launcher-watch", daemon=True).start()


@dataclass
class RankEnding:
    """How a rank ended: its exit status (negative: the signal that killed it)."""

    rank: int
    returncode: int

    def describe(self) -> str:
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            return f"rank {self.rank} was killed by {name}"
        return f"rank {self.rank} exited with status {self.returncode}"


@dataclass
class LaunchResult:
    """``completed``, ``cancelled``, ``failed`` (rank 0 refused or failed by itself) or
    ``interrupted`` (a rank died and the others were ended); ``message`` says which rank and how."""

    status: str
    returncode: int
    message: str = ""
    endings: list[RankEnding] = field(default_factory=list)


class RankProcesses:
    """The running ranks of one run."""

    def __init__(self, command: list[str], world: int, log_dir: Path, *, rank0_stdout=None,
                 cpu_threads: int | None = None, env: dict[str, str] | None = None):
        self.world, self.log_dir = world, Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.procs: list[subprocess.Popen] = []
        self._logs = []
        for rank in range(world):
            rank_env = rank_environment(rank, world, port, cpu_threads=cpu_threads, base={**os.environ, **(env or {})})
            if rank == 0 and rank0_stdout is None:  # the launcher's own output
                out, err = None, None
            else:  # its log; rank 0's events, when captured, on the pipe
                log = open(self.log_path(rank), "w")  # noqa: SIM115 - closed in wait()
                self._logs.append(log)
                out, err = (rank0_stdout if rank == 0 else log), log
            self.procs.append(subprocess.Popen(command, env=rank_env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                               start_new_session=True))
        self._cancel = threading.Event()
        self._signalled = False
        self._ended: LaunchResult | None = None

    def log_path(self, rank: int) -> Path:
        return self.log_dir / f"rank-{rank}.log"

    def cancel(self) -> None:
        """Ask the run to stop after the current step (rank 0 checkpoints, the others follow)."""
        self._cancel.set()

    def terminate(self) -> None:
        """End every rank still running: SIGTERM, then SIGKILL after a grace."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + TERMINATE_GRACE_S
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def check(self) -> LaunchResult | None:
        """One look at the ranks: how the run ended, or None while it goes on. Passes a cancel to
        rank 0; ends the other ranks when one failed. Once ended, the same result every time."""
        if self._ended is not None:
            return self._ended
        if self._cancel.is_set() and not self._signalled and self.procs[0].poll() is None:
            self.procs[0].send_signal(signal.SIGINT)
            self._signalled = True
        codes = [proc.poll() for proc in self.procs]
        failed = [RankEnding(r, c) for r, c in enumerate(codes) if c not in (None, 0, CANCELLED_EXIT)]
        if failed:
            self.terminate()
            self._ended = self._result([proc.returncode for proc in self.procs], failed)
        elif all(code is not None for code in codes):
            self._ended = self._result(codes, [])
        return self._ended

    def wait(self) -> LaunchResult:
        """Watch the ranks until all have ended; end the rest when one fails."""
        try:
            while (result := self.check()) is None:
                time.sleep(POLL_S)
            return result
        finally:
            self.close()

    def close(self) -> None:
        """End any rank still running and close the rank logs."""
        if any(proc.poll() is None for proc in self.procs):
            self.terminate()
        for log in self._logs:
            log.close()

    def _result(self, codes: list[int], failed: list[RankEnding]) -> LaunchResult:
        endings = [RankEnding(r, c) for r, c in enumerate(codes)]
        if not failed:
            if codes[0] == 0:
                return LaunchResult("completed", 0, endings=endings)
            return LaunchResult("cancelled", CANCELLED_EXIT, "the run was cancelled; --resume continues it",
                                endings=endings)
        killed = [e for e in failed if e.returncode < 0]  # a killed rank is the cause
        if not killed and failed[0].rank == 0:  # rank 0 failed and said why (the others then lost it)
            return LaunchResult("failed", failed[0].returncode, self._error_of_rank0(), endings=endings)
        first = killed[0] if killed else failed[0]
        tail = self.log_tail(first.rank) if first.rank else ""
        message = (f"{first.describe()}; the other ranks were ended. The run is interrupted: --resume continues "
                   f"from its latest checkpoint.")
        return LaunchResult("interrupted", 1, message + (f"\n{tail}" if tail else ""), endings=endings)

    def _error_of_rank0(self) -> str:
        """Rank 0's last ``error:`` line (or last line) where its output was captured (else it was printed)."""
        if not self.log_path(0).exists():
            return ""
        lines = [line for line in self.log_path(0).read_text(errors="replace").splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error: ")]
        return errors[-1][len("error: "):] if errors else (lines[-1] if lines else "")  # else a traceback's last line

    def log_tail(self, rank: int) -> str:
        try:
            lines = self.log_path(rank).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(f"[rank {rank}] {line}" for line in lines[-LOG_TAIL_LINES:])


def launch(command: list[str], world: int, log_dir: Path, *, on_cpu: bool) -> LaunchResult:
    """Run ``command`` as ``world`` ranks (rank 0's output is this process's); Ctrl-C cancels."""
    threads = max(1, (os.cpu_count() or 1) // world) if on_cpu else None
    ranks = RankProcesses(command, world, log_dir, cpu_threads=threads)
    previous = signal.signal(signal.SIGINT, lambda *_: ranks.cancel())
    try:
        return ranks.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


def rank_command(arguments: list[str]) -> list[str]:
    """The command line each rank runs: ``avlora`` with ``arguments`` (the launcher's own options left out)."""
    return [sys.executable, "-m", "avlora.cli", *arguments]
