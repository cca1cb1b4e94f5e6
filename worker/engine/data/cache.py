"""Fingerprinted cache entries for the ``.precomputed`` layout.

Every entry ``<kind>/<name>.pt`` has a sidecar ``<kind>/<name>.pt.json`` holding the fingerprint
of the inputs that shaped it (``{"fingerprint": ..., "inputs": {...}}``). An entry is reused only
when both files exist and the stored fingerprint equals the one the current inputs give, so a
changed model, bucket, trigger, caption, clip or audio setting recomputes exactly the entries it
affects. The official trainer globs ``*.pt`` only, so the sidecars do not disturb it.

Writes are atomic: the old sidecar is removed first, the payload is written to a temporary name
and renamed, then the new sidecar is written the same way. A crash at any point leaves either a
complete entry or one without a matching sidecar, which is recomputed. A full disk stops the
write with :class:`core.errors.DiskFull`, whatever torch raised, and leaves no temporary file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.disk import ensure_free, payload_bytes
from core.files import atomic_write, atomic_write_text, is_temporary

SIDECAR_SUFFIX = ".json"
HASH_BLOCK = 1 << 20


def fingerprint(inputs: dict[str, Any]) -> str:
    """A sha256 hex digest of ``inputs`` as canonical JSON (sorted keys)."""
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of a file's bytes."""
    hasher = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(HASH_BLOCK), b""):
            hasher.update(block)
    return hasher.hexdigest()


def sidecar_path(entry: Path) -> Path:
    """Where ``entry``'s fingerprint is stored."""
    return entry.with_name(entry.name + SIDECAR_SUFFIX)


def stored_fingerprint(entry: Path) -> str | None:
    """The fingerprint recorded beside ``entry``, or ``None`` when absent or unreadable."""
    try:
        return json.loads(sidecar_path(entry).read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def is_fresh(entry: Path, expected: str) -> bool:
    """True when ``entry`` exists and was made from inputs with fingerprint ``expected``."""
    return entry.is_file() and stored_fingerprint(entry) == expected


def write_entry(entry: Path, write_payload: Callable[[Path], None], inputs: dict[str, Any]) -> str:
    """Write ``entry`` with ``write_payload(temp_path)`` and record ``inputs``' fingerprint beside it."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    sidecar = sidecar_path(entry)
    sidecar.unlink(missing_ok=True)
    atomic_write(entry, write_payload)
    return write_sidecar(entry, inputs)


def write_sidecar(entry: Path, inputs: dict[str, Any]) -> str:
    """Record ``inputs``' fingerprint beside an entry whose payload is complete; returns it."""
    digest = fingerprint(inputs)
    record = json.dumps({"fingerprint": digest, "inputs": inputs}, sort_keys=True, indent=1, default=str)
    atomic_write_text(sidecar_path(entry), record)
    return digest


def save_tensors(entry: Path, payload: dict[str, Any], inputs: dict[str, Any]) -> str:
    """``torch.save`` ``payload`` (tensors and plain values only) as a fingerprinted entry.

    The disk is checked for room first: a full one raises :class:`core.errors.DiskFull` before
    the old sidecar is dropped, and a write it stops leaves no temporary file either."""
    import torch

    ensure_free(entry.parent, payload_bytes(payload))
    return write_entry(entry, lambda temp: torch.save(payload, temp), inputs)


def remove_entry(entry: Path) -> None:
    """Delete an entry and its sidecar."""
    entry.unlink(missing_ok=True)
    sidecar_path(entry).unlink(missing_ok=True)


def prune(directory: Path, keep: set[Path], suffixes: tuple[str, ...]) -> list[Path]:
    """Remove entries under ``directory`` with one of ``suffixes`` that are not in ``keep``.

    Sidecars and leftover temporary files go with them. Returns the removed entries.
    """
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    keep_resolved = {p.resolve() for p in keep}
    for path in sorted(directory.rglob("*")):
        if not path.is_file():
            continue
        if is_temporary(path) or (path.name.startswith(".") and ".tmp." in path.name):  # older temp names too
            path.unlink(missing_ok=True)
            continue
        if path.name.endswith(SIDECAR_SUFFIX):
            base = path.with_name(path.name[: -len(SIDECAR_SUFFIX)])
            if base.suffix in suffixes and not base.exists():
                path.unlink(missing_ok=True)
            continue
        if path.suffix in suffixes and path.resolve() not in keep_resolved:
            remove_entry(path)
            removed.append(path)
    return removed
