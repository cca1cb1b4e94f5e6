"""Bucket strings and the official bucket-assignment rule."""

import pytest

from core.recipe.buckets import (
    DEFAULT_BUCKETS,
    Bucket,
    BucketError,
    assign_bucket,
    coerce_buckets,
    fitting_buckets,
    format_buckets,
    parse_buckets,
)


def test_default_buckets_are_the_documented_pair():
    assert format_buckets(DEFAULT_BUCKETS) == "512x512x49;512x512x89"


def test_parse_and_format_round_trip_keeps_order():
    text = "768x512x89;512x512x49;512x768x121"
    buckets = parse_buckets(text)
    assert buckets == [Bucket(768, 512, 89), Bucket(512, 512, 49), Bucket(512, 768, 121)]
    assert format_buckets(buckets) == text


def test_parse_accepts_the_ways_people_type_lists():
    assert parse_buckets(" 512 x 512 x 49 , 512X512X89 ") == list(DEFAULT_BUCKETS)
    assert parse_buckets("512x512x49 512x512x89") == list(DEFAULT_BUCKETS)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("500x512x49", "multiples of 32"),
        ("512x512x48", "multiple of 8 plus 1"),
        ("512x512x1", "more than 1 frame"),
        ("512x512", "width x height x frames"),
        ("axbxc", "width x height x frames"),
        ("", "no buckets"),
        ("512x512x49;512x512x49", "listed twice"),
        ("0x512x49", "positive"),
    ],
)
def test_invalid_buckets_are_refused_with_the_rule_named(text, fragment):
    with pytest.raises(BucketError, match=fragment):
        parse_buckets(text)


def test_every_bad_bucket_is_reported_at_once():
    with pytest.raises(BucketError) as info:
        parse_buckets("500x512x49;512x512x48")
    assert "500x512x49" in str(info.value) and "512x512x48" in str(info.value)


def test_single_frame_bucket_is_allowed_for_images():
    assert parse_buckets("512x512x1", video=False) == [Bucket(512, 512, 1)]


def test_coerce_accepts_lists_and_triples():
    assert coerce_buckets(["512x512x49", (512, 512, 89)]) == list(DEFAULT_BUCKETS)


def test_closest_log_aspect_ratio_wins_over_frames_and_area():
    buckets = parse_buckets("512x512x89;768x448x49;448x768x49")
    # 1920x1080 (16:9) is closest to 768x448 although the square bucket has more frames.
    assert assign_bucket(1920, 1080, 120, buckets) == Bucket(768, 448, 49)
    assert assign_bucket(1080, 1920, 120, buckets) == Bucket(448, 768, 49)
    assert assign_bucket(720, 720, 120, buckets) == Bucket(512, 512, 89)


def test_aspect_distance_is_log_scale_not_linear():
    # Square clip. 1:2 is closer linearly (|0.5 - 1| = 0.5 < |1.6 - 1| = 0.6) but
    # 8:5 is closer on a log scale (|ln 1.6| = 0.47 < |ln 0.5| = 0.69): log wins officially.
    buckets = parse_buckets("256x512x49;512x320x49")
    assert assign_bucket(500, 500, 49, buckets) == Bucket(512, 320, 49)


def test_same_aspect_prefers_more_frames_then_larger_area():
    buckets = parse_buckets("512x512x49;768x768x49;512x512x89")
    assert assign_bucket(1000, 1000, 100, buckets) == Bucket(512, 512, 89)
    assert assign_bucket(1000, 1000, 60, buckets) == Bucket(768, 768, 49)


def test_only_buckets_the_clip_is_long_enough_for_count():
    assert assign_bucket(512, 512, 60, DEFAULT_BUCKETS) == Bucket(512, 512, 49)
    assert assign_bucket(512, 512, 89, DEFAULT_BUCKETS) == Bucket(512, 512, 89)
    assert assign_bucket(512, 512, 88, DEFAULT_BUCKETS) == Bucket(512, 512, 49)


def test_too_short_clip_gets_no_bucket_and_a_reason():
    assert assign_bucket(512, 512, 30, DEFAULT_BUCKETS) is None
    fitting, reason = fitting_buckets(512, 512, 30, DEFAULT_BUCKETS)
    assert fitting == []
    assert reason == "49 frames needed, clip has 30"


def test_fitting_buckets_lists_all_fits_best_first():
    buckets = parse_buckets("512x512x49;768x448x89;512x512x89;768x448x121")
    fitting, reason = fitting_buckets(1920, 1080, 100, buckets)
    assert reason is None
    assert fitting == [Bucket(768, 448, 89), Bucket(512, 512, 89), Bucket(512, 512, 49)]


def test_bucket_token_count_matches_the_vae_compression():
    assert Bucket(512, 512, 49).video_tokens == 7 * 16 * 16
