"""The trainer's rounds besides the steps: checkpoints, resume, validation samples.

:class:`TrainerRounds` is a part of :class:`worker.engine.train.Trainer` (a mixin: it uses the
trainer's attributes). On several processes rank 0 alone writes checkpoints and samples; every
rank resumes from the same files.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

from core.names import LORA_OFF_VARIANTS
from worker.engine.lora.adapters import DEFAULT_ADAPTER
from worker.engine.lora.checkpoint import (
    CheckpointPaths,
    latest_checkpoint_step,
    load_training_state,
    prune_checkpoints,
    restore_lora_tensors,
    restore_rng_states,
    snapshot_adapter,
    write_checkpoint,
)
from worker.engine.progress import CheckpointEvent
from worker.engine.validate import RUN_CONFIG_NAME, run_validation

if TYPE_CHECKING:
    from worker.engine.train import TrainResult


class TrainingError(RuntimeError):
    """A run that cannot start or continue; the message tells a person what to change."""


class TrainerRounds:
    """Checkpoints, resume and validation of a :class:`~worker.engine.train.Trainer`."""

    def _checkpoint(self, step: int, result: TrainResult) -> None:
        """Copied off the device now; written in the background, its callback once the files are whole."""
        result.checkpoints.append(step)
        if not self.parallel.is_main:  # every rank holds the same LoRA and optimizer: rank 0 writes them
            return
        self.callbacks.on_phase("checkpoint_write")
        snapshot = snapshot_adapter(
            self.transformer, DEFAULT_ADAPTER, step, optimizer=self.optimizer, scheduler=self.scheduler,
            generator=self.generator, fingerprint=self.fingerprint,
            metadata={"avlora_model": self.config.model, "avlora_trigger": self.config.data.trigger,
                      "avlora_training_mode": self.config.training.mode},
        )
        self.writer.submit(lambda: write_checkpoint(self.output_dir, snapshot), self._checkpoint_written)

    def _checkpoint_written(self, paths: CheckpointPaths) -> None:
        prune_checkpoints(self.output_dir, self.config.checkpoints.keep_last_n)
        self.callbacks.on_checkpoint(CheckpointEvent(paths.step, paths.official, paths.diffusers, paths.state, dict(self.lora_families)))
        self._log("info", f"Checkpoint at step {paths.step}: {paths.official.name}")

    def _resume(self) -> int:
        step = latest_checkpoint_step(self.output_dir)
        if step is None:
            self._log("info", f"No checkpoint in {self.output_dir}: starting from step 0.")
            return 0
        try:
            state = load_training_state(self.output_dir, step, self.fingerprint)
        except ValueError as exc:
            raise TrainingError(str(exc) + self._what_changed()) from exc
        restore_lora_tensors(self.transformer, state["lora"], DEFAULT_ADAPTER)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_rng_states(state["rng"], self.generator)
        self._log("info", f"Resumed from step {step}.")
        return int(state["step"])

    def _what_changed(self) -> str:
        """The settings that differ from the run's saved config, as a sentence ("" if unknown)."""
        from core.recipe.config_yaml import ConfigFileError
        from core.recipe.fingerprint import GLOBAL_BATCH, resume_differences
        from core.recipe.run_config import run_config_from_yaml

        try:
            saved = run_config_from_yaml((self.output_dir / RUN_CONFIG_NAME).read_text())
        except (OSError, ConfigFileError):
            return ""
        changes = resume_differences(saved, self.config)
        if not changes:
            return ""
        hint = ""
        if any(change.startswith(GLOBAL_BATCH) for change in changes):
            was = saved.optimization.batch_size * saved.optimization.num_processes
            hint = (f" On another number of processes, keep the global batch: batch_size x num_processes = {was} "
                    f"(here {self.config.optimization.num_processes} process(es)).")
        return f" Changed: {'; '.join(changes)}.{hint}"

    def _samples_due(self, step: int) -> bool:
        validation = self.config.validation
        return step > 0 and (validation.at_checkpoints or bool(validation.interval and step % validation.interval == 0))

    def _validate(self, step: int, include_base: bool = False, missing_only: bool = False) -> None:
        if not self.plan.samples_anything or not self.parallel.is_main:  # the other ranks wait at the next step
            return
        self.callbacks.on_phase("sampling")
        if self.graphed is not None:  # the graph's memory goes back for sampling; the next step records again
            self.graphed.release()
        plan = self.plan
        if not include_base:  # LoRA-off samples never change: step 0 has them
            plan = replace(plan, variants=[v for v in plan.variants if v not in LORA_OFF_VARIANTS])
        started = time.perf_counter()
        events = run_validation(self.pipe, plan, self.output_dir / "samples", step, callbacks=self.callbacks,
                                prompt_cache=self.prompt_cache, clips=self.dataset, cancel=self.cancel,
                                missing_only=missing_only)
        self.eta.round_done(time.perf_counter() - started, len(events))
