"""The upload guard follows a multipart body in whatever pieces it arrives: a control character in a
field or file name, or in a text field, is found wherever the chunks split; a file's own bytes
(NUL and all) and multi-line text are never refused."""

from __future__ import annotations

import pytest

from app.input_guard import MultipartScanner
from core.errors import ApiError

BOUNDARY = b"----studio7Xq"


def _part(headers: bytes, content: bytes) -> bytes:
    return b"--" + BOUNDARY + b"\r\n" + headers + b"\r\n\r\n" + content + b"\r\n"


def _body(*parts: bytes) -> bytes:
    return b"".join(parts) + b"--" + BOUNDARY + b"--\r\n"


def _feed(body: bytes, size: int) -> None:
    scanner = MultipartScanner(BOUNDARY)
    for start in range(0, len(body), size):
        scanner.feed(body[start:start + size])


VIDEO = bytes(range(256)) * 8 + b"\r\n--" + BOUNDARY[:-1] + b"\x00"  # binary, even a near-boundary
GOOD = _body(
    _part(b'Content-Disposition: form-data; name="files"; filename="talk one.mp4"\r\nContent-Type: video/mp4', VIDEO),
    _part(b'Content-Disposition: form-data; name="caption"', b"line one\r\nline two\tand tab"),
    _part(b"Content-Disposition: form-data; name=\"files\"; filename*=UTF-8''caf%C3%A9.mp4", VIDEO),
)
BAD = {
    "NUL in a file name": (_part(b'Content-Disposition: form-data; name="files"; filename="evil\x00.mp4"', VIDEO),
                           "files", "file name"),
    "ESC in an encoded file name": (_part(b"Content-Disposition: form-data; name=\"files\"; filename*=UTF-8''a%1B.mp4",
                                          VIDEO), "files", "file name"),
    "NUL in a text field": (_part(b'Content-Disposition: form-data; name="name"', b"Ema\x00"), "name", "'name'"),
    "BEL in a field name": (_part(b'Content-Disposition: form-data; name="na\x07me"', b"Ema"), "na\x07me", "field name"),
}


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 100_000])
def test_a_good_upload_passes_in_any_chunking(size):
    _feed(GOOD, size)


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("size", [1, 5, 64, 100_000])
def test_a_control_character_is_found_in_any_chunking(case, size):
    part, field, words = BAD[case]
    body = _body(_part(b'Content-Disposition: form-data; name="files"; filename="ok.mp4"', VIDEO), part)
    with pytest.raises(ApiError) as refused:
        _feed(body, size)
    assert refused.value.status == 422 and refused.value.code == "invalid_text"
    assert refused.value.detail == {"field": field} and words in refused.value.message
