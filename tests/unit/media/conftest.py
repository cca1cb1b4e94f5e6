"""Session-cached generated media and analyses for the media tests."""

from __future__ import annotations

import pytest

from core.media.pipeline import ClipAnalysis, analyze_clip
from tests.media_factory import MediaFactory

# Buckets the clips are analysed with: 64x64 clips fit them without upscaling.
TEST_BUCKETS = "64x64x9;64x64x49"


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> MediaFactory:
    """One generated file per distinct request for the whole session."""
    return MediaFactory(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="session")
def analysed(tmp_path_factory):
    """``analysed(path) -> ClipAnalysis``, run once per file per session."""
    cache: dict[str, ClipAnalysis] = {}
    root = tmp_path_factory.mktemp("analysed")

    def run(path) -> ClipAnalysis:
        key = str(path)
        if key not in cache:
            cache[key] = analyze_clip(path, root / f"out-{len(cache)}", TEST_BUCKETS)
        return cache[key]

    return run
