"""Official dataset metadata files: read, write, errors."""

import json

import pytest

from core.recipe.metadata import MetadataEntry, MetadataError, read_metadata, write_metadata

ENTRIES = [
    MetadataEntry(caption='ema, a woman says "hi", softly', video="clips/a.mp4"),
    MetadataEntry(caption="ema, a man speaks", video="clips/b c.mp4", audio="audio/b.wav"),
]


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl"])
@pytest.mark.parametrize("column", ["media_path", "video"])
def test_write_then_read_round_trip(tmp_path, suffix, column):
    path = write_metadata(tmp_path / f"dataset{suffix}", ENTRIES, video_column=column)
    entries = read_metadata(path)
    assert entries == ENTRIES
    assert entries[1].video_path(path.parent) == tmp_path / "clips" / "b c.mp4"
    assert entries[0].audio_path(path.parent) is None
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_written_json_uses_the_official_column_names(tmp_path):
    path = write_metadata(tmp_path / "dataset.json", ENTRIES[:1])
    assert json.loads(path.read_text()) == [{"caption": ENTRIES[0].caption, "media_path": "clips/a.mp4"}]


def test_absolute_paths_inside_the_folder_become_relative(tmp_path):
    entry = MetadataEntry(caption="c", video=str(tmp_path / "clips" / "a.mp4"))
    path = write_metadata(tmp_path / "dataset.jsonl", [entry], video_column="video")
    assert json.loads(path.read_text()) == {"caption": "c", "video": "clips/a.mp4"}


def test_reads_official_csv_with_extra_columns(tmp_path):
    path = tmp_path / "dataset.csv"
    path.write_text("caption,media_path,notes\n\"x, y\",v/1.mp4,hello\n\n")
    [entry] = read_metadata(path)
    assert (entry.caption, entry.video, entry.extra) == ("x, y", "v/1.mp4", {"notes": "hello"})


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("d.jsonl", '{"caption": "a", "video": "a.mp4"}\n{oops\n', "line 2: invalid JSON"),
        ("d.jsonl", '{"text": "a", "video": "a.mp4"}\n', "no 'caption' column"),
        ("d.json", '{"caption": "a"}', "list of objects"),
        ("d.json", '[{"caption": "a", "file": "a.mp4"}]', "no media column"),
        ("d.json", '[{"caption": "a", "video": "a.mp4"}, {"caption": "", "video": "b.mp4"}]',
         "item 2: the caption is empty"),
        ("d.json", '[{"caption": "a", "video": ""}]', "item 1: 'video' is empty"),
        ("d.json", '[{"caption": 3, "video": "a.mp4"}]', "must be text"),
        ("d.json", '[{"caption": "a", "video": "a", "media_path": "b"}]', "both 'video' and 'media_path'"),
        ("d.csv", "caption,video\na,b.mp4,extra\n", "line 2: more values than columns"),
        ("d.csv", "caption,video\n", "no rows"),
        ("d.txt", "x", ".csv, .json or .jsonl"),
    ],
)
def test_bad_files_name_the_row_and_problem(tmp_path, name, content, fragment):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(MetadataError, match=fragment.replace("(", r"\(")) as info:
        read_metadata(path)
    assert name in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(MetadataError, match="not found"):
        read_metadata(tmp_path / "nope.jsonl")


def test_empty_captions_can_be_allowed_for_import(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"caption": "", "video": "a.mp4"}\n')
    assert read_metadata(path, allow_empty_captions=True)[0].caption == ""


def test_writing_an_entry_without_media_is_refused_and_leaves_no_file(tmp_path):
    with pytest.raises(MetadataError, match="entry 1"):
        write_metadata(tmp_path / "d.jsonl", [MetadataEntry(caption="c", video=None)])
    assert list(tmp_path.iterdir()) == []


def test_audio_only_rows_are_read(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"caption": "a voice", "audio": "a.wav"}\n')
    [entry] = read_metadata(path)
    assert (entry.video, entry.audio) == (None, "a.wav")
