"""A full disk named as such: free space checked before a large write, any failure caught after.

Every library says "disk full" in its own words, or not at all: ``OSError(ENOSPC)`` from Python's
files, ``RuntimeError("... file write failed")`` from torch's zip writer, a ``SafetensorError``
holding "No space left on device", an FFmpeg error from PyAV, ``LibsndfileError`` from soundfile.
:func:`guard_write` turns each of them into :class:`~core.errors.DiskFull` ("the disk holding
DATA_DIR is full: N MiB free", 507) and removes what was being written, so a person reads the one
thing that matters and no partial file stays behind. :func:`ensure_free` refuses a large write up
front, before anything is written (the previous checkpoint, the other clips are never touched).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

from core.errors import MIB, DiskFull

# Room a large write must leave: the database, job logs and small files still need a little.
WRITE_MARGIN_BYTES = 16 * MIB
# A write that fails with less than this free failed because of the disk, whatever was raised:
# a writer stopped by a full disk has filled it to the last block.
NEARLY_FULL_BYTES = 4 * MIB
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_FULL_WORDS = ("no space left on device", "disk quota exceeded", "storagefull", "database or disk is full")


def free_bytes(path: str | os.PathLike) -> int:
    """Bytes free to an ordinary writer on the filesystem holding ``path`` (or the folder that will)."""
    target = Path(path)
    while not target.exists() and target != target.parent:
        target = target.parent
    return shutil.disk_usage(target).free


def disk_full_at(path: str | os.PathLike, need_bytes: int | None = None) -> DiskFull:
    """A :class:`DiskFull` with the free space of ``path``'s filesystem measured now."""
    return DiskFull(free_bytes(path), need_bytes)


def ensure_free(path: str | os.PathLike, need_bytes: int, margin: int = WRITE_MARGIN_BYTES) -> None:
    """Raise :class:`DiskFull` unless ``need_bytes`` plus ``margin`` fit where ``path`` is written.

    Called before a large write, so a write that cannot fit never starts (and never half-ends)."""
    free = free_bytes(path)
    if free < need_bytes + margin:
        raise DiskFull(free, need_bytes)


def payload_bytes(payload: object) -> int:
    """The bytes of every array in ``payload`` (tensors, numpy arrays, nested in dicts, lists, tuples).

    Duck-typed on ``nbytes`` so the web process can use it without torch."""
    if isinstance(payload, Mapping):
        return sum(payload_bytes(value) for value in payload.values())
    if isinstance(payload, (list, tuple)):
        return sum(payload_bytes(value) for value in payload)
    nbytes = getattr(payload, "nbytes", None)
    return nbytes if isinstance(nbytes, int) else 0


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes (``raise ... from``, or raised while handling), each once."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def is_disk_full(exc: BaseException, path: str | os.PathLike) -> bool:
    """True when ``exc``, raised while writing under ``path``, means the disk is full.

    Said by the error (errno ENOSPC/EDQUOT, or those words, anywhere in its causes) or, whatever
    was raised, by the disk itself: almost nothing free right after the failure, measured before
    the partial file is removed. An interrupt or a cancel is never a full disk."""
    if isinstance(exc, DiskFull):
        return True
    if not isinstance(exc, Exception):
        return False
    for link in _chain(exc):
        if getattr(link, "errno", None) in _FULL_ERRNOS:
            return True
        if any(words in str(link).lower() for words in _FULL_WORDS):
            return True
    try:
        return free_bytes(path) < NEARLY_FULL_BYTES
    except OSError:
        return False


def remove_partial(path: str | os.PathLike) -> None:
    """Delete a half-written file or folder; a failure to delete must not hide the write's error."""
    path = Path(path)
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def guard_write(*partial: str | os.PathLike, at: str | os.PathLike | None = None) -> Iterator[None]:
    """Run a write; if it fails, remove ``partial`` (files or folders) and name a full disk.

    The error is re-raised as it was, unless the disk is full (:func:`is_disk_full`): then it
    becomes :class:`DiskFull`, with the free space measured after the partial files are gone.
    ``at`` is where the disk is measured (default: the first of ``partial``)."""
    where = at if at is not None else partial[0]
    try:
        yield
    except BaseException as exc:
        full = not isinstance(exc, DiskFull) and is_disk_full(exc, where)
        for path in partial:
            remove_partial(path)
        if full:
            raise disk_full_at(where) from exc
        raise
