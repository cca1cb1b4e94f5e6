"""A real small disk for the full-disk tests: a tmpfs mounted on a folder, then filled.

A tmpfs of a few MiB fails writes exactly as a full disk does (ENOSPC from the kernel, whatever
library writes), which no patched ``open`` can promise. Mounting needs root (or CAP_SYS_ADMIN);
without it these tests fail with that said, rather than pass untested.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

KIB = 1024
MIB = 1024 * KIB


@contextmanager
def small_disk(path: Path, size_mib: int) -> Iterator[Path]:
    """Mount a ``size_mib`` MiB tmpfs on ``path`` (created if needed); unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.fail(f"The full-disk tests need a real small disk: mounting a tmpfs on {path} failed "
                    f"({(mounted.stderr or mounted.stdout).strip()}). Run them as root or with CAP_SYS_ADMIN.")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)  # still open somewhere: detach


def fill_disk(path: Path, leave_bytes: int) -> Path:
    """Take all but about ``leave_bytes`` of the disk holding ``path`` with a filler file; returns it."""
    filler = path / "filler.bin"
    take = shutil.disk_usage(path).free - leave_bytes
    assert take > 0, f"{path} has less than {leave_bytes} bytes free already"
    with open(filler, "wb") as handle:
        os.posix_fallocate(handle.fileno(), 0, take)
    return filler


def files_under(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes (to prove nothing changed or was added)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
