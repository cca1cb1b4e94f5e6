"""``avlora train CONFIG.yaml [--resume] [--force] [--json] [--gpus N | --num-processes N]``.

Trains a LoRA as the run config says: checkpoints/ (official + diffusers LoRA files and a
resumable state) and samples/ under the config's output_dir. The run form's linter checks the
config first and training is refused on its errors (LoRA targets that reach no audio layer while
with_audio is on, an empty trigger, ...), each named, unless --force. A ``.precomputed`` cache
made for another model (its preprocess_report.json names the preset) is always refused. Ctrl-C
stops after the current step and writes a checkpoint, so ``--resume`` continues the same run.
With --gpus N (one process per GPU) or --num-processes N (on the CPU: gloo), or the config's
optimization.num_processes, N processes train the run together, each on batch_size clips of every
step (data parallel); rank 0 prints, checkpoints and samples; when one process dies the others are
ended and the run is interrupted (resume with any number of processes, the same global batch).
Exit status: 0 when the run completed, 1 when training failed or a process died, 2 for a bad
config (linter errors included), a cache of another model or missing model weights, 130 when cancelled.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

CONTROL_FILE_ENV = "AVLORA_CONTROL_FILE"


def register(subparsers) -> None:
    """Add the ``train`` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "train", help="train a LoRA from a run config (YAML)", description=__doc__.split("\n\n", 1)[1]
    )
    parser.add_argument("config", help="run config YAML (see `avlora config --preset sanity`)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in output_dir")
    parser.add_argument("--force", action="store_true",
                        help="train even when the linter finds errors in the config (they are still printed)")
    parser.add_argument("--json", action="store_true", help="print progress and the result as JSON lines")
    parser.add_argument("--data-dir", default=None, help="DATA_DIR (toy models live here; default: AVLORA_DATA_DIR)")
    parser.add_argument("--model-dir", default=None, help="MODEL_DIR for the real presets (default: AVLORA_MODEL_DIR)")
    parser.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    parser.add_argument("--compile", action="store_true", help="torch.compile each transformer block (GPU; faster steps)")
    parser.add_argument("--log-every", type=int, default=10, help="print a progress line every N steps")
    parallel = parser.add_mutually_exclusive_group()
    parallel.add_argument("--gpus", type=int, default=None,
                          help="train on N GPUs of this host, one process each (data parallel)")
    parallel.add_argument("--num-processes", type=int, default=None,
                          help="N processes on the device given (--device cpu: gloo; for tests and CPU hosts)")
    parser.set_defaults(func=run)


def _callbacks(args: argparse.Namespace):
    from worker.engine.progress import TrainCallbacks

    def emit(kind: str, payload: dict) -> None:
        print(json.dumps({"event": kind, **payload}, default=str), flush=True)

    class CliCallbacks(TrainCallbacks):
        def on_progress(self, event) -> None:
            if args.json:
                emit("progress", event.to_dict())
            elif event.step % max(1, args.log_every) == 0 or event.step == event.total:
                audio = "-" if event.loss_audio is None else f"{event.loss_audio:.4f}"
                video = "-" if event.loss_video is None else f"{event.loss_video:.4f}"  # voice, audio_only: none
                print(
                    f"step {event.step}/{event.total}  loss_video {video}  loss_audio {audio}  "
                    f"lr {event.lr:.2e}  grad {event.grad_norm:.3f}  {event.step_time_s:.2f}s/step  "
                    f"eta {event.eta_s / 60:.1f} min",
                    file=sys.stderr,
                )

        def on_checkpoint(self, event) -> None:
            if args.json:
                emit("checkpoint", {"step": event.step, "official": event.official_path,
                                    "diffusers": event.diffusers_path, "state": event.state_path,
                                    "key_counts": event.key_counts})
            else:
                print(f"checkpoint {event.step}: {event.official_path}", file=sys.stderr)

        def on_sample(self, event) -> None:
            if args.json:
                emit("sample", {"step": event.step, "prompt": event.prompt_index, "variant": event.variant,
                                "mp4": event.mp4_path, "wav": event.wav_path, "seed": event.seed,
                                "source": event.source})

        def on_log(self, level: str, message: str) -> None:
            if args.json:
                emit("log", {"level": level, "message": message})
            else:
                print(f"{level}: {message}", file=sys.stderr)

    return CliCallbacks()


def _control(args: argparse.Namespace):
    """Where "checkpoint now" / "sample now" come from: the file the job worker names in
    ``AVLORA_CONTROL_FILE`` (a run on several processes), else nowhere."""
    import os

    from worker.engine.progress import ControlRequests, FileControlRequests

    path = os.environ.get(CONTROL_FILE_ENV)
    if not path:
        return ControlRequests()

    def done(name: str, step: int) -> None:
        if args.json:
            print(json.dumps({"event": "control_done", "name": name, "step": step}), flush=True)

    return FileControlRequests(path, on_done=done)


def _read_config(path: str):
    """The run config in ``path``, or None after printing why it cannot be read."""
    from pathlib import Path

    from core.recipe.config_yaml import ConfigFileError
    from core.recipe.run_config import run_config_from_yaml

    config_path = Path(path)
    try:
        return run_config_from_yaml(config_path.read_text(), source=str(config_path))
    except FileNotFoundError:
        print(f"error: config file not found: {config_path}", file=sys.stderr)
    except ConfigFileError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
    return None


def _lint_allows(config, args: argparse.Namespace) -> bool:
    """Run the run form's linter on ``config``, print what it finds (as JSON lines with --json);
    False when it found errors and --force was not given."""
    from core.recipe.lint import lint_run_config
    from worker.engine.distributed.group import rank_from_env

    if rank_from_env() is not None:  # a rank of a launched run: the launcher checked the config
        return True
    issues = lint_run_config(config)
    errors = [issue for issue in issues if issue.severity == "error"]
    for issue in issues:
        if args.json:
            print(json.dumps({"event": "lint", **issue.to_dict()}, default=str), flush=True)
        else:
            print(f"{issue.severity}: [{issue.code}] {issue.message}", file=sys.stderr)
    if errors and not args.force:
        codes = ", ".join(issue.code for issue in errors)
        print(f"error: the run form would refuse this config ({codes}): fix it, or pass --force to train anyway",
              file=sys.stderr)
        return False
    if errors:
        print(f"warning: training despite {len(errors)} linter error(s) (--force)", file=sys.stderr)
    return True


def run(args: argparse.Namespace) -> int:
    """Handle ``avlora train``; returns the exit status."""
    from core.config import Settings
    from core.model_files import ModelFilesMissing
    from worker.engine.data.dataset import DatasetError, check_cache_model
    from worker.engine.distributed.group import rank_from_env
    from worker.engine.distributed.launch import exit_with_launcher
    from worker.engine.progress import CancelToken
    from worker.engine.step.optim import OptimizerUnavailable
    from worker.engine.train import TrainingError, train_run

    config = _read_config(args.config)
    if config is None or not _lint_allows(config, args):
        return 2
    world = args.gpus or args.num_processes or config.optimization.num_processes
    if world > 1 and rank_from_env() is None:
        return _launch(args, config, world)
    exit_with_launcher()  # a rank: gone with its launcher
    settings = Settings()
    cancel = CancelToken()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.cancel())
    try:
        check_cache_model(config.data.preprocessed_dir, config.model)  # before any weights load
        result = train_run(
            config,
            data_dir=args.data_dir or settings.data_dir,
            model_dir=args.model_dir or settings.model_dir,
            resume=args.resume,
            device=args.device,
            callbacks=_callbacks(args),
            cancel=cancel,
            control=_control(args),
            compile_blocks=args.compile,
        )
    except (ModelFilesMissing, DatasetError, OptimizerUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, previous)
    summary = {"status": result.status, "step": result.step, "total": result.total,
               "output_dir": str(result.output_dir), "checkpoints": result.checkpoints}
    if args.json:
        print(json.dumps({"event": "result", **summary}), flush=True)
    else:
        print(f"{result.status} at step {result.step}/{result.total}; checkpoints {result.checkpoints} "
              f"in {result.output_dir}/checkpoints")
    return 0 if result.status == "completed" else 130


def _rank_arguments(args: argparse.Namespace) -> list[str]:
    """The ``avlora train`` arguments every rank gets (this command's, less the process count)."""
    arguments = ["train", args.config, "--log-every", str(args.log_every)]
    arguments += [flag for flag, on in (("--resume", args.resume), ("--force", args.force), ("--json", args.json),
                                        ("--compile", args.compile)) if on]
    for flag, value in (("--data-dir", args.data_dir), ("--model-dir", args.model_dir),
                        ("--device", "cuda" if args.gpus else args.device)):
        if value:
            arguments += [flag, str(value)]
    return arguments


def _launch(args: argparse.Namespace, config, world: int) -> int:
    """Run ``world`` ranks of this command and report how they ended."""
    from pathlib import Path

    from worker.engine.distributed.launch import launch, rank_command

    on_cpu = args.device == "cpu" and not args.gpus
    if not on_cpu:
        import torch

        have = torch.cuda.device_count()
        if have < world:
            print(f"error: {world} processes need {world} GPUs; this host has {have} "
                  "(on the CPU: --device cpu --num-processes N)", file=sys.stderr)
            return 2
    print(f"training on {world} processes ({'CPU, gloo' if on_cpu else f'{world} GPUs, NCCL'}); global batch "
          f"{config.optimization.batch_size * world}", file=sys.stderr)
    result = launch(rank_command(_rank_arguments(args)), world, Path(config.output_dir) / "ranks", on_cpu=on_cpu)
    if result.message:
        print(f"{'error' if result.status == 'interrupted' else 'info'}: {result.message}", file=sys.stderr)
    if args.json and result.status == "interrupted":
        print(json.dumps({"event": "result", "status": "interrupted", "message": result.message}), flush=True)
    return result.returncode
