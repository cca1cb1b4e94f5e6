"""Job handlers by kind. Each is ``handler(ctx: JobContext, params: dict) -> dict | None``."""

from __future__ import annotations

from core.names import JobKind
from worker.handlers.key_report import key_report
from worker.handlers.preprocess import preprocess
from worker.handlers.probe import probe_clip
from worker.handlers.sample_metrics import sample_metrics
from worker.handlers.speech import split_plan, transcribe
from worker.handlers.split import split_clip
from worker.handlers.strength_samples import strength_samples
from worker.handlers.train import train

HANDLERS = {
    JobKind.probe_clip: probe_clip,  # cpu queue
    JobKind.preprocess: preprocess,  # gpu queue
    JobKind.train: train,  # gpu queue
    JobKind.key_report: key_report,  # cpu queue: which LoRA keys load
    JobKind.sample_metrics: sample_metrics,  # cpu queue
    JobKind.strength_samples: strength_samples,  # gpu queue: per-modality LoRA strengths on the compare page
    JobKind.transcribe: transcribe,  # cpu queue: words of clips, with their times
    JobKind.split_plan: split_plan,  # cpu queue: cut points of a long clip
    JobKind.split_clip: split_clip,  # cpu queue: cut a clip into new clips
}
