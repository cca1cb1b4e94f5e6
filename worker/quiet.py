"""Keep the worker's log for what a person can act on.

Imported first by :mod:`worker.celery_app`, in Celery's main process before the pool forks, so
every job process inherits it. Quieted, because nobody running the studio can do anything about
them:

- Celery's "running the worker with superuser privileges" warning: the studio's container and
  the one-command set-up run as root, and the worker accepts JSON only (no pickle), which is
  the case Celery's own check lets through with a mere warning;
- torchao's notes that its optional CUDA kernels (``_C_mxfp8``, cutlass) or Triton are missing,
  diffusers' note that torchao tensor types could not be imported, and PyTorch's deprecation
  notes about the enums torchao registers: the engine uses none of them unless quantisation is
  asked for, and then it says itself what it lacks;
- progress bars (tqdm) of loading and saving models, which Celery logs redraw by redraw as
  warnings: the job's own progress (step of total, with a message) is on its page and in its log.

Errors, and warnings from other libraries, still reach the log. ``AVLORA_WORKER_VERBOSE=1``
keeps everything (for debugging an install).
"""

from __future__ import annotations

import logging
import os
import warnings

# Loggers whose warnings are noise here, set to ERROR: their errors still show.
NOISY_LOGGERS = (
    "torchao",
    "diffusers.quantizers.torchao",
    "torch.utils._pytree",
)
PROGRESS_BAR_SWITCHES = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


def quiet_worker() -> None:
    """Turn off the noise listed in the module docstring (environment, warnings filters, loggers)."""
    if os.environ.get("AVLORA_WORKER_VERBOSE", "").strip() in ("1", "true", "yes"):
        return
    for name, value in PROGRESS_BAR_SWITCHES.items():
        os.environ.setdefault(name, value)
    warnings.filterwarnings("ignore", message=r"(?s).*running the worker with superuser privileges")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


quiet_worker()
