"""Placeholder images: stateless signed URLs, and the PNGs drawn from them."""

from __future__ import annotations

import colorsys
import functools
import hashlib
import hmac
import io
import random
import re
from dataclasses import dataclass

import PIL
from PIL import Image, ImageDraw, ImageFont

from mockserver.errors import ApiError

# Bump when the drawing changes, so ETags of old bytes stop matching.
RENDER_VERSION = 1
MAX_SIDE = 16384

_NAME = re.compile(r"(?P<seed>[0-9a-f]{16})-(?P<index>[1-9][0-9]{0,2})-(?P<sig>[0-9a-f]{16})\.png")
_SIZE = re.compile(r"(?P<width>[1-9][0-9]{0,4})x(?P<height>[1-9][0-9]{0,4})")
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class ImageSpec:
    """Everything that decides an image's bytes; all of it travels in the URL."""

    model: str
    width: int
    height: int
    seed: str
    index: int

    @property
    def key(self) -> str:
        return f"{self.model}/{self.width}x{self.height}/{self.seed}-{self.index}"


class ImageSigner:
    """Signs image paths so that an edited URL is a 404, not a request to draw anything.

    The host is not signed: a URL stays valid behind a proxy, after a restart and on
    another worker, as long as the secret is the same.
    """

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def _sign(self, key: str) -> str:
        return hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()[:16]

    def path(self, spec: ImageSpec) -> str:
        return f"/images/{spec.key}-{self._sign(spec.key)}.png"

    def etag(self, spec: ImageSpec) -> str:
        tag = hashlib.sha256(f"{spec.key}|{RENDER_VERSION}|{PIL.__version__}".encode())
        return f'"{tag.hexdigest()[:32]}"'

    def parse(self, model: str, size: str, name: str) -> ImageSpec:
        path = f"/images/{model}/{size}/{name}"
        size_match = _SIZE.fullmatch(size)
        name_match = _NAME.fullmatch(name)
        if not (_MODEL.fullmatch(model) and size_match and name_match):
            raise ApiError("image_not_found", path=path, detail="not an image URL of this mock")
        spec = ImageSpec(
            model=model,
            width=int(size_match["width"]),
            height=int(size_match["height"]),
            seed=name_match["seed"],
            index=int(name_match["index"]),
        )
        if not hmac.compare_digest(self._sign(spec.key), name_match["sig"]):
            raise ApiError(
                "image_not_found", path=path, detail="the signature does not match the URL"
            )
        if spec.width > MAX_SIDE or spec.height > MAX_SIDE:
            raise ApiError("image_not_found", path=path, detail=f"sides are at most {MAX_SIDE}")
        return spec


def _colour(hue: float, saturation: float, value: float) -> list[int]:
    return [round(c * 255) for c in colorsys.hsv_to_rgb(hue % 1.0, saturation, value)]


@functools.lru_cache(maxsize=32)
def render_spec(spec: ImageSpec) -> bytes:
    lines = [spec.model, f"{spec.width} x {spec.height}", f"#{spec.index}  {spec.seed[:8]}"]
    return render_placeholder(spec.width, spec.height, f"{spec.seed}-{spec.index}", lines)


def render_placeholder(width: int, height: int, seed: str, lines: list[str]) -> bytes:
    """A PNG of exactly width x height: colour and stripes from `seed`, `lines` as a label.

    Four palette colours keep it a 2-bit PNG, small and quick to encode even at 4K.
    """
    rng = random.Random(seed)
    hue = rng.random()
    image = Image.new("P", (width, height), 0)
    # 0 background, 1 stripes, 2 ink, 3 label panel
    image.putpalette(
        _colour(hue, 0.30, 0.95) + _colour(hue, 0.55, 0.78) + [24, 24, 24] + [255, 255, 255]
    )
    draw = ImageDraw.Draw(image)

    short = min(width, height)
    spacing = max(6, short // rng.randint(6, 16))
    slope = rng.choice((-1, 1))
    for offset in range(-height, width + height, spacing):
        draw.line(
            [(offset, 0), (offset + slope * height, height)], fill=1, width=max(1, spacing // 3)
        )
    border = max(1, short // 128)
    draw.rectangle([0, 0, width - 1, height - 1], outline=2, width=border)

    _draw_label(draw, width, height, lines)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


@functools.lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _draw_label(draw: ImageDraw.ImageDraw, width: int, height: int, lines: list[str]) -> None:
    probe = _font(100)
    widest = max(draw.textlength(line, font=probe) for line in lines)
    size = int(min(height / (len(lines) * 1.6 + 1) * 0.6, width * 0.7 / widest * 100))
    if size < 6:
        return  # too small to read: stripes and colour still tell images apart
    font = _font(size)
    line_height = round(size * 1.3)
    text_width = max(draw.textlength(line, font=font) for line in lines)
    pad = size // 2
    box_w, box_h = text_width + 2 * pad, line_height * len(lines) + 2 * pad - (line_height - size)
    left, top = (width - box_w) / 2, (height - box_h) / 2
    draw.rectangle(
        [left, top, left + box_w, top + box_h], fill=3, outline=2, width=max(1, size // 12)
    )
    for i, line in enumerate(lines):
        x = (width - draw.textlength(line, font=font)) / 2
        draw.text((x, top + pad + i * line_height), line, font=font, fill=2)


THUMBNAIL_SIDE = 160


def thumbnail_size(width: int, height: int) -> tuple[int, int]:
    scale = THUMBNAIL_SIDE / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


@functools.lru_cache(maxsize=256)
def render_thumbnail(spec: ImageSpec) -> bytes:
    """The image drawn small, with its colours and stripes, for the journal page."""
    width, height = thumbnail_size(spec.width, spec.height)
    lines = [f"#{spec.index}"]
    return render_placeholder(width, height, f"{spec.seed}-{spec.index}", lines)
