"""Probe: container, stream facts and the not_media / corrupt_media distinction."""

from __future__ import annotations

import shutil

import pytest

from core.media.probe import MediaProbeError, probe_media, verify_video_decodes


def test_talking_clip_fields(media):
    result = probe_media(media.talking_clip())
    assert result.container.startswith("mov,mp4")
    assert result.duration == pytest.approx(4.0, abs=0.05)
    video, audio = result.video, result.audio
    assert (video.codec, video.width, video.height) == ("h264", 64, 64)
    assert video.fps == pytest.approx(25.0)
    assert video.frame_count == 100 and video.frame_count_source == "packets"
    assert not video.variable_frame_rate and video.rotation == 0
    assert (audio.codec, audio.sample_rate, audio.channels, audio.channel_layout) == ("aac", 48000, 2, "stereo")
    assert audio.duration == pytest.approx(4.0, abs=0.05)
    assert result.to_dict()["video"]["frame_count"] == 100


def test_vertical_webm_vp9_opus(media):
    result = probe_media(media.vertical_webm())
    assert result.container == "matroska,webm"
    assert (result.video.codec, result.video.width, result.video.height) == ("vp9", 720, 1280)
    # WebM headers carry no frame count: it must be counted from the packets.
    assert result.video.frame_count == 10 and result.video.frame_count_source == "packets"
    assert result.audio.codec == "opus" and result.audio.sample_rate == 48000


@pytest.mark.parametrize(
    ("fields", "rate", "channels", "layout"),
    [({"channels": "mono", "sample_rate": 44100}, 44100, 1, "mono"), ({"channels": "5.1"}, 48000, 6, "5.1")],
)
def test_audio_layouts(media, fields, rate, channels, layout):
    audio = probe_media(media.clip(duration=1.0, **fields)).audio
    assert (audio.sample_rate, audio.channels, audio.channel_layout) == (rate, channels, layout)


def test_rotation_swaps_display_size(media):
    video = probe_media(media.clip(duration=1.0, size=(64, 32), rotation=90)).video
    assert video.rotation == 90
    assert (video.width, video.height) == (64, 32)
    assert (video.display_width, video.display_height) == (32, 64)


def test_variable_frame_rate_detected_only_when_uneven(media):
    assert probe_media(media.clip(variable_frame_rate=True)).video.variable_frame_rate
    assert not probe_media(media.clip(fps=30, duration=2.0)).video.variable_frame_rate
    # WebM stores milliseconds: 30 fps frames land 33 or 34 ms apart, which is still constant.
    webm = probe_media(media.clip(container="webm", fps=30, duration=1.0)).video
    assert webm.frame_count == 30 and not webm.variable_frame_rate


def test_one_frame_video_and_audio_only(media):
    assert probe_media(media.one_frame_video()).video.frame_count == 1
    audio_only = probe_media(media.audio_only())
    assert audio_only.video is None and audio_only.audio.codec == "aac"


def test_type_is_decided_by_content_not_name(media, tmp_path):
    renamed = tmp_path / "clip.txt"
    shutil.copy(media.talking_clip(), renamed)
    assert probe_media(renamed).video.codec == "h264"


@pytest.mark.parametrize("make", ["text_file", "empty_file"])
def test_not_media(media, make):
    with pytest.raises(MediaProbeError) as caught:
        probe_media(getattr(media, make)())
    assert caught.value.code == "not_media"
    assert "upload" in caught.value.message


@pytest.mark.parametrize("faststart", [True, False], ids=["data-cut", "index-lost"])
def test_truncated_file_is_corrupt_not_foreign(media, faststart):
    with pytest.raises(MediaProbeError) as caught:
        probe_media(media.truncated(faststart=faststart))
    assert caught.value.code == "corrupt_media"
    assert "again" in caught.value.message


def test_damage_in_the_middle_is_found_by_full_decode(media):
    damaged = media.damaged()
    result = probe_media(damaged)  # header and first frame are fine
    with pytest.raises(MediaProbeError) as caught:
        verify_video_decodes(damaged, result)
    assert caught.value.code == "corrupt_media"
    assert verify_video_decodes(media.clip(duration=1.0), probe_media(media.clip(duration=1.0))) == 25


def test_still_image_is_not_media(tmp_path):
    from PIL import Image

    picture = tmp_path / "frame.mp4"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(picture, format="PNG")
    with pytest.raises(MediaProbeError) as caught:
        probe_media(picture)
    assert caught.value.code == "not_media" and "image" in caught.value.message
