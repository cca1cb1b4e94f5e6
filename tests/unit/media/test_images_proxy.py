"""Poster, waveform, spectrogram and browser proxy files are produced and valid."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.media import images
from core.media.analysis import decode_audio
from core.media.pipeline import analyze_clip
from core.media.probe import probe_media
from core.media.proxy import ProxyError, is_browser_playable, proxy_size, write_proxy


def test_pipeline_writes_images_for_a_talking_clip(media, analysed, tmp_path):
    result = analyze_clip(media.talking_clip(), tmp_path, "64x64x49")
    media_files = result.media
    assert media_files["playable_source"] is True and media_files["proxy"] is None
    with Image.open(tmp_path / media_files["poster"]) as poster:
        assert poster.format == "JPEG" and poster.size == (64, 64)
    with Image.open(tmp_path / media_files["waveform"]) as waveform:
        assert waveform.format == "PNG"
        pixels = np.asarray(waveform.convert("RGB")).reshape(-1, 3)
    # Speech draws the waveform colour; the background dominates the rest.
    assert (pixels == images.WAVEFORM_COLOUR).all(axis=1).sum() > 1000
    with Image.open(tmp_path / media_files["spectrogram"]) as spectrogram:
        assert spectrogram.format == "PNG"
        assert np.asarray(spectrogram.convert("L")).std() > 10  # speech makes a varied picture
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_spectrogram_of_silence_is_flat(tmp_path):
    out = images.write_spectrogram(np.zeros(16000, np.float32), 16000, tmp_path / "s.png")
    with Image.open(out) as image:
        assert np.asarray(image.convert("L")).std() == 0


def test_poster_is_upright_for_rotated_video(media, tmp_path):
    clip = media.clip(duration=1.0, size=(64, 32), rotation=90)
    out = images.write_poster(clip, tmp_path / "p.jpg", rotation=probe_media(clip).video.rotation)
    with Image.open(out) as poster:
        assert poster.size == (32, 64)


def test_waveform_from_decoded_audio(media, tmp_path):
    mono = decode_audio(media.talking_clip()).mono_16k
    out = images.write_waveform(mono, tmp_path / "w.png", width=300, height=80)
    with Image.open(out) as image:
        assert image.size == (300, 80)


@pytest.mark.parametrize(
    ("fields", "playable"),
    [
        ({}, True),  # H.264/AAC MP4
        ({"container": "webm", "size": (64, 64), "duration": 1.0}, True),  # VP9/Opus WebM
        ({"video_codec": "mpeg4", "duration": 1.0}, False),  # MPEG-4 Part 2
        ({"container": "mkv", "audio_codec": "pcm_s16le", "duration": 1.0}, False),  # H.264 in MKV
        ({"container": "mov", "audio_codec": "pcm_s16le", "duration": 1.0}, False),  # PCM audio
    ],
)
def test_browser_playable_is_decided_by_codecs(media, fields, playable):
    assert is_browser_playable(probe_media(media.clip(**fields))) is playable


def test_proxy_is_h264_aac_with_same_frames_and_audio(media, tmp_path):
    source = media.clip(video_codec="mpeg4", duration=2.0)
    source_probe = probe_media(source)
    result = analyze_clip(source, tmp_path, "64x64x49")
    assert result.media["proxy"] == "proxy.mp4"
    proxy_probe = probe_media(tmp_path / "proxy.mp4")
    assert proxy_probe.video.codec == "h264" and proxy_probe.video.pix_fmt == "yuv420p"
    assert proxy_probe.video.frame_count == source_probe.video.frame_count
    assert proxy_probe.audio.codec == "aac" and proxy_probe.audio.channels == 2
    assert proxy_probe.duration == pytest.approx(source_probe.duration, abs=0.1)
    assert is_browser_playable(proxy_probe)


def test_proxy_downmixes_surround_and_keeps_rotation(media, tmp_path):
    source = media.clip(container="mkv", video_codec="mpeg4", channels="5.1", duration=1.0, rotation=90)
    out = write_proxy(source, tmp_path / "p.mp4", probe_media(source))
    result = probe_media(out)
    assert result.audio.channels == 2 and result.video.rotation == 90


def test_proxy_size_caps_short_side_and_keeps_even_sides():
    assert proxy_size(1920, 1080) == (1280, 720)
    assert proxy_size(720, 1280) == (720, 1280)
    assert proxy_size(65, 33) == (64, 32)


def test_failed_proxy_leaves_no_file(media, tmp_path):
    audio_only = media.audio_only()
    with pytest.raises(ProxyError):
        write_proxy(audio_only, tmp_path / "p.mp4", probe_media(audio_only))
    assert list(tmp_path.iterdir()) == []
