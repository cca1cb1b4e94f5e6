"""Benchmark loading a model from local files against the disk's speed: ``avlora bench load``.

``bench_load(LoadBenchSpec(preset="ltx-2.3", device="cuda"), data_dir=..., model_dir=...)`` makes, in
each repeat, the calls a training run makes, on the same files:

1. the disk: every safetensors file read once start to end (``page_cache.read_sequential``);
2. the trainer's pipeline (``Trainer._load_pipeline``): ``load_pipeline(preset, device="cpu",
   dtype=..., with_text_encoder=False)``, then ``move_pipeline_except_text_encoder(pipe, device)``;
3. the text encoder alone, as prompt encoding loads it for text not encoded before:
   ``load_text_encoder(preset, dtype=...).to(device)``;

then each component's weights touched once, one byte per page, where they are still on the CPU:
safetensors maps the files, so a CPU load reads its pages at first use, not in the call; the
touch makes the time the time to usable weights (on a GPU the move to the device reads them).

Per component (a row: the files of one component, or one file holding several): the bytes (the
files' sizes), the wall time of each phase (load, to device, touch) and in all, GB/s, the disk's
sequential GB/s on the same files and the share of it the load reached; the anonymous host memory
the load left (a copy of the weights in host memory; 0 when they stay mapped from the files);
the dtypes in the files and after the load, and the elements converted (whether the dtype asked for
explains them). Per measurement, the peak resident host memory against the weights' bytes.

``cold`` (the default): before each measurement every file is dropped from the page cache
(``posix_fadvise(POSIX_FADV_DONTNEED)``) and the share still cached is checked (``mincore``); a
file the kernel keeps (pages mapped by a process, a file system that ignores the advice) is
reported as cached, never silently. Times and rates are medians over the repeats; memory and
dtypes come from the last repeat.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from worker.engine.bench.load_measure import (
    ALL_OTHERS,
    TEXT_ENCODER,
    WHOLE,
    Group,
    conversion_verdict,
    converted_elements,
    file_dtypes,
)
from worker.engine.bench.page_cache import share_cached

GB = 1e9
DTYPES = ("bfloat16", "float16", "float32")
# host memory a load's Python objects and allocator take beside the weights: below it, no copy is named
NOISE_BYTES = 16 * 1024 * 1024


@dataclass
class LoadBenchSpec:
    """What ``avlora bench load`` measures."""

    preset: str = "ltx-2.3"
    device: str | None = None  # default: cuda when available
    dtype: str | None = None  # default: the trainer's (bfloat16 on a GPU, float32 on the CPU)
    repeats: int = 1
    cold: bool = True  # drop the files from the page cache before each measurement


@dataclass
class LoadRow:
    """One component's (or one file's) load; times are medians over the repeats."""

    name: str
    components: list[str]
    files: list[str]
    bytes: int
    load_s: float
    to_device_s: float
    touch_s: float
    total_s: float
    gb_per_s: float
    disk_s: float
    disk_gb_per_s: float
    share_of_disk_speed: float
    cached_before_disk: float | None
    cached_before_load: float | None
    anon_bytes: int
    file_dtypes: dict[str, int]
    loaded_dtypes: dict[str, int]
    converted: dict[str, int]
    conversion: str


@dataclass
class LoadBenchResult:
    """``avlora bench load``'s result (JSON-ready through :meth:`to_dict`)."""

    preset: str
    layout: str
    device: str
    dtype: str
    repeats: int
    cache: str
    host_memory_method: str
    loaded_components: list[str]  # the modules the trainer's load call returned
    components: list[LoadRow]
    pipeline: LoadRow
    pipeline_other_s: float
    text_encoder: LoadRow | None
    memory: dict[str, dict]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


# --- rows -----------------------------------------------------------------------------------------


def _members(group: Group, groups: list[Group], names) -> list[str]:
    if group.components != ALL_OTHERS:
        return [name for name in group.components if name in names]
    named = {name for other in groups for name in other.components}
    return [name for name in names if name not in named]


def _row(group: Group, members: list[str], run: dict, requested: set[str]) -> LoadRow:
    phases, dtypes, disk = run["phases"], run["dtypes"], run["disk"]
    size = sum(p.stat().st_size for p in group.files)
    own_load = [phases[m]["load"] for m in members if "load" in phases.get(m, {})]
    # a layout that loads every component in one pass (one file for several): that pass is the row's load
    load_s = sum(own_load) if own_load else phases[WHOLE]["load"]
    anon = sum(phases.get(m, {}).get("anon", 0) for m in members) + (0 if own_load else phases[WHOLE]["anon_load"])
    to_device_s = sum(phases.get(m, {}).get("to_device", 0.0) for m in members)
    touch_s = sum(phases.get(m, {}).get("touch", 0.0) for m in members)
    total = load_s + to_device_s + touch_s
    disk_s = sum(disk[p] for p in group.files)
    in_files = file_dtypes(group.files)
    loaded: dict[str, int] = {}
    for member in members:
        for name, count in dtypes.get(member, {}).items():
            loaded[name] = loaded.get(name, 0) + count
    rate, disk_rate = size / total / GB if total else 0.0, size / disk_s / GB if disk_s else 0.0
    return LoadRow(
        name=group.name, components=members, files=[str(p) for p in group.files], bytes=size, load_s=load_s,
        to_device_s=to_device_s, touch_s=touch_s, total_s=total, gb_per_s=rate, disk_s=disk_s,
        disk_gb_per_s=disk_rate, share_of_disk_speed=rate / disk_rate if disk_rate else 0.0,
        cached_before_disk=share_cached({p: run["cached_disk"][p] for p in group.files}),
        cached_before_load=share_cached({p: run["cached"][p] for p in group.files}),
        anon_bytes=anon, file_dtypes=in_files, loaded_dtypes=loaded, converted=converted_elements(in_files, loaded),
        conversion=conversion_verdict(in_files, loaded, requested),
    )


def _median_row(rows: list[LoadRow]) -> LoadRow:
    """The last repeat's row, its times and rates the medians over the repeats."""
    last = asdict(rows[-1])
    for key in ("load_s", "to_device_s", "touch_s", "total_s", "gb_per_s", "disk_s", "disk_gb_per_s",
                "share_of_disk_speed"):
        last[key] = statistics.median(getattr(row, key) for row in rows)
    return LoadRow(**last)


# --- the bench ------------------------------------------------------------------------------------


def _import_model_classes(version: str) -> None:
    """Import the classes a load builds, so that no row's time holds a first import."""
    import diffusers
    import transformers

    from worker.engine.model.single_file import component_classes

    component_classes(version)
    diffusers.LTX2Pipeline  # noqa: B018 (diffusers imports its classes on first access)
    for name in ("Gemma3ForConditionalGeneration", "Gemma4UnifiedForConditionalGeneration"):
        getattr(transformers, name, None)


def _unique(paths) -> list[Path]:
    return list(dict.fromkeys(paths))


def _one_repeat(spec: LoadBenchSpec, device: str, dtype, groups: list[Group], text: Group | None, memory, *,
                data_dir, model_dir) -> dict:
    """One repeat: the disk first, then the trainer's pipeline, then the text encoder alone."""
    from worker.engine.bench.load_measure import measure_pipeline, measure_text_encoder, read_disk
    from worker.engine.bench.page_cache import prepare_files

    pipeline_files = _unique(p for group in groups for p in group.files)
    disk, cached_disk = read_disk(_unique([*pipeline_files, *(text.files if text else ())]), cold=spec.cold)
    size = sum(p.stat().st_size for p in pipeline_files)
    cached = prepare_files(pipeline_files, cold=spec.cold)
    phases, dtypes, used = measure_pipeline(spec.preset, device, dtype, memory, weights=size, data_dir=data_dir,
                                            model_dir=model_dir)
    merged: dict[str, int] = {}
    for counts in dtypes.values():
        for name, count in counts.items():
            merged[name] = merged.get(name, 0) + count
    dtypes[WHOLE] = merged
    out = {"pipeline": {"phases": phases, "dtypes": dtypes, "disk": disk, "cached_disk": cached_disk,
                        "cached": cached}, "memory": {"pipeline": used}}
    if text is not None:
        cached = prepare_files(list(text.files), cold=spec.cold)
        phases, dtypes, used = measure_text_encoder(
            spec.preset, device, dtype, memory, weights=sum(p.stat().st_size for p in text.files),
            data_dir=data_dir, model_dir=model_dir)
        out["text"] = {"phases": phases, "dtypes": dtypes, "disk": disk, "cached_disk": cached_disk, "cached": cached}
        out["memory"]["text_encoder"] = used
    return out


def _requested(members, dtype) -> set[str]:
    from worker.engine.model.loading import component_dtypes

    dtypes = component_dtypes(dtype)
    wanted = set(dtypes.values()) if WHOLE in members else {dtypes.get(m, dtype) for m in members}
    return {str(d).removeprefix("torch.") for d in wanted}


def _rows(run: dict, groups: list[Group], text: Group | None, dtype):
    """``(component rows, the whole pipeline's row, its unattributed load seconds, the text encoder's row)``."""
    pipeline = run["pipeline"]
    names = [name for name in pipeline["dtypes"] if name != WHOLE]
    rows = []
    for group in groups:
        members = _members(group, groups, names)
        rows.append(_row(group, members, pipeline, _requested(members, dtype)))
    files = tuple(_unique(p for group in groups for p in group.files))
    whole = _row(Group("pipeline (all components)", (WHOLE,), files), [WHOLE], pipeline, _requested([WHOLE], dtype))
    own = [pipeline["phases"][n]["load"] for n in names if "load" in pipeline["phases"].get(n, {})]
    other = pipeline["phases"][WHOLE]["load"] - sum(own) if own else 0.0
    text_row = _row(text, [TEXT_ENCODER], run["text"], _requested([TEXT_ENCODER], dtype)) if text else None
    return rows, whole, other, text_row


def bench_load(spec: LoadBenchSpec, *, data_dir, model_dir=None) -> LoadBenchResult:
    """Measure loading ``spec.preset``'s weights (see the module docstring)."""
    import torch

    from core.presets import get_preset
    from worker.engine.bench.load_measure import weight_groups
    from worker.engine.bench.page_cache import HostMemory
    from worker.engine.model.loading import default_device, default_dtype

    if spec.repeats < 1:
        raise ValueError("--repeats must be at least 1")
    if spec.dtype is not None and spec.dtype not in DTYPES:
        raise ValueError(f"--dtype {spec.dtype}: one of {', '.join(DTYPES)}")
    device = spec.device or default_device()
    dtype = getattr(torch, spec.dtype) if spec.dtype else default_dtype(device)
    model_dir = Path(model_dir) if model_dir else None
    layout, groups, text = weight_groups(spec.preset, data_dir=Path(data_dir), model_dir=model_dir)
    _import_model_classes(get_preset(spec.preset).version)
    memory = HostMemory()
    runs = [_one_repeat(spec, device, dtype, groups, text, memory, data_dir=data_dir, model_dir=model_dir)
            for _ in range(spec.repeats)]
    each = [_rows(run, groups, text, dtype) for run in runs]
    rows = [_median_row([parts[0][i] for parts in each]) for i in range(len(groups))]
    whole = _median_row([parts[1] for parts in each])
    text_row = _median_row([parts[3] for parts in each]) if text else None
    result = LoadBenchResult(
        preset=spec.preset, layout=layout, device=device, dtype=str(dtype).removeprefix("torch."),
        repeats=spec.repeats, cache=_cache_label(spec, [whole, *([text_row] if text_row else [])]),
        host_memory_method=memory.method, components=rows, pipeline=whole,
        loaded_components=[name for name in runs[-1]["pipeline"]["dtypes"] if name != WHOLE],
        pipeline_other_s=statistics.median(parts[2] for parts in each), text_encoder=text_row,
        memory=runs[-1]["memory"],
    )
    result.notes = load_notes(result)
    return result


def _cache_label(spec: LoadBenchSpec, rows: list[LoadRow]) -> str:
    from worker.engine.bench.page_cache import cache_state

    def worst(values):
        known = [v for v in values if v is not None]
        return max(known) if known and len(known) == len(values) else None

    disk, load = worst([r.cached_before_disk for r in rows]), worst([r.cached_before_load for r in rows])
    asked = "each file dropped from the page cache before each measurement" if spec.cold else "page cache kept (--warm)"
    return (f"{asked}; before the disk reads: {cache_state(disk)}, before the loads: {cache_state(load)} "
            "(the most cached share of any row, checked with mincore)")


def load_notes(result: LoadBenchResult) -> list[str]:
    """What the numbers say about needless work: dtype passes, copies in host memory, cached files."""
    rows = [*result.components, *([result.text_encoder] if result.text_encoder else [])]
    notes = []
    for row in rows:
        count = sum(row.converted.values())
        if count:
            why = "not asked for by --dtype" if row.conversion.startswith("NOT") else "as --dtype asks"
            notes.append(f"{row.name}: {count / 1e6:.3g} M elements converted after reading, "
                         f"{row.conversion.split('(', 1)[-1].rstrip(')')} ({why})")
        if row.bytes and row.anon_bytes > 1.5 * row.bytes + NOISE_BYTES:
            notes.append(f"{row.name}: the load left {row.anon_bytes / row.bytes:.1f}x its files' bytes in "
                         "anonymous host memory: more than one copy of the weights")
        if row.cached_before_load is not None and row.cached_before_load > 0.05 and "dropped" in result.cache:
            notes.append(f"{row.name}: {row.cached_before_load:.0%} of its files stayed in the page cache after "
                         "the drop (mapped by a process, or a file system that ignores the advice)")
    for name, used in result.memory.items():
        if used["weights_bytes"] and used["peak_bytes"] > 2 * used["weights_bytes"] + NOISE_BYTES:
            notes.append(f"{name}: host memory peaked at {used['peak_over_weights']:.1f}x the weights' bytes")
    if result.layout.startswith("split"):
        notes.append("the pipeline load opens the packed text-encoder file (for the connectors' text projection) "
                     "and builds Gemma from it before dropping it; that file's bytes are in the pipeline's row")
    return notes


def _row_line(label: str, row: dict) -> str:
    cached = "?" if row["cached_before_load"] is None else f"{row['cached_before_load']:.0%}"
    return (f"{label:<28} {row['bytes'] / 1e6:>10.2f} {row['load_s']:>8.3f} {row['to_device_s']:>9.3f} "
            f"{row['touch_s']:>8.3f} {row['total_s']:>8.3f} {row['gb_per_s']:>7.3f} {row['disk_gb_per_s']:>7.3f} "
            f"{row['share_of_disk_speed']:>6.0%} {cached:>6} {row['anon_bytes'] / 1e6:>8.2f}  {row['conversion']}")


def load_table(result: dict) -> str:
    """``avlora bench load``'s result as a table, then host memory and the notes."""
    lines = [
        f"{result['preset']} ({result['layout']}) on {result['device']} in {result['dtype']}, "
        f"{result['repeats']} repeat(s), medians; page cache: {result['cache']}",
        f"{'component':<28} {'MB':>10} {'load s':>8} {'device s':>9} {'touch s':>8} {'total s':>8} {'GB/s':>7} "
        f"{'disk':>7} {'of dsk':>6} {'cached':>6} {'anon MB':>8}  dtype pass",
    ]
    lines += [_row_line(row["name"], row) for row in result["components"]]
    lines.append(_row_line("pipeline (trainer's load)", result["pipeline"]))
    lines.append(f"  of which configs, tokenizer, scheduler and pipeline set-up: {result['pipeline_other_s']:.3f} s")
    if result["text_encoder"]:
        lines.append(_row_line("text encoder alone", result["text_encoder"]))
    for name, used in result["memory"].items():
        lines.append(f"host memory, {name}: peak +{used['peak_bytes'] / 1e6:.1f} MB "
                     f"({used['peak_over_weights']:.2f}x the weights), left anonymous "
                     f"{used['anon_left_bytes'] / 1e6:+.1f} MB, mapped files {used['file_mapped_left_bytes'] / 1e6:+.1f} MB"
                     f" ({result['host_memory_method']})")
    lines += [f"note: {note}" for note in result["notes"]] or ["note: no dtype pass, copy or cached file seen"]
    return "\n".join(lines)


def run_load_command(args) -> int:
    """Handle ``avlora bench load``; returns the exit status (2 for bad arguments or missing files)."""
    import json
    import sys

    from core.config import Settings
    from core.model_files import ModelFilesMissing
    from core.presets import UnknownPreset, get_preset

    settings = Settings()
    model_dir = args.model_dir or settings.model_dir
    try:
        if not get_preset(args.preset).is_toy and not model_dir:
            raise ValueError(f"--preset {args.preset} needs MODEL_DIR (or --model-dir) with its weights")
        spec = LoadBenchSpec(preset=args.preset, device=args.device, dtype=args.dtype, repeats=args.repeats,
                             cold=not args.warm)
        result = bench_load(spec, data_dir=args.data_dir or settings.data_dir, model_dir=model_dir)
    except (ValueError, UnknownPreset, ModelFilesMissing, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=2) if args.json else load_table(result.to_dict()))
    return 0
