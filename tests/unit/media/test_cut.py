"""Cutting a part out of a clip: exact frame count, sound in sync and untouched, no partial file."""

import av
import numpy as np
import pytest

from core.media.cut import CutError, cut_part
from tests.media_factory import ClipSpec, write_clip


def _decode(path):
    with av.open(str(path)) as f:
        frames = [fr.to_ndarray(format="gray") for fr in f.decode(f.streams.video[0])]
    with av.open(str(path)) as f:
        chunks = [fr.to_ndarray() if fr.format.is_planar else fr.to_ndarray().reshape(-1, len(fr.layout.channels)).T
                  for fr in f.decode(f.streams.audio[0])]
        rate = f.streams.audio[0].rate
        layout = f.streams.audio[0].layout.name
    audio = np.concatenate(chunks, axis=1)
    return frames, audio, rate, layout


def test_a_part_has_the_frames_asked_for_and_the_sound_of_those_frames(tmp_path):
    source = write_clip(tmp_path / "long.mov", ClipSpec(duration=6.0, fps=25, container="mov",
                                                         audio_codec="pcm_s16le", audio="tone"))
    target = cut_part(source, tmp_path / "part.mov", start_s=2.0, frames=49)
    frames, audio, rate, layout = _decode(target)
    src_frames, src_audio, src_rate, src_layout = _decode(source)
    assert len(frames) == 49
    assert (rate, layout) == (src_rate, src_layout)
    assert audio.shape[1] == round(49 / 25 * rate)  # exactly the part's duration
    # the picture is the source's frames 50..98 (visually lossless), the sound its samples from 2.0 s
    assert np.abs(frames[0].astype(int) - src_frames[50].astype(int)).mean() < 3
    assert np.abs(frames[-1].astype(int) - src_frames[98].astype(int)).mean() < 3
    start = 2 * rate
    assert np.array_equal(audio[:, :1000], src_audio[:, start:start + 1000])  # PCM in, PCM out: untouched


def test_a_part_past_the_end_leaves_no_file(tmp_path):
    source = write_clip(tmp_path / "short.mp4", ClipSpec(duration=2.0))
    with pytest.raises(CutError, match="frames"):
        cut_part(source, tmp_path / "part.mov", start_s=1.5, frames=49)
    assert list(tmp_path.iterdir()) == [source]
