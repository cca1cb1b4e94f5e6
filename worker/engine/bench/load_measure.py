"""What ``avlora bench load`` times and counts (see :mod:`worker.engine.bench.load`): which
safetensors files each component reads (``weight_groups``), the dtypes in the files and after the
load, and the trainer's own load calls, timed per component (``measure_pipeline``,
``measure_text_encoder``) with each component's weights touched once where they are still on the CPU.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from core.model_files_25 import read_safetensors_header
from core.presets import get_preset
from worker.engine.bench.page_cache import PAGE, READ_BUFFER_BYTES, HostMemory, prepare_files, read_sequential
from worker.engine.model.loading import UNUSED_OPTIONAL_COMPONENTS
from worker.engine.step.measure import sync

TEXT_ENCODER = "text_encoder"
WHOLE = "(pipeline)"
ALL_OTHERS = ()  # a group of every component no other group names: one file holding several
SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
                      "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "I64": "int64", "I32": "int32",
                      "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


@dataclass(frozen=True)
class Group:
    """One row: ``components`` (``ALL_OTHERS``: every one no other row names) read from ``files``."""

    name: str
    components: tuple[str, ...]
    files: tuple[Path, ...]


# --- which files each component reads ------------------------------------------------------------


def _diffusers_groups(path: Path) -> tuple[list[Group], Group | None]:
    index = json.loads((Path(path) / "model_index.json").read_text())
    groups, text = [], None
    for name, entry in index.items():
        if name.startswith("_") or not isinstance(entry, list) or entry[0] is None:
            continue
        # what from_pretrained reads without a variant: name.safetensors or its shards, not name.fp16.safetensors
        files = tuple(sorted(p for p in (Path(path) / name).glob("*.safetensors") if p.name.count(".") == 1))
        if name in UNUSED_OPTIONAL_COMPONENTS or not files:
            continue
        if name == TEXT_ENCODER:
            text = Group(TEXT_ENCODER, (TEXT_ENCODER,), files)
        else:
            groups.append(Group(name, (name,), files))
    return groups, text


def weight_groups(preset: str, *, data_dir: Path, model_dir: Path | None = None):
    """``(layout, the trainer's pipeline rows, the text encoder's row)``: the safetensors files
    ``load_pipeline`` and ``load_text_encoder`` read for ``preset`` (the toy is saved first if needed)."""
    from core.model_files import resolve_real_model
    from worker.engine.model.toy_store import ensure_toy_saved

    info = get_preset(preset)
    if info.is_toy:
        return ("diffusers (toy)", *_diffusers_groups(ensure_toy_saved(info, Path(data_dir))))
    location = resolve_real_model(info, Path(model_dir) if model_dir else None)
    if location.kind == "diffusers":
        return ("diffusers", *_diffusers_groups(location.path))
    if location.kind == "split":  # the packed text-encoder file also holds the connectors' text projection
        files = dict(location.files)
        return ("split (one file per component)", [Group("all components", ALL_OTHERS, tuple(files.values()))],
                Group(TEXT_ENCODER, (TEXT_ENCODER,), (files[TEXT_ENCODER],)))
    gemma = tuple(sorted(Path(location.gemma_dir).glob("*.safetensors")))
    return ("single file", [Group(location.path.name, ALL_OTHERS, (location.path,))],
            Group(TEXT_ENCODER, (TEXT_ENCODER,), gemma))


# --- dtypes ---------------------------------------------------------------------------------------


def file_dtypes(files) -> dict[str, int]:
    """Elements per dtype in the safetensors ``files`` (from their headers)."""
    counts: dict[str, int] = {}
    for path in files:
        for key, entry in read_safetensors_header(path).items():
            if key != "__metadata__":
                name = SAFETENSORS_DTYPES.get(entry["dtype"], entry["dtype"].lower())
                counts[name] = counts.get(name, 0) + math.prod(entry["shape"])
    return counts


def loaded_dtypes(modules) -> dict[str, int]:
    """Elements per dtype in the modules' state dicts (what a file holds; shared tensors once)."""
    counts: dict[str, int] = {}
    seen = set()
    for module in modules:
        for tensor in module.state_dict().values():
            key = (tensor.device, tensor.data_ptr(), tensor.numel(), tensor.dtype)
            if key not in seen:
                seen.add(key)
                name = str(tensor.dtype).removeprefix("torch.")
                counts[name] = counts.get(name, 0) + tensor.numel()
    return counts


def converted_elements(in_files: dict[str, int], loaded: dict[str, int]) -> dict[str, int]:
    """Floating-point elements held after the load in a dtype the files did not store them in."""
    return {name: count - in_files.get(name, 0) for name, count in loaded.items()
            if getattr(torch, name).is_floating_point and count > in_files.get(name, 0)}


def conversion_verdict(in_files: dict[str, int], loaded: dict[str, int], requested: set[str]) -> str:
    """``"none"``, ``"as asked (float32 -> bfloat16)"`` (the converted elements are in a dtype the
    load was asked for), or ``"NOT asked (...)"``."""
    converted = converted_elements(in_files, loaded)
    if not converted:
        return "none"
    sources = sorted(name for name, count in in_files.items()
                     if getattr(torch, name, torch.uint8).is_floating_point and count > loaded.get(name, 0))
    pairs = f"{'/'.join(sources) or '?'} -> {'/'.join(sorted(converted))}"
    return f"as asked ({pairs})" if set(converted) <= requested else f"NOT asked ({pairs})"


# --- the calls, timed -----------------------------------------------------------------------------


@contextlib.contextmanager
def _interval(phases: dict, name: str, phase: str, memory: HostMemory, device: str):
    """Add the block's wall time to ``phases[name][phase]`` and its anonymous-memory growth to ``anon``."""
    memory.mark()
    anon = memory.resident().get("anon", 0)
    start = time.perf_counter()
    try:
        yield
    finally:
        sync(device)
        entry = phases.setdefault(name, {})
        entry[phase] = entry.get(phase, 0.0) + time.perf_counter() - start
        grown = memory.resident().get("anon", 0) - anon
        entry["anon"] = entry.get("anon", 0) + grown
        entry[f"anon_{phase}"] = entry.get(f"anon_{phase}", 0) + grown


@contextlib.contextmanager
def _timed_sub_models(phases: dict, memory: HostMemory, device: str):
    """Time each component diffusers' ``from_pretrained`` loads (its ``load_sub_model`` calls)."""
    from diffusers.pipelines import pipeline_utils

    original = pipeline_utils.load_sub_model

    def timed(*args, **kwargs):
        with _interval(phases, kwargs.get("name", "?"), "load", memory, device):
            return original(*args, **kwargs)

    pipeline_utils.load_sub_model = timed
    try:
        yield
    finally:
        pipeline_utils.load_sub_model = original


@contextlib.contextmanager
def _timed_moves(modules: dict, phases: dict, memory: HostMemory, device: str):
    """Time each module's ``.to(...)`` while the trainer's own move function calls it."""
    for name, module in modules.items():
        def timed(*args, _name=name, _to=module.to, **kwargs):
            with _interval(phases, _name, "to_device", memory, device):
                return _to(*args, **kwargs)

        object.__setattr__(module, "to", timed)
    try:
        yield
    finally:
        for module in modules.values():
            module.__dict__.pop("to", None)


def touch(module) -> None:
    """Read one byte of every page of ``module``'s weights still on the CPU (pages of a mapped file
    come from the disk now, as at the first step)."""
    seen = set()
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        if tensor.device.type != "cpu" or tensor.numel() == 0:
            continue
        storage = tensor.untyped_storage()
        start = tensor.storage_offset() * tensor.element_size()
        if (storage.data_ptr(), start) in seen:
            continue
        seen.add((storage.data_ptr(), start))
        raw = torch.empty(0, dtype=torch.uint8).set_(storage)
        stop = min(storage.nbytes(), start + tensor.numel() * tensor.element_size())
        int(raw[start:stop:PAGE].sum()) + int(raw[stop - 1])


def _memory(memory: HostMemory, before: dict, weights: int) -> dict:
    after = memory.resident()
    peak = memory.high() - before.get("rss", 0)
    return {"weights_bytes": weights, "peak_bytes": peak, "peak_over_weights": peak / weights if weights else 0.0,
            "anon_left_bytes": after.get("anon", 0) - before.get("anon", 0),
            "file_mapped_left_bytes": after.get("file", 0) - before.get("file", 0)}


def measure_pipeline(preset: str, device: str, dtype, memory: HostMemory, *, weights: int, data_dir,
                     model_dir) -> tuple[dict, dict, dict]:
    """The trainer's pipeline load, timed per component: ``(phases, the dtypes of each module the
    call returned, memory)``; ``weights``: the files' bytes, the memory's yardstick."""
    from worker.engine.data.prompt_cache import move_pipeline_except_text_encoder
    from worker.engine.model.pipelines import load_pipeline

    phases: dict[str, dict] = {}
    before = memory.begin()
    with _interval(phases, WHOLE, "load", memory, device), _timed_sub_models(phases, memory, device):
        pipe = load_pipeline(preset, data_dir=Path(data_dir), model_dir=model_dir, device="cpu", dtype=dtype,
                             with_text_encoder=False)
    parts = {name: part for name, part in pipe.components.items() if isinstance(part, torch.nn.Module)}
    modules = {name: part for name, part in parts.items() if name != TEXT_ENCODER}  # the trainer moves these
    with _interval(phases, WHOLE, "to_device", memory, device), _timed_moves(modules, phases, memory, device):
        move_pipeline_except_text_encoder(pipe, device)
    with _interval(phases, WHOLE, "touch", memory, device):
        for name, module in modules.items():
            with _interval(phases, name, "touch", memory, device):
                touch(module)
    dtypes = {name: loaded_dtypes([module]) for name, module in parts.items()}
    used = _memory(memory, before, weights)
    del pipe, parts, modules
    gc.collect()
    return phases, dtypes, used


def measure_text_encoder(preset: str, device: str, dtype, memory: HostMemory, *, weights: int, data_dir,
                         model_dir) -> tuple[dict, dict, dict]:
    """The text encoder alone, as prompt encoding loads it: ``(phases, its dtypes, memory)``."""
    from worker.engine.model.pipelines import load_text_encoder

    phases: dict[str, dict] = {}
    before = memory.begin()
    with _interval(phases, TEXT_ENCODER, "load", memory, device):
        encoder = load_text_encoder(preset, data_dir=Path(data_dir), model_dir=model_dir, dtype=dtype)
    with _interval(phases, TEXT_ENCODER, "to_device", memory, device):
        encoder = encoder.to(device)
    with _interval(phases, TEXT_ENCODER, "touch", memory, device):
        touch(encoder)
    dtypes = {TEXT_ENCODER: loaded_dtypes([encoder])}
    used = _memory(memory, before, weights)
    del encoder
    gc.collect()
    return phases, dtypes, used


def read_disk(paths, *, cold: bool) -> tuple[dict[Path, float], dict[Path, float | None]]:
    """Each file's raw sequential read time, and the share of it cached just before."""
    buffer = bytearray(READ_BUFFER_BYTES)
    seconds, cached = {}, {}
    for path in paths:
        cached.update(prepare_files([path], cold=cold))
        seconds[path] = read_sequential(path, buffer)
    return seconds, cached
