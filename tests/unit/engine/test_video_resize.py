"""The clip's pixels for the video VAE (``load_clip_pixels``): the uint8 channels-last resize gives
what the former float32 path gave, within a stated tolerance, with the same crop box, frame count,
dtype, range and shape.

The former path is kept here as the reference: decode to RGB, frames to floats in [0, 1], torch's
antialiased bicubic to the cover size, centre crop, clamp, map to [-1, 1]. Tolerance, in [-1, 1]
pixel units (one uint8 level is 2/255 = 0.0078): mean absolute error below 0.003 (about 0.4 of a
level: the new path rounds to whole levels) and no pixel more than 0.012 away (1.5 levels). The
clips are ``clip_maker``'s textured panning scene with grain, so a crop box one pixel off, another
kernel or a chroma shift fails by far more than that.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from worker.engine.bench.clip_maker import write_test_clip
from worker.engine.data.video import VideoDecodeError, cover_size, load_clip_pixels, read_frames

MEAN_ABS_TOLERANCE = 0.003
MAX_ABS_TOLERANCE = 0.012


def former_pixels(path, *, width: int, height: int, frames: int) -> torch.Tensor:
    """The former ``load_clip_pixels``: float32 frames, bicubic antialiased, crop, clamp, [-1, 1]."""
    raw = torch.from_numpy(read_frames(path, frames)).permute(0, 3, 1, 2).float() / 255.0
    _, _, current_h, current_w = raw.shape
    if current_w / current_h > width / height:
        new_h, new_w = height, int(current_w * height / current_h)
    else:
        new_h, new_w = int(current_h * width / current_w), width
    new_h, new_w = max(new_h, height), max(new_w, width)
    if (new_h, new_w) != (current_h, current_w):
        raw = F.interpolate(raw, size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    pixels = raw[:, :, top : top + height, left : left + width].clamp(0.0, 1.0)
    return (pixels * 2.0 - 1.0).permute(1, 0, 2, 3).contiguous()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Real H.264 clips (30 fps, 0.4 s = 12 frames): landscape 640x360, portrait 360x640, small 176x144."""
    folder = tmp_path_factory.mktemp("resize-clips")
    sizes = {"landscape": (640, 360), "portrait": (360, 640), "small": (176, 144)}
    return {name: write_test_clip(folder / f"{name}.mp4", width=w, height=h, seconds=0.4, seed=i)
            for i, (name, (w, h)) in enumerate(sizes.items())}


@pytest.mark.parametrize(
    ("clip", "width", "height", "frames"),
    [
        ("landscape", 256, 256, 9),  # 640x360 -> 455x256, crop columns 99..354
        ("portrait", 256, 256, 9),  # 360x640 -> 256x455, crop rows 99..354
        ("landscape", 384, 256, 12),  # a wide bucket, every frame of the clip
        ("portrait", 192, 320, 5),  # a tall bucket: 360x640 -> 192x341, crop rows 10..329
        ("small", 256, 256, 9),  # smaller than the bucket: scaled up (176x144 -> 312x256)
    ],
)
def test_pixels_match_the_former_float_path_within_tolerance(clips, clip, width, height, frames):
    new = load_clip_pixels(clips[clip], width=width, height=height, frames=frames)
    old = former_pixels(clips[clip], width=width, height=height, frames=frames)

    assert new.shape == old.shape == (3, frames, height, width)
    assert new.dtype == old.dtype == torch.float32 and new.is_contiguous()
    assert float(new.min()) >= -1.0 and float(new.max()) <= 1.0
    assert float(new.max() - new.min()) > 1.0  # a real picture, not a flat frame
    error = (new - old).abs()
    assert float(error.mean()) < MEAN_ABS_TOLERANCE, f"mean abs error {float(error.mean()):.5f}"
    assert float(error.max()) <= MAX_ABS_TOLERANCE, f"max abs error {float(error.max()):.5f}"


def test_the_crop_box_is_the_former_one(clips):
    """A crop one pixel off from the former box is far outside the tolerance: the test can tell."""
    new = load_clip_pixels(clips["landscape"], width=256, height=256, frames=4)
    raw = torch.from_numpy(read_frames(clips["landscape"], 4)).permute(0, 3, 1, 2).float() / 255.0
    scaled = F.interpolate(raw, size=(256, 455), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    scaled = (scaled * 2.0 - 1.0).permute(1, 0, 2, 3)
    assert cover_size(640, 360, 256, 256) == (455, 256)
    assert float((new - scaled[:, :, :, 99:355]).abs().mean()) < MEAN_ABS_TOLERANCE
    assert float((new - scaled[:, :, :, 100:356]).abs().mean()) > 4 * MEAN_ABS_TOLERANCE


def test_a_clip_already_at_the_bucket_size_is_unchanged_bit_for_bit(tmp_path):
    path = write_test_clip(tmp_path / "exact.mp4", width=128, height=96, seconds=0.2)
    new = load_clip_pixels(path, width=128, height=96, frames=6)
    assert torch.equal(new, former_pixels(path, width=128, height=96, frames=6))


def test_only_the_bucket_frames_are_kept_and_too_few_frames_are_refused(clips):
    assert read_frames(clips["portrait"], 5).shape == (5, 640, 360, 3)
    assert read_frames(clips["portrait"], 100).shape == (12, 640, 360, 3)  # all the clip has
    with pytest.raises(VideoDecodeError, match="only 12 frames decoded, the bucket needs 13"):
        load_clip_pixels(clips["portrait"], width=256, height=256, frames=13)
