"""Exporting a checkpoint: a zip with the LoRA file and a small model card.

Layouts: ``comfy`` (the official / ComfyUI file, ``diffusion_model.<ltx-core name>`` keys, alpha
folded into ``lora_B``) and ``diffusers`` (``transformer.`` keys, PEFT config in the header,
saved as ``pytorch_lora_weights.safetensors``, the name diffusers' ``load_lora_weights`` looks
for in a folder). Module selections: ``all``, ``no-audio`` (the audio-side families stripped:
``audio_attn1``, ``audio_attn2``, ``video_to_audio_attn``, ``audio_ff``) and ``audio-only``
(only those). Sides are :data:`core.recipe.architecture.AUDIO_FAMILIES`.

Stripping is done on the file's bytes without torch: tensors are copied unchanged, the header is
rewritten with new offsets, the digest ``avlora_tensor_sha256`` is recomputed the way
``worker.engine.lora.files.tensor_digest`` computes it (so ``verify-lora`` still proves the file
unaltered), and the diffusers header's ``target_modules`` lists only the modules kept.

A ``reference_voice`` run's zip also holds the reference clip its validation used
(``reference_voice.wav``, cut as training fed it) and a README section saying which ComfyUI node
takes which file (:mod:`core.recipe.reference_export`); its LoRA file's header gets
``avlora_reference_audio``, a note of that clip and where the node puts it.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from core.config import get_settings
from core.disk import ensure_free
from core.errors import Conflict, InvalidInput, NotFound
from core.files import atomic_write
from core.models import TrainingRun
from core.recipe import reference_export
from core.recipe.architecture import AUDIO_FAMILIES, module_family
from core.recipe.modes import MODE_REFERENCE_VOICE
from core.recipe.run_config import expand_trigger
from core.services import lora_check
from core.services.preprocess_runs import PRECOMPUTED, run_dir
from core.services.votes import vote_summary

LAYOUTS = {"comfy": "official", "diffusers": "diffusers"}
MODULE_SELECTIONS = ("all", "no-audio", "audio-only")
EXPORT_FOLDER = "exports"
DIGEST_KEY = "avlora_tensor_sha256"  # as worker.engine.lora.files.DIGEST_METADATA_KEY
PEFT_METADATA_KEY = "lora_adapter_metadata"
# safetensors dtype -> str(torch dtype), the spelling the digest hashes.
TORCH_DTYPE_NAMES = {"BF16": "torch.bfloat16", "F16": "torch.float16", "F32": "torch.float32",
                     "F64": "torch.float64", "I64": "torch.int64", "I32": "torch.int32", "I16": "torch.int16",
                     "I8": "torch.int8", "U8": "torch.uint8", "BOOL": "torch.bool"}
_PREFIXES = ("diffusion_model.", "transformer.")
_CHUNK = 1024 * 1024
CARD_METRICS = ("integrated_lufs", "sample_peak_dbfs", "clipping_ratio", "spectral_flatness", "buzz_score_db",
                "speech_ratio", "voice_distance")


def key_family(key: str) -> str:
    """The block family of a LoRA key in either layout (``other`` for connectors and the rest)."""
    name = key
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    return module_family(name)


def keep_key(key: str, modules: str) -> bool:
    """Whether ``key`` belongs in an export with module selection ``modules``."""
    is_audio = key_family(key) in AUDIO_FAMILIES
    return {"all": True, "no-audio": not is_audio, "audio-only": is_audio}[modules]


def tensor_digest(entries: dict[str, dict], read_bytes) -> str:
    """SHA-256 over sorted key, torch dtype name, shape tuple and raw bytes (``lora_io.tensor_digest``)."""
    digest = hashlib.sha256()
    for key in sorted(entries):
        entry = entries[key]
        digest.update(key.encode())
        digest.update(TORCH_DTYPE_NAMES.get(entry["dtype"], entry["dtype"]).encode())
        digest.update(str(tuple(int(d) for d in entry["shape"])).encode())
        for chunk in read_bytes(entry):
            digest.update(chunk)
    return digest.hexdigest()


def _byte_reader(path: Path, data_offset: int):
    def read(entry: dict) -> Iterable[bytes]:
        begin, end = entry["data_offsets"]
        with path.open("rb") as handle:
            handle.seek(data_offset + begin)
            left = end - begin
            while left > 0:
                chunk = handle.read(min(_CHUNK, left))
                if not chunk:
                    raise OSError(f"{path} ends inside a tensor")
                left -= len(chunk)
                yield chunk
    return read


def _kept_target_modules(metadata: dict[str, str], kept_keys: Iterable[str]) -> dict[str, str]:
    raw = metadata.get(PEFT_METADATA_KEY)
    if not raw:
        return metadata
    peft = json.loads(raw)
    modules = sorted({k.removeprefix("transformer.").rsplit(".lora_", 1)[0] for k in kept_keys
                      if k.startswith("transformer.")})
    for name in ("transformer.target_modules", "target_modules"):
        if name in peft:
            peft[name] = modules
    return {**metadata, PEFT_METADATA_KEY: json.dumps(peft, sort_keys=True)}


def write_lora_subset(source: Path, out, modules: str, extra_metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """Write the tensors of ``source`` selected by ``modules`` as a safetensors file to the binary
    stream ``out``, with ``extra_metadata`` added to its header. Returns ``{"kept", "dropped"}``
    key counts. Raises :class:`InvalidInput` when nothing would be left (e.g. ``audio-only`` of a
    LoRA without audio-side keys)."""
    if modules not in MODULE_SELECTIONS:
        raise InvalidInput("invalid_modules",
                           f"Unknown module selection {modules!r}: use {', '.join(MODULE_SELECTIONS)}.")
    entries, metadata, data_offset = lora_check.read_safetensors_header(source)
    kept = {k: v for k, v in entries.items() if keep_key(k, modules)}
    if not kept:
        why = "it holds no audio-side keys" if modules == "audio-only" else "every key is on the audio side"
        raise InvalidInput("empty_selection", f"Nothing is left of this LoRA with modules={modules}: {why}.")
    read = _byte_reader(source, data_offset)
    new_entries, offset = {}, 0
    for key in sorted(kept, key=lambda k: kept[k]["data_offsets"][0]):
        begin, end = kept[key]["data_offsets"]
        new_entries[key] = {"dtype": kept[key]["dtype"], "shape": kept[key]["shape"],
                            "data_offsets": [offset, offset + end - begin]}
        offset += end - begin
    metadata = {**metadata, **(extra_metadata or {})}
    if modules != "all":
        metadata = _kept_target_modules(metadata, kept)
        metadata["avlora_modules"] = modules
        if DIGEST_KEY in metadata:
            metadata[DIGEST_KEY] = tensor_digest(kept, read)
    header = json.dumps({"__metadata__": metadata, **new_entries}, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the format aligns the data to 8 bytes
    out.write(struct.pack("<Q", len(header)))
    out.write(header)
    for key in new_entries:
        for chunk in read(kept[key]):
            out.write(chunk)
    return {"kept": len(kept), "dropped": len(entries) - len(kept)}


def _checkpoint_source(run: TrainingRun, step: int, layout: str) -> Path:
    checkpoint = next((c for c in run.checkpoints if c.step == step), None)
    if checkpoint is None:
        steps = ", ".join(str(c.step) for c in run.checkpoints) or "none yet"
        raise NotFound("checkpoint", f"{step} of run #{run.id} (checkpoints: {steps})")
    relative = (checkpoint.files or {}).get(LAYOUTS[layout])
    data_dir = get_settings().data_dir
    path = (data_dir / relative).resolve() if relative else None
    if path is None or data_dir.resolve() not in path.parents or not path.is_file():
        raise Conflict("checkpoint_pruned", f"The files of checkpoint {step} were removed (keep_last_n): "
                       "export a later checkpoint.")
    return path


def model_card(session: Session, run: TrainingRun, step: int, layout: str, modules: str) -> dict[str, Any]:
    """What the card says: dataset, trigger, config, step, prompts, metrics, key report, votes."""
    config = run.config or {}
    samples = [s for s in run.samples if s.step == step and s.variant != "base"]
    base = {s.prompt_index: s for s in run.samples if s.variant == "base"}
    metrics = []
    for sample in sorted(samples, key=lambda s: (s.prompt_index, s.variant)):
        values = sample.metrics or {}
        metrics.append({"prompt_index": sample.prompt_index, "variant": sample.variant,
                        **{name: values.get(name) for name in CARD_METRICS},
                        "base": {name: (base[sample.prompt_index].metrics or {}).get(name) for name in CARD_METRICS}
                        if sample.prompt_index in base else None,
                        "flags": [f.get("code") for f in values.get("flags") or []]})
    checkpoint = next((c for c in run.checkpoints if c.step == step), None)
    key_report = lora_check.checkpoint_key_report(session, checkpoint) if checkpoint else None
    votes = [c for c in vote_summary(session, run.id)["contenders"] if c["step"] in (step, None)]
    trigger = config.get("data", {}).get("trigger") or run.dataset.trigger
    name = _zip_name(run, step, layout, modules)
    return {
        "name": f"{run.dataset.name} · run {run.id} · step {step}",
        "dataset": {"id": run.dataset_id, "name": run.dataset.name},
        "trigger": trigger,
        "files": [_lora_file_name(name, layout), "README.md", "model_card.json"],
        "model": config.get("model"), "layout": layout, "modules": modules, "step": step,
        "steps": config.get("optimization", {}).get("steps"), "best": run.best_checkpoint_step == step,
        "lora": config.get("lora", {}), "optimization": config.get("optimization", {}),
        "buckets": config.get("data", {}).get("buckets"),
        "validation_prompts": [expand_trigger(p, trigger) for p in config.get("validation", {}).get("prompts", [])],
        "metrics": metrics,
        "key_report": None if key_report is None else {
            "status": key_report["status"], "ok": key_report["ok"],
            "layouts": {layout: {"loaded": r["loaded_keys"], "total": r["total_keys"]}
                        for layout, r in key_report["reports"].items()}},
        "blind_votes": votes,
    }


LAYOUT_NOTES = {"comfy": "ComfyUI / official ltx-trainer keys, alpha folded into lora_B",
                "diffusers": "diffusers layout: pipe.load_lora_weights(folder)"}


def _shown(value: Any) -> str:
    """A metric as the card prints it: two decimals, "n/a" where it was not measured."""
    if value is None:
        return "n/a"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _metric_with_base(row: dict[str, Any], name: str) -> str:
    base = row["base"] or {}
    return f"{_shown(row.get(name))} ({_shown(base.get(name))})" if base else _shown(row.get(name))


def card_markdown(card: dict[str, Any]) -> str:
    """The model card as README.md."""
    lora, best = card["lora"], " (marked best)" if card["best"] else ""
    lines = [f"# {card['name']}", "",
             f"An LTX-2 Audio-Video LoRA trained with AV-LoRA Studio on the dataset **{card['dataset']['name']}**.",
             "",
             f"- Trigger word: `{card['trigger']}` (start your prompt with it)",
             f"- Base model: `{card['model']}`",
             f"- Checkpoint: step {card['step']} of {card['steps']}{best}",
             f"- File layout: {card['layout']} ({LAYOUT_NOTES[card['layout']]})",
             f"- Modules: {card['modules']}",
             f"- LoRA: rank {lora.get('rank')}, alpha {lora.get('alpha')}, targets {lora.get('target_modules')}",
             f"- Learning rate {card['optimization'].get('learning_rate')}, buckets {card['buckets']}",
             "", "## Files", ""]
    lines += [f"- `{card['files'][0]}`: the LoRA ({LAYOUT_NOTES[card['layout']]}, modules {card['modules']})"]
    if reference_export.REFERENCE_WAV_NAME in card["files"]:
        lines.append(f"- `{reference_export.REFERENCE_WAV_NAME}`: the reference clip of the voice (for "
                     f"{reference_export.REFERENCE_NODE})")
    lines += ["- `README.md`: this card", "- `model_card.json`: the same facts, for scripts"]
    lines += ["", "## Validation prompts", ""]
    lines += [f"{i + 1}. {prompt}" for i, prompt in enumerate(card["validation_prompts"])]
    lines += ["", "## Audio metrics at this step (the base model's in brackets where it was sampled)", "",
              "| prompt | variant | LUFS | peak dBFS | buzz dB | speech | voice distance | flags |",
              "|---|---|---|---|---|---|---|---|"]
    for row in card["metrics"]:
        values = [_metric_with_base(row, name)
                  for name in ("integrated_lufs", "sample_peak_dbfs", "buzz_score_db", "speech_ratio")]
        lines.append(f"| {row['prompt_index'] + 1} | {row['variant']} | {' | '.join(values)} | "
                     f"{_shown(row.get('voice_distance'))} | {', '.join(row['flags']) or 'none'} |")
    report = card["key_report"]
    if report:
        verdict = "every key loads" if report["ok"] else "NOT verified"
        lines += ["", f"Key report: {report['status']}, {verdict}."]
    if card.get("reference_voice"):
        lines += reference_export.workflow_lines(card["reference_voice"], card["files"][0], card["layout"],
                                                 card["model"])
    lines.append("")
    return "\n".join(lines)


def _lora_file_name(name: str, layout: str) -> str:
    """The LoRA's name in the zip: diffusers' ``load_lora_weights`` looks for its own name in a folder."""
    return "pytorch_lora_weights.safetensors" if layout == "diffusers" else f"{name}.safetensors"


def _zip_name(run: TrainingRun, step: int, layout: str, modules: str) -> str:
    suffix = "" if modules == "all" else f"_{modules}"
    return f"run{run.id}_step{step:05d}_{layout}{suffix}"


def run_reference(run: TrainingRun) -> reference_export.ReferenceExport | None:
    """The reference clip a ``reference_voice`` run's export ships (None for any other mode)."""
    if ((run.config or {}).get("training") or {}).get("mode") != MODE_REFERENCE_VOICE:
        return None
    prep = run.preprocess_run
    if prep is None or not prep.output_dir:
        return reference_export.ReferenceExport(None, why="the run has no preprocess run to take its clips from")
    folder = run_dir(prep)
    return reference_export.prepare_reference(folder, folder / PRECOMPUTED, prep.clip_results or [])


def build_export(session: Session, run: TrainingRun, step: int, layout: str = "comfy",
                 modules: str = "all") -> tuple[Path, str]:
    """Write the export zip under DATA_DIR/exports (atomically); returns its path and download name.

    A disk without room for it answers :class:`core.errors.DiskFull` (507), before writing or when
    the disk fills during the write; no partial zip is left (:func:`core.files.atomic_write`)."""
    if layout not in LAYOUTS:
        raise InvalidInput("invalid_layout", f"Unknown layout {layout!r}: use comfy or diffusers.")
    if modules not in MODULE_SELECTIONS:
        raise InvalidInput("invalid_modules",
                           f"Unknown module selection {modules!r}: use {', '.join(MODULE_SELECTIONS)}.")
    source = _checkpoint_source(run, step, layout)
    name = _zip_name(run, step, layout, modules)
    card = model_card(session, run, step, layout, modules)
    reference = run_reference(run)
    wav = reference.cut.wav_bytes() if reference is not None and reference.cut is not None else None
    header = {reference_export.REFERENCE_INFO_KEY: reference_export.header_note(reference)} if reference else None
    if reference is not None:
        card["reference_voice"] = reference_export.card_entry(reference)
        if wav is not None:
            card["files"].insert(1, reference_export.REFERENCE_WAV_NAME)
    folder = get_settings().data_dir / EXPORT_FOLDER
    ensure_free(folder, source.stat().st_size + len(wav or b""))  # the LoRA file, a short clip, a small card
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.zip"
    lora_name = _lora_file_name(name, layout)

    def write_zip(temp: Path) -> None:
        with zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_STORED) as archive:
            with archive.open(f"{name}/{lora_name}", "w", force_zip64=True) as out:
                write_lora_subset(source, out, modules, header)
            if wav is not None:
                archive.writestr(f"{name}/{reference_export.REFERENCE_WAV_NAME}", wav)
            archive.writestr(f"{name}/README.md", card_markdown(card))
            archive.writestr(f"{name}/model_card.json", json.dumps(card, indent=2, default=str))

    atomic_write(target, write_zip, mode=0o600)  # mkstemp's mode, as before
    return target, f"{name}.zip"
