"""Placeholder images: stateless signed URLs, and the PNGs drawn from them."""

from __future__ import annotations

import colorsys
import functools
import hashlib
import hmac
import io
import random
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import PIL
from PIL import Image, ImageDraw, ImageFont

from mockserver.errors import ApiError
from mockserver.options import DEFAULT_SECRET

# Bump when the drawing changes, so ETags of old bytes stop matching.
RENDER_VERSION = 2
MAX_SIDE = 16384

_NAME = re.compile(
    r"(?P<seed>[0-9a-f]{16})-(?P<index>[1-9][0-9]{0,2})(?:-(?P<tag>w|j|wj))?"
    r"-(?P<sig>[0-9a-f]{16})\.(?P<ext>png|jpeg)"
)
MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}
WATERMARK = "AI generated"
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
    watermark: bool = False  # a visible mark in the bottom-right corner
    kind: str = "png"  # or "jpeg"

    @property
    def tag(self) -> str:
        """What sets the image apart from the plain PNG of its size and seed ("" for that)."""
        return ("w" if self.watermark else "") + ("j" if self.kind == "jpeg" else "")

    @property
    def key(self) -> str:
        tag = f"-{self.tag}" if self.tag else ""
        return f"{self.model}/{self.width}x{self.height}/{self.seed}-{self.index}{tag}"

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.kind]


class ImageSigner:
    """Signs image paths so that an edited URL is a 404, not a request to draw anything.

    The host is not signed: a URL stays valid behind a proxy, after a restart and on
    another worker, as long as the secret is the same.
    """

    def __init__(
        self,
        secret: str | None,
        issuable: Callable[[int, int], bool] = lambda w, h: max(w, h) <= MAX_SIDE,
    ) -> None:
        # None is MockConfig's "not given" on loopback: the fixed default.
        secret = DEFAULT_SECRET if secret is None else secret
        # HMAC-SHA256 (RFC 2104) with its two keyed hash states made once: a copy of each per
        # URL costs a third of an HMAC made afresh, as OpenSSL 3 looks the algorithm up anew.
        block = hashlib.sha256().block_size
        secret_bytes = secret.encode()
        if len(secret_bytes) > block:
            secret_bytes = hashlib.sha256(secret_bytes).digest()
        padded = secret_bytes.ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))
        self._issuable = issuable

    def _sign(self, key: str) -> str:
        inner = self._inner.copy()
        inner.update(key.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()[:16]

    def path(self, spec: ImageSpec) -> str:
        key = spec.key
        return f"/images/{key}-{self._sign(key)}.{spec.kind}"

    def etag(self, spec: ImageSpec) -> str:
        tag = hashlib.sha256(
            f"{spec.key}|{RENDER_VERSION}|{PIL.__version__}|{zlib.ZLIB_RUNTIME_VERSION}".encode()
        )
        return f'"{tag.hexdigest()[:32]}"'

    def parse(self, model: str, size: str, name: str) -> ImageSpec:
        path = f"/images/{model}/{size}/{name}"
        size_match = _SIZE.fullmatch(size)
        name_match = _NAME.fullmatch(name)
        if not (_MODEL.fullmatch(model) and size_match and name_match):
            raise ApiError("image_not_found", path=path, detail="not an image URL of this mock")
        tag = name_match["tag"] or ""
        spec = ImageSpec(
            model=model,
            width=int(size_match["width"]),
            height=int(size_match["height"]),
            seed=name_match["seed"],
            index=int(name_match["index"]),
            watermark="w" in tag,
            kind="jpeg" if "j" in tag else "png",
        )
        if spec.kind != name_match["ext"]:
            raise ApiError("image_not_found", path=path, detail="not an image URL of this mock")
        if not hmac.compare_digest(self._sign(spec.key), name_match["sig"]):
            raise ApiError(
                "image_not_found", path=path, detail="the signature does not match the URL"
            )
        # Signed or not, a size no request can get is not drawn: the default secret is public.
        if not self._issuable(spec.width, spec.height):
            raise ApiError(
                "image_not_found", path=path, detail="no request gets an image of this size"
            )
        return spec


def _colour(hue: float, saturation: float, value: float) -> list[int]:
    return [round(c * 255) for c in colorsys.hsv_to_rgb(hue % 1.0, saturation, value)]


def render_spec(spec: ImageSpec) -> bytes:
    lines = [spec.model, f"{spec.width} x {spec.height}", f"#{spec.index}  {spec.seed[:8]}"]
    png = render_placeholder(spec.width, spec.height, f"{spec.seed}-{spec.index}", lines)
    return png if not spec.tag else _finished(png, spec)


def _finished(png: bytes, spec: ImageSpec) -> bytes:
    """The placeholder with its watermark drawn, in its format."""
    with Image.open(io.BytesIO(png)) as opened:
        image = opened.convert("RGB")
    if spec.watermark:
        draw = ImageDraw.Draw(image)
        size = max(8, min(spec.width, spec.height) // 24)
        font = _font(size)
        pad = size // 2
        width = round(font.getlength(WATERMARK))
        left, top = spec.width - width - 2 * pad, spec.height - size - 3 * pad
        draw.rectangle([left, top, spec.width - 1, spec.height - 1], fill=(0, 0, 0))
        draw.text((left + pad, top + pad), WATERMARK, font=font, fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="JPEG" if spec.kind == "jpeg" else "PNG", quality=85)
    return out.getvalue()


# Palette indexes of the 2-bit image, and a byte of four border pixels.
_BACKGROUND, _STRIPE, _INK, _PANEL = 0, 1, 2, 3
_INK_BYTE = b"\xaa"


def render_placeholder(width: int, height: int, seed: str, lines: list[str]) -> bytes:
    """A PNG of exactly width x height: colour and stripes from `seed`, `lines` as a label.

    Four palette colours make it a 2-bit PNG, four pixels to a byte. The diagonal stripes
    make row y the same pattern shifted by y pixels, so each distinct row is built once,
    as bytes, and the rows are compressed straight into the PNG; only the label is drawn.
    Borders and the label panel start and end on whole bytes.
    """
    rng = random.Random(seed)
    hue = rng.random()
    palette = bytes(
        _colour(hue, 0.30, 0.95) + _colour(hue, 0.55, 0.78) + [24, 24, 24] + [255, 255, 255]
    )
    short = min(width, height)
    spacing = max(6, short // rng.randint(6, 16))
    slope = rng.choice((-1, 1))
    thick = max(1, spacing // 3)
    border = -(-max(1, short // 128) // 4) * 4  # pixels, rounded up to whole bytes

    stride = (width + 3) // 4
    left = min(border // 4, stride)
    right = max(left, (width - border) // 4)
    unit = bytes([_STRIPE]) * thick + bytes([_BACKGROUND]) * (spacing - thick)
    pattern = unit * ((4 * stride + spacing + 8) // spacing + 1)
    phases = [_pack(pattern[p : p + 4 * (stride + spacing // 4 + 1)]) for p in range(4)]

    rows: dict[int, bytes] = {}

    def row(y: int) -> bytes:
        shift = (slope * y) % spacing
        if shift not in rows:
            stripes = phases[shift % 4][shift // 4 : shift // 4 + stride]
            rows[shift] = _INK_BYTE * left + stripes[left:right] + _INK_BYTE * (stride - right)
        return rows[shift]

    edge = _INK_BYTE * stride
    scanlines = [edge if y < border or y >= height - border else row(y) for y in range(height)]
    panel = _label_panel(width, height, lines, left * 4, right * 4)
    if panel is not None:
        x, y, image = panel
        step = image.width // 4
        packed = image.tobytes("raw", "P;2")
        for i in range(image.height):
            line = scanlines[y + i]
            piece = packed[i * step : (i + 1) * step]
            scanlines[y + i] = line[: x // 4] + piece + line[x // 4 + step :]
    return _png(width, height, palette, scanlines)


def _png(width: int, height: int, palette: bytes, scanlines: list[bytes]) -> bytes:
    """A 2-bit palette PNG of these rows, compressed a band of rows at a time, so the whole
    raw image is never in memory at once."""
    compressor = zlib.compressobj(1)
    idat = [
        compressor.compress(b"".join(b"\x00" + line for line in scanlines[top : top + 256]))
        for top in range(0, height, 256)  # \x00: filter type None on every row
    ]
    idat.append(compressor.flush())
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 2, 3, 0, 0, 0)),
            _chunk(b"PLTE", palette),
            _chunk(b"IDAT", b"".join(idat)),
            _chunk(b"IEND", b""),
        )
    )


def _pack(pixels: bytes) -> bytes:
    """One byte per pixel to four pixels per byte."""
    return Image.frombytes("P", (len(pixels), 1), pixels).tobytes("raw", "P;2")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _label_panel(
    width: int, height: int, lines: list[str], low: int, high: int
) -> tuple[int, int, Image.Image] | None:
    """The label: a panel with the lines centred, and where it goes (x on a whole byte)."""
    probe = _font(100)
    widest = max(probe.getlength(line) for line in lines)
    size = int(min(height / (len(lines) * 1.6 + 1) * 0.6, width * 0.7 / widest * 100))
    if size < 6:
        return None  # too small to read: stripes and colour still tell images apart
    font = _font(size)
    line_height = round(size * 1.3)
    pad = size // 2
    box_w = round(max(font.getlength(line) for line in lines)) + 2 * pad
    box_h = line_height * len(lines) + 2 * pad - (line_height - size)
    x = max(low, (width - box_w) // 2 // 4 * 4)
    box_w = min(-(-box_w // 4) * 4, high - x)
    y = max(0, (height - box_h) // 2)
    box_h = min(box_h, height - y)
    if box_w <= 0 or box_h <= 0:
        return None
    image = Image.new("P", (box_w, box_h), _PANEL)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, box_w - 1, box_h - 1], outline=_INK, width=max(1, size // 12))
    for i, line in enumerate(lines):
        draw.text(
            ((box_w - font.getlength(line)) / 2, pad + i * line_height), line, font=font, fill=_INK
        )
    return x, y, image


THUMBNAIL_SIDE = 160


def thumbnail_size(width: int, height: int) -> tuple[int, int]:
    scale = THUMBNAIL_SIDE / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def render_thumbnail(spec: ImageSpec) -> bytes:
    """The image drawn small, with its colours and stripes, for the journal page."""
    width, height = thumbnail_size(spec.width, spec.height)
    lines = [f"#{spec.index}"]
    return render_placeholder(width, height, f"{spec.seed}-{spec.index}", lines)
