"""The reference images of an Ark request (`image`): an http(s) URL, taken as it is (the mock
never fetches one), or a `data:image/<format>;base64,...` URI, decoded and checked as Ark
checks it. Only the image's header is parsed, by the parsers of the formats Ark takes, so a
check costs what the body's bytes do: a decompression bomb is refused for its size, never
decoded."""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings

from PIL import Image, UnidentifiedImageError

FORMATS = ("jpeg", "png", "webp", "bmp", "tiff", "gif")
MAX_BYTES = 10 * 1024 * 1024
MIN_SIDE = 15  # each side over 14 pixels
MAX_SIDE = 6000
MAX_ASPECT = 16
_DATA_URI = re.compile(r"data:image/(?P<format>[a-z]+);base64,(?P<data>.*)", re.DOTALL)
_PILLOW_FORMATS = [name.upper() for name in FORMATS]


def problem(reference: str) -> str | None:
    """Why Ark would refuse `reference`, or None."""
    if reference.startswith(("http://", "https://")):
        return None
    found = _DATA_URI.fullmatch(reference)
    if found is None:
        return "expected an http(s) URL or a data URI 'data:image/<format>;base64,<data>'"
    if found["format"] not in FORMATS:
        return f"the format {found['format']!r} is not one of {', '.join(FORMATS)}"
    data = found["data"]
    if len(data) // 4 * 3 > MAX_BYTES:
        return f"the image is larger than {MAX_BYTES // (1024 * 1024)} MB"
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return "its data is not valid base64"
    size = _image_size(raw)
    if isinstance(size, str):
        return size
    return _size_problem(*size)


def _image_size(raw: bytes) -> tuple[int, int] | str:
    """Width and height from the image's header, or why it is not an image Ark reads."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw), formats=_PILLOW_FORMATS) as image:
                return image.size
    except Image.DecompressionBombError:
        return f"the image is larger than {MAX_SIDE}x{MAX_SIDE} pixels"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        return f"the data is not an image in one of the formats {', '.join(FORMATS)}"


def _size_problem(width: int, height: int) -> str | None:
    if min(width, height) < MIN_SIDE:
        return f"the image is {width}x{height}: each side must be over {MIN_SIDE - 1} pixels"
    if max(width, height) > MAX_SIDE:
        return f"the image is {width}x{height}: at most {MAX_SIDE}x{MAX_SIDE} pixels"
    if max(width, height) / min(width, height) > MAX_ASPECT:
        return f"the image is {width}x{height}: its aspect ratio is beyond 1:{MAX_ASPECT}"
    return None
