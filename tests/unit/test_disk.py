"""core.disk and core.files on a real full disk (a small tmpfs): the condition is named, in the
words a person can act on, and no temporary or partial file is left."""

from __future__ import annotations

import re

import numpy as np
import pytest

from core.disk import ensure_free, guard_write
from core.errors import DiskFull
from core.files import atomic_write, atomic_write_text
from core.media.images import write_spectrogram
from tests.disk_support import KIB, MIB, fill_disk, small_disk

MESSAGE = re.compile(r"^the disk holding DATA_DIR is full: (\d+) MiB free$")


@pytest.fixture
def disk(tmp_path):
    """An 8 MiB disk of its own."""
    with small_disk(tmp_path / "disk", 8) as root:
        yield root


def test_atomic_write_on_a_full_disk_says_so_and_leaves_no_temporary(disk):
    target = disk / "clips" / "report.json"
    atomic_write_text(target, "the old report")
    fill_disk(disk, leave_bytes=256 * KIB)

    with pytest.raises(DiskFull) as caught:
        atomic_write(target, lambda tmp: tmp.write_bytes(b"x" * MIB))
    assert MESSAGE.match(caught.value.message), caught.value.message
    assert caught.value.body()["error"]["code"] == "disk_full" and caught.value.status == 507
    assert target.read_text() == "the old report"
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]


def test_a_probe_image_on_a_full_disk_says_so_and_leaves_no_temporary(disk):
    media = disk / "media" / "1"
    media.mkdir(parents=True)
    noise = np.random.default_rng(0).uniform(-1, 1, 16000 * 30)
    fill_disk(disk, leave_bytes=32 * KIB)

    with pytest.raises(DiskFull):
        write_spectrogram(noise, 16000, media / "spectrogram.png", width=2000, height=800)
    assert list(media.iterdir()) == []


def test_ensure_free_refuses_a_large_write_with_the_free_space_in_mib(disk):
    fill_disk(disk, leave_bytes=3 * MIB + 100 * KIB)
    with pytest.raises(DiskFull) as caught:
        ensure_free(disk, 1 * MIB)
    assert caught.value.message == "the disk holding DATA_DIR is full: 3 MiB free"
    assert caught.value.detail["need_bytes"] == MIB
    ensure_free(disk, 1 * MIB, margin=0)  # what does fit is not refused


def test_other_failures_on_a_roomy_disk_stay_what_they_are(tmp_path):
    partial = tmp_path / "half.bin"
    with pytest.raises(ValueError, match="bad frame"), guard_write(partial):
        partial.write_bytes(b"half")
        raise ValueError("bad frame")
    assert not partial.exists()
