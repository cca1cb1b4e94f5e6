"""core.files: a file is written whole under a temporary name and renamed, or not at all."""

from __future__ import annotations

import stat

import pytest

from core.files import atomic_write, atomic_write_text, is_temporary


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_writes_the_file_shared_readable_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "report.json"
    assert atomic_write_text(target, '{"a": 1}\r\n') == target
    assert target.read_bytes() == b'{"a": 1}\r\n'  # no newline translation
    assert _mode(target) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]


def test_a_failing_writer_leaves_no_file_and_no_temporary(tmp_path):
    target = tmp_path / "clip.png"

    def half_then_fail(tmp):
        tmp.write_bytes(b"half a fi")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert list(tmp_path.iterdir()) == []

    def interrupted(tmp):
        tmp.write_bytes(b"new")
        raise KeyboardInterrupt

    target.write_bytes(b"the old file")
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, interrupted)
    assert target.read_bytes() == b"the old file"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.png"]


def test_a_reader_sees_the_old_file_or_the_new_one_never_a_partial_one(tmp_path):
    target = tmp_path / "metadata.jsonl"
    target.write_text("old complete\n")
    seen: list[str] = []
    temporary: list = []

    def slow_writer(tmp):
        temporary.append(tmp)
        with tmp.open("w") as handle:
            for line in ("one\n", "two\n", "three\n"):
                handle.write(line)
                handle.flush()
                seen.append(target.read_text())  # what a reader opening the real name gets meanwhile

    atomic_write(target, slow_writer)
    assert seen == ["old complete\n"] * 3
    assert target.read_text() == "one\ntwo\nthree\n"
    assert temporary[0].parent == tmp_path and is_temporary(temporary[0]) and not temporary[0].exists()
    assert not is_temporary(target)


def test_mode_can_be_kept_private_or_left_as_written(tmp_path):
    private = atomic_write_text(tmp_path / "secret", "x", mode=0o600)
    assert _mode(private) == 0o600

    def write_0640(tmp):
        tmp.write_text("y")
        tmp.chmod(0o640)

    assert _mode(atomic_write(tmp_path / "as_written", write_0640, mode=None)) == 0o640


def test_without_overwrite_the_first_file_wins(tmp_path):
    target = tmp_path / "api_token"
    atomic_write_text(target, "first\n", mode=0o600, overwrite=False)
    atomic_write_text(target, "second\n", mode=0o600, overwrite=False)
    assert target.read_text() == "first\n" and _mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["api_token"]
