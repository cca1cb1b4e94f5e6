"""Reuse the cache entries of earlier preprocessings in a new one.

The studio gives every preprocess run a folder of its own (training reads one run's files while
another run is written), so a new run of the same dataset starts with an empty ``.precomputed``.
Its entries are fingerprinted by what shaped them (:mod:`worker.engine.data.cache`): video
latents by the clip's bytes, the bucket and the model; audio latents by the audio's bytes, its
length and the model; text conditions by the caption and the model; a decoded preview by the
fingerprint of its latents. An entry of an earlier run with the fingerprint a new entry needs
has the very content that would be computed, so it is hard-linked into the new run (copied where
the file system refuses links) instead of computed again. Entries are only ever replaced by a
rename, never rewritten in place, so a link shared by two runs cannot change under either.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from core.files import atomic_write
from worker.engine.data import cache


def _link_or_copy(source: Path, temp: Path) -> None:
    """Put ``source``'s bytes at ``temp`` (which :func:`atomic_write` created empty)."""
    temp.unlink()
    try:
        os.link(source, temp)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(source, temp)
        os.chmod(temp, 0o644)


class EarlierEntries:
    """The entries of earlier runs' ``.precomputed`` folders, found by fingerprint.

    ``folders`` are searched newest first; each kind's index is read from the sidecars on first
    use, so a run whose entries are all fresh in its own folder reads nothing here.
    """

    def __init__(self, folders: list[Path]):
        self.folders = [Path(f) for f in folders]
        self._by_kind: dict[str, dict[str, Path]] = {}

    def _index(self, kind: str) -> dict[str, Path]:
        if kind not in self._by_kind:
            found: dict[str, Path] = {}
            for folder in self.folders:
                directory = folder / kind
                for sidecar in sorted(directory.rglob("*" + cache.SIDECAR_SUFFIX)) if directory.is_dir() else []:
                    entry = sidecar.with_name(sidecar.name[: -len(cache.SIDECAR_SUFFIX)])
                    digest = cache.stored_fingerprint(entry)
                    if digest and digest not in found and entry.is_file():
                        found[digest] = entry
            self._by_kind[kind] = found
        return self._by_kind[kind]

    def take(self, kind: str, entry: Path, inputs: dict[str, Any]) -> bool:
        """Place an earlier entry made from ``inputs`` at ``entry`` with its sidecar; False if none.

        The earlier entry's fingerprint is read again once it is linked: an entry being rewritten
        loses its sidecar first, so a match afterwards means the linked bytes are the ones it
        describes.
        """
        expected = cache.fingerprint(inputs)
        source = self._index(kind).get(expected)
        if source is None or source.resolve() == entry.resolve():
            return False
        cache.sidecar_path(entry).unlink(missing_ok=True)
        try:
            atomic_write(entry, lambda temp: _link_or_copy(source, temp), mode=None)
        except FileNotFoundError:  # the earlier run was deleted meanwhile
            return False
        if cache.stored_fingerprint(source) != expected:
            cache.remove_entry(entry)
            return False
        cache.write_sidecar(entry, inputs)
        return True
