"""Write files under a temporary name and rename them into place, so no reader ever sees half a file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from core.disk import guard_write

TEMP_SUFFIX = ".tmp"


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], *, mode: int | None = 0o644,
                 overwrite: bool = True) -> Path:
    """Call ``write(tmp_path)`` and rename the temporary file to ``path``.

    The temporary file (``.<name>.<random>.tmp``, created empty with mode 0600) lives in the same
    directory, so the rename is atomic on POSIX, and is removed if anything raises; a failure on a
    full disk, whatever the writer raised (torch's ``RuntimeError`` included), becomes
    :class:`core.errors.DiskFull` (see :func:`core.disk.guard_write`). Before the
    rename it gets ``mode`` (0644 by default: artifacts are shared with the web process); ``None``
    leaves the mode as ``write`` left it (a ``write`` that hard-links must not chmod the source).
    With ``overwrite=False`` an existing ``path`` is kept: the file is linked into place only if
    nothing is there yet, so two processes racing to create it agree on one content.
    Returns the final path.
    """
    final = Path(path)
    with guard_write(at=final.parent):
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=TEMP_SUFFIX, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    with guard_write(tmp):
        write(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        if overwrite:
            os.replace(tmp, final)
        else:
            try:
                os.link(tmp, final)
            except FileExistsError:
                pass  # another writer won the race; keep its file
            tmp.unlink()
    return final


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8", mode: int | None = 0o644,
                      overwrite: bool = True) -> Path:
    """:func:`atomic_write` of ``text`` (no newline translation)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding=encoding, newline=""),
                        mode=mode, overwrite=overwrite)


def is_temporary(path: str | os.PathLike) -> bool:
    """True for a temporary name :func:`atomic_write` uses (a leftover after a crash)."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)
