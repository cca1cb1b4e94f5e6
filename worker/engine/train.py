"""LoRA training of the LTX-2 audio-video transformer from the ``.precomputed`` cache.

``train_run(config, ...)`` runs a :class:`core.recipe.run_config.RunConfig`:

1. loads the pipeline (``models.load_pipeline``) and the cached samples;
2. wraps the transformer's target layers with a PEFT LoRA (the transformer only; base frozen);
3. per step: rectified-flow noising with the official timestep sampler and first-frame
   conditioning, separate video / audio MSE losses (:mod:`flow`), AdamW (or 8-bit AdamW),
   gradient clipping, linear decay; ``training.mode`` (:mod:`core.recipe.modes`) decides what is
   noised and scored and which layers get a LoRA (:mod:`worker.engine.step.modes`);
4. reports every step through :class:`TrainCallbacks`; checks the cancel token between steps and samples;
5. writes checkpoints (both LoRA layouts + resumable state) and validation samples at step 0 and
   every checkpoint, and out of schedule when :class:`ControlRequests` asks between steps
   ("checkpoint now", "sample now").

``resume=True`` continues from the latest training state in ``output_dir``: LoRA tensors,
optimizer, scheduler and every RNG are restored and the data order is a function of the step,
so the loss curve continues as if the run had never stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from core.files import atomic_write
from core.recipe.fingerprint import config_fingerprint
from core.recipe.run_config import RunConfig, run_config_to_yaml
from worker.engine.data.dataset import PrecomputedDataset, collate
from worker.engine.data.prompt_cache import move_pipeline_except_text_encoder
from worker.engine.data.reference import reference_source
from worker.engine.distributed.group import rank_device, rank_from_env
from worker.engine.distributed.parallel import DataParallel, SingleProcess
from worker.engine.distributed.shards import shape_keys, step_indices
from worker.engine.lora.adapters import add_lora, families_of, trainable_parameters
from worker.engine.lora.checkpoint import list_checkpoint_steps
from worker.engine.lora.names import side_of_family
from worker.engine.lora.writer import CheckpointWriter
from worker.engine.progress import CancelToken, ControlRequests, EtaClock, ProgressEvent, TrainCallbacks
from worker.engine.step.compiling import begin_compiled_step
from worker.engine.step.flow import forward_backward, ready_for_step
from worker.engine.step.graphed import GraphedStep, GraphUnavailable
from worker.engine.step.levers import StepLevers
from worker.engine.step.measure import peak_memory_bytes
from worker.engine.step.modes import ModeError, check_mode, lora_targets, mean_or_none, micro_step_inputs
from worker.engine.step.optim import build_optimizer, linear_schedule
from worker.engine.step.quantize import (
    QuantizationUnavailable,
    check_quantization_supported,
    quantize_frozen_base,
    quantized_layer_count,
)
from worker.engine.step.setup import choose_levers, device_and_dtype, planned_optimization, set_up_levers
from worker.engine.step.timesteps import sampler_for
from worker.engine.train_rounds import TrainerRounds, TrainingError
from worker.engine.validate import (
    RUN_CONFIG_NAME,
    encode_plan_prompts,
    plan_from_config,
    trigger_warnings,
)

LORA_INIT_SEED_OFFSET = 7919
# Each clip shape's CUDA graph keeps its own activations' memory: at most this many are recorded
MAX_GRAPHED_SHAPES = 4


@dataclass
class TrainResult:
    """How a run ended: ``completed`` or ``cancelled`` at ``step`` of ``total``."""

    status: str
    step: int
    total: int
    output_dir: Path
    checkpoints: list[int] = field(default_factory=list)
    # (step, video loss or None where the mode scores no video, audio loss or None without audio)
    losses: list[tuple[int, float | None, float | None]] = field(default_factory=list)


class Trainer(TrainerRounds):
    """One training run; build it, then call :meth:`run` (see the module docstring)."""

    def __init__(
        self,
        config: RunConfig,
        *,
        data_dir: str | Path,
        model_dir: str | Path | None = None,
        device: str | None = None,
        callbacks: TrainCallbacks | None = None,
        cancel: CancelToken | None = None,
        pipeline=None,
        compile_blocks: bool = False,
        control: ControlRequests | None = None,
    ):
        self.rank_info = rank_from_env()  # one of several processes (worker.engine.distributed)
        world = self.rank_info.world if self.rank_info else 1
        if config.optimization.num_processes != world:  # the processes there are: the global batch
            config = config.model_copy(update={"optimization": config.optimization.model_copy(
                update={"num_processes": world})})
        self.config = config
        self.callbacks = callbacks or TrainCallbacks()
        self.cancel = cancel or CancelToken()
        self.control = control or ControlRequests()
        self.output_dir = Path(config.output_dir)
        self.fingerprint = config_fingerprint(config)
        if self.rank_info is not None:
            device = rank_device(self.rank_info, device or ("cuda" if torch.cuda.is_available() else "cpu"))
            if not self.rank_info.is_main:  # rank 0 reports, writes and samples for every rank
                self.callbacks = TrainCallbacks()
        self.device, self.dtype = device_and_dtype(config.optimization.mixed_precision, device, pipeline)
        try:  # refuse before loading anything
            check_mode(config)
            check_quantization_supported(config.quantization, self.device)
        except (ModeError, QuantizationUnavailable) as exc:
            raise TrainingError(str(exc)) from exc
        self.levers = self._choose_levers(compile_blocks)
        self.pipe = self._prepare_pipeline(pipeline, data_dir, model_dir)
        self.transformer = self.pipe.transformer
        self.dataset = PrecomputedDataset(
            config.data.preprocessed_dir, with_audio=config.training.with_audio, connectors=self.pipe.connectors
        )
        self.references = reference_source(config, self.dataset, self._log)  # reference_voice, else None
        self._setup_lora()
        self._setup_optimizer()
        self.sampler = sampler_for(config.training.timesteps)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.graphed = self._graphed_step()
        self.parallel = SingleProcess() if self.rank_info is None else DataParallel(
            self.rank_info, self.device, self.params, overlap=self.graphed is None)  # no collective in a graph
        self._shapes: tuple | None = None
        self.eta = EtaClock.for_config(config, self.plan, len(self.dataset))  # steps and samples left
        self.writer = CheckpointWriter()  # checkpoint files are written while the steps go on

    def _choose_levers(self, compile_blocks: bool) -> StepLevers:
        """The step's levers, decided as ``avlora bench train`` decides them. ``compile_blocks``
        forces the compile; otherwise ``optimization.compile`` asks for it, on CUDA with a base
        that is not quantised. The whole-step CUDA graph (``optimization.cuda_graph``) is for CUDA,
        without gradient accumulation."""
        opt = self.opt = planned_optimization(self.config, self.device, self._log)  # memory_plan: auto
        self._no_graph_because = None
        cuda_graph = opt.cuda_graph and self.device.startswith("cuda")
        if cuda_graph and opt.gradient_accumulation_steps > 1:
            cuda_graph, self._no_graph_because = False, "gradient accumulation"
        return choose_levers(
            self.device, quantization=self.config.quantization, gradient_checkpointing=opt.gradient_checkpointing,
            checkpointing_policy=opt.checkpointing_policy, checkpointing_ratio=opt.checkpointing_ratio,
            checkpointing_rest_policy=opt.checkpointing_rest_policy,
            compile_blocks=True if compile_blocks else (None if opt.compile else False), cuda_graph=cuda_graph,
        )

    def _prepare_pipeline(self, pipeline, data_dir: str | Path, model_dir: str | Path | None):
        """The pipeline to train (the caller's, or loaded here without its text encoder), with the
        validation prompts' embeddings (kept in the run folder; Gemma never stays); one loaded here
        is then quantised and moved to the device, block by block, never whole in bf16."""
        config = self.config
        self.callbacks.on_phase("model_load")
        pipe = pipeline or self._load_pipeline(data_dir, model_dir)
        pipe.set_progress_bar_config(disable=True)
        self.plan = plan_from_config(config)
        self.callbacks.on_phase("text_encoding")
        self.prompt_cache = encode_plan_prompts(  # from the run's store; Gemma loaded, then freed, for new text
            pipe, self.plan, device=self.device, dtype=self.dtype, load_in_8bit=config.load_text_encoder_in_8bit,
            model=(config.model, data_dir, model_dir), run_dir=self.output_dir, on_log=self._log,
        )
        if pipeline is None:
            self.callbacks.on_phase("model_load")
            if config.quantization != "none":
                count = quantize_frozen_base(pipe.transformer, config.quantization, device=self.device)
                self._log("info", f"Frozen base quantised ({config.quantization}): {count} Linear layers.")
            move_pipeline_except_text_encoder(pipe, self.device)
        self.callbacks.on_phase("setup")
        return pipe

    def _setup_optimizer(self) -> None:
        opt = self.config.optimization
        self.params = trainable_parameters(self.transformer)
        self.optimizer = build_optimizer(
            self.params, name=opt.optimizer, lr=opt.learning_rate, weight_decay=opt.weight_decay,
            fused=self.levers.fused_optimizer,
        )
        if opt.scheduler == "linear":
            self.scheduler = linear_schedule(self.optimizer, total_steps=opt.steps, warmup_steps=opt.warmup_steps,
                                             end_factor=opt.lr_end_factor)
        else:
            self.scheduler = linear_schedule(self.optimizer, total_steps=1, warmup_steps=opt.warmup_steps,
                                             end_factor=1.0)

    def _graphed_step(self) -> GraphedStep | None:
        """The whole-step CUDA graph, where the levers have one (see :meth:`_choose_levers`)."""
        self._told_other_shapes = False
        if self._no_graph_because:
            self._log("info", f"Steps run without a CUDA graph ({self._no_graph_because}).")
        if not self.levers.cuda_graph:
            return None
        shapes = min(len(self.config.data.bucket_list), MAX_GRAPHED_SHAPES)
        self._log("info", f"Each step replays as one CUDA graph, recorded at the first step of each clip shape "
                          f"(up to {shapes}; again after sampling).")
        return GraphedStep(self._forward_backward, self.params, max_graphs=shapes)

    def _forward_backward(self, batch, inputs, loss_scale: float = 1.0):
        return forward_backward(
            self.transformer, batch, inputs, audio_loss_weight=self.config.training.audio_loss_weight,
            loss_scale=loss_scale, weight_cast=lambda: self.levers.weight_cast(self.transformer, self.dtype),
        )

    def _graphed_or_eager(self, batch, inputs, loss_scale: float):
        """One micro-step's forward and backward: replayed as a CUDA graph where it can be, else eager."""
        if self.graphed is not None and loss_scale == 1.0:
            try:
                return self.graphed(batch, inputs)
            except GraphUnavailable as exc:
                if exc.permanent:
                    self.graphed = None
                    self._log("warning", f"{exc}. The run goes on without CUDA graphs.")
                elif not self._told_other_shapes:
                    self._told_other_shapes = True
                    self._log("info", f"{exc}.")
        return self._forward_backward(batch, inputs, loss_scale)

    def _load_pipeline(self, data_dir, model_dir):
        from worker.engine.model.pipelines import load_pipeline

        # on the CPU, without Gemma: encode_plan_prompts loads it only for text not encoded before
        return load_pipeline(self.config.model, data_dir=Path(data_dir), model_dir=model_dir, device="cpu",
                             dtype=self.dtype, with_text_encoder=False)

    def _setup_lora(self) -> None:
        lora = self.config.lora
        if self.config.quantization != "none" and not quantized_layer_count(self.transformer):
            # a caller's pipeline: quantise where it is, before the LoRA so PEFT wraps the int8 layers
            count = quantize_frozen_base(self.transformer, self.config.quantization)
            self._log("info", f"Frozen base quantised ({self.config.quantization}): {count} Linear layers.")
        try:
            targets, left_out = lora_targets(self.transformer, self.config)
            names = add_lora(self.transformer, rank=lora.rank, alpha=lora.alpha, target_modules=targets,
                             dropout=lora.dropout, init_seed=self.config.seed + LORA_INIT_SEED_OFFSET)
        except ValueError as exc:
            raise TrainingError(str(exc)) from exc
        if left_out:
            self._log("info", f"Mode {self.config.training.mode}: {len(left_out)} matched layers outside its "
                              f"trainable side get no LoRA ({families_of(left_out)}).")
        self.lora_families = families_of(names)
        # the same set-up as the benchmark's: LoRA math in the base dtype, checkpointing, compile
        self.checkpoint_modes = set_up_levers(
            self.transformer, self.levers, gradient_checkpointing=self.opt.gradient_checkpointing
        )
        self._log("info", f"LoRA on {len(names)} layers: {self.lora_families}")
        if self.config.training.with_audio and not any(side_of_family(f) == "audio" for f in self.lora_families):
            self._log("warning", "target_modules reach no audio-side module: the LoRA cannot change the audio.")

    def _log(self, level: str, message: str) -> None:
        self.callbacks.on_log(level, message)

    # --- run ---------------------------------------------------------------------------------

    def run(self, *, resume: bool = False) -> TrainResult:
        """Train until ``optimization.steps`` or a cancel; returns how it ended, every checkpoint written."""
        try:
            with self.writer.draining():
                return self._run(resume)
        finally:
            self.parallel.close()

    def _cancelled(self) -> bool:
        """Whether the run stops here: rank 0's cancel, agreed by every rank."""
        return self.parallel.agree([self.cancel.is_cancelled()])[0]

    def _run(self, resume: bool) -> TrainResult:
        total = self.config.optimization.steps
        self.output_dir.mkdir(parents=True, exist_ok=True)
        start = self._resume() if resume else 0
        if not resume and list_checkpoint_steps(self.output_dir):
            raise TrainingError(
                f"{self.output_dir} already holds checkpoints: resume the run (--resume) or choose a new output_dir."
            )
        config_text = run_config_to_yaml(self.config)
        if self.parallel.is_main:
            atomic_write(self.output_dir / RUN_CONFIG_NAME, lambda tmp: tmp.write_text(config_text))
        for warning in trigger_warnings(self.plan.prompts, self.config.data.trigger):
            self._log("warning", warning)
        result = TrainResult("completed", start, total, self.output_dir, list_checkpoint_steps(self.output_dir))
        if start == 0 and (self.config.validation.at_checkpoints or self.config.validation.interval):
            self._validate(0, include_base=True)
        elif self._samples_due(start):  # a resume: the samples a cancel left out at its checkpoint, base included
            self._validate(start, include_base=True, missing_only=True)
        checkpoint_steps = set(self.config.checkpoint_steps())
        for step in range(start, total):
            self.writer.poll()  # a checkpoint written meanwhile: its row now, or its error
            if self._cancelled():
                if step not in result.checkpoints and step > 0:
                    self._checkpoint(step, result)
                self._log("info", f"Cancelled at step {step}; resume continues from here.")
                result.status, result.step = "cancelled", step
                return result
            self.callbacks.on_phase("train_step")
            started = time.perf_counter()
            loss, loss_video, loss_audio, grad_norm = self._train_step(step)
            done = step + 1
            self.eta.step_done(time.perf_counter() - started)
            result.step = done
            result.losses.append((done, loss_video, loss_audio))
            self.callbacks.on_progress(
                ProgressEvent(
                    step=done, total=total, loss=loss, loss_video=loss_video, loss_audio=loss_audio,
                    lr=self.scheduler.get_last_lr()[0], grad_norm=grad_norm, step_time_s=self.eta.last_step_s,
                    memory_bytes=peak_memory_bytes(self.device), eta_s=self.eta.eta_s(done),
                )
            )
            if done < total and self._cancelled():
                continue  # the loop's top checkpoints this step and stops; its samples are made on resume
            interval = self.config.validation.interval
            sampled = False
            if done in checkpoint_steps:
                self._checkpoint(done, result)
                if self.config.validation.at_checkpoints:
                    self._validate(done)
                    sampled = True
            elif interval and done % interval == 0:
                self._validate(done)
                sampled = True
            self._serve_requests(done, result, sampled)
        return result

    def _serve_requests(self, step: int, result: TrainResult, sampled: bool) -> None:
        """Carry out "checkpoint now" / "sample now" asked during the step just finished (rank 0)."""
        requests = self.control.take() if self.parallel.is_main else set()
        if ControlRequests.CHECKPOINT in requests:
            if step not in result.checkpoints:
                self._log("info", f"Checkpoint asked for at step {step}.")
                self._checkpoint(step, result)
                if self.config.validation.at_checkpoints and not sampled:
                    self._validate(step)
                    sampled = True
            self.control.done(ControlRequests.CHECKPOINT, step)
        if ControlRequests.SAMPLE in requests:
            if not sampled:
                self._log("info", f"Samples asked for at step {step}.")
                self._validate(step)
            self.control.done(ControlRequests.SAMPLE, step)

    def _train_step(self, step: int) -> tuple[float, float | None, float | None, float]:
        opt, training = self.config.optimization, self.config.training
        accumulation, per_rank = opt.gradient_accumulation_steps, opt.batch_size
        self.optimizer.zero_grad(set_to_none=True)
        totals, videos, audios = [], [], []
        for micro in range(accumulation):
            begin_compiled_step(self.levers.compile_mode)  # each forward + backward: one CUDA graph step
            self.parallel.accumulating(micro == accumulation - 1)
            # the global batch, noised as one process would; then this rank's rows of it
            indices = step_indices(step * accumulation + micro, per_rank * self.parallel.world, self._shape_keys(),
                                   self.config.seed)
            batch = collate([self.dataset[i] for i in indices], self.device, self.dtype)
            batch, inputs = micro_step_inputs(batch, training, self.sampler, self.generator)
            batch, inputs, indices = self.parallel.shard(batch, inputs, indices, per_rank)
            batch = ready_for_step(self.transformer, batch, drop_all_ones_mask=self.levers.drop_all_ones_text_mask)
            if self.references is not None:
                batch, inputs = self.references.prepend(self.transformer, batch, inputs, indices)
            losses = self._graphed_or_eager(batch, inputs, 1.0 / accumulation)
            # kept on the device: reading them here would stall the queue before the next micro-step
            totals.append(losses.total.detach())
            if losses.video_loss is not None:
                videos.append(losses.video_loss)
            if losses.audio_loss is not None:
                audios.append(losses.audio_loss)
        self.parallel.finish_gradients()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, opt.max_grad_norm))
        if not torch.isfinite(torch.tensor(grad_norm)):
            raise TrainingError(f"The gradient became {grad_norm} at step {step + 1}: lower the learning rate.")
        self.optimizer.step()
        self.scheduler.step()
        loss, video, audio = self.parallel.mean([float(torch.stack(totals).mean()), mean_or_none(videos),
                                                 mean_or_none(audios)])
        return loss, video, audio, grad_norm

    def _shape_keys(self) -> tuple:
        """Each sample's shape, read once where a step takes several clips (they share a bucket)."""
        if self.config.optimization.batch_size * self.parallel.world == 1:
            return (None,) * len(self.dataset)
        if self._shapes is None:
            self._shapes = shape_keys(self.dataset)
        return self._shapes



def train_run(
    config: RunConfig,
    *,
    data_dir: str | Path,
    model_dir: str | Path | None = None,
    resume: bool = False,
    device: str | None = None,
    callbacks: TrainCallbacks | None = None,
    cancel: CancelToken | None = None,
    pipeline=None,
    compile_blocks: bool = False,
    control: ControlRequests | None = None,
) -> TrainResult:
    """Build a :class:`Trainer` for ``config`` and run it (the entry point for the CLI and tasks).

    ``compile_blocks``: force ``torch.compile`` of each transformer block (otherwise the config's
    ``optimization.compile`` decides, on CUDA only; docs/benchmarks.md has its measured effect).
    ``control``: where "checkpoint now" and "sample
    now" requests come from (taken between steps).
    """
    trainer = Trainer(
        config, data_dir=data_dir, model_dir=model_dir, device=device,
        callbacks=callbacks, cancel=cancel, pipeline=pipeline, compile_blocks=compile_blocks,
        control=control,
    )
    return trainer.run(resume=resume)
