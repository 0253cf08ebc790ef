"""Item 2: first render and cached fetch of images over HTTP, by size, against the command."""

from __future__ import annotations

import struct
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from bench.common import Figure, ServerProcess, Target, mock_cmd, step

HEADERS = {"Authorization": "Bearer sk-bench"}

# (key, label, width, height, request fields giving that size, the same by ratio x resolution)
SIZES: list[tuple[str, str, int, int, dict[str, str], dict[str, str]]] = [
    ("1k", "1k 1024x1024", 1024, 1024, {"size": "1024x1024"}, {"ratio": "1:1", "resolution": "1k"}),
    ("2k", "2k 2048x2048", 2048, 2048, {"size": "2048x2048"}, {"ratio": "1:1", "resolution": "2k"}),
    ("4k", "4k 4096x4096", 4096, 4096, {"size": "4096x4096"}, {"ratio": "1:1", "resolution": "4k"}),
    (
        "4k-wide",
        "4k wide 6048x2592",
        6048,
        2592,
        {"size": "6048x2592"},
        {"ratio": "21:9", "resolution": "4k"},
    ),
]
FIRST_TARGET_MS = 50.0  # 4k sizes only
CACHED_TARGET_MS = 1.0
FLOOR = "GET /healthz, same connection"


@dataclass
class Settings:
    runs: int = 11


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _generate(client: httpx.Client, fields: dict[str, str], prompt: str) -> str:
    body: dict[str, Any] = {"model": "jimeng-4.5", "prompt": prompt, "n": 1, **fields}
    response = client.post("/v1/images/generations", json=body, headers=HEADERS)
    if response.status_code != 200:
        raise ValueError(f"{response.status_code} {response.text[:200]}")
    url: str = response.json()["data"][0]["url"]
    return url


def _timed_get(client: httpx.Client, url: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = client.get(url)
    return (time.perf_counter() - started) * 1000, response


def _fields_used(
    client: httpx.Client, extra: dict[str, dict[str, Any]], nonce: str
) -> dict[str, dict[str, str]]:
    """The request fields of each size: its explicit size, or its ratio and resolution when
    the mock refuses the size."""
    fields_used: dict[str, dict[str, str]] = {}
    for key, _label, _w, _h, by_size, by_ratio in SIZES:
        try:
            _generate(client, by_size, f"probe {key} {nonce}")
            fields_used[key] = by_size
        except ValueError as exc:
            fields_used[key] = by_ratio
            extra[key]["size_refused"] = str(exc)
        extra[key]["request"] = fields_used[key]
    return fields_used


def _figures(
    settings: Settings,
    first: dict[str, list[float]],
    cached: dict[str, list[float]],
    extra: dict[str, dict[str, Any]],
    floor: list[float],
) -> list[Figure]:
    figures: list[Figure] = []
    tool = f"httpx keep-alive, {settings.runs} runs"
    for key, label, *_ in SIZES:
        target = Target("<", FIRST_TARGET_MS) if key.startswith("4k") else None
        figures.append(
            Figure(
                2,
                f"image.{key}.first",
                f"image {label} first render",
                "ms",
                runs=first[key],
                target=target,
                extra=extra[key],
                floor_runs=floor,
                floor_label=FLOOR,
                tool=tool,
            )
        )
        figures.append(
            Figure(
                2,
                f"image.{key}.cached",
                f"image {label} cached fetch",
                "ms",
                runs=cached[key],
                target=Target("<", CACHED_TARGET_MS),
                note=f"{extra[key].get('png_bytes', 0) / 1024:,.0f} KiB PNG",
                floor_runs=floor,
                floor_label=FLOOR,
                tool=tool,
            )
        )
    return figures


def run(settings: Settings) -> list[Figure]:
    """Per size: POST with a fresh prompt, time the first GET (render), then the second (cache).

    The floor is `GET /healthz` on the same keep-alive connection, between the image fetches;
    `later_fetches_ms` in the JSON has the third to fifth fetches of each URL.
    """
    nonce = uuid.uuid4().hex[:12]
    first: dict[str, list[float]] = {key: [] for key, *_ in SIZES}
    cached: dict[str, list[float]] = {key: [] for key, *_ in SIZES}
    extra: dict[str, dict[str, Any]] = {key: {} for key, *_ in SIZES}
    floor: list[float] = []
    with (
        ServerProcess(mock_cmd()) as mock,
        httpx.Client(base_url=mock.url, timeout=60) as client,
        step(f"images: {len(SIZES)} sizes x {settings.runs} runs"),
    ):
        # Warm up: the connection, the routes, the fonts.
        _timed_get(client, _generate(client, {"size": "1024x1024"}, f"warm-up {nonce}"))
        for _ in range(5):
            _timed_get(client, "/healthz")
        fields_used = _fields_used(client, extra, nonce)
        for run_index in range(settings.runs):
            for key, _label, width, height, _s, _r in SIZES:
                url = _generate(client, fields_used[key], f"bench {key} {run_index} {nonce}")
                ms_first, response = _timed_get(client, url)
                if response.status_code != 200:
                    raise ValueError(f"GET {url}: {response.status_code} {response.text[:200]}")
                if png_size(response.content) != (width, height):
                    raise ValueError(
                        f"GET {url}: {png_size(response.content)} not {width}x{height}"
                    )
                ms_cached, again = _timed_get(client, url)
                if again.status_code != 200 or again.content != response.content:
                    raise ValueError(f"GET {url} again: {again.status_code}, other bytes")
                first[key].append(ms_first)
                cached[key].append(ms_cached)
                extra[key]["png_bytes"] = len(response.content)
                # Later fetches of the same URL, for the record: the steady cached cost.
                repeats = extra[key].setdefault("later_fetches_ms", [])
                repeats += [_timed_get(client, url)[0] for _ in range(3)]
                floor += [_timed_get(client, "/healthz")[0] for _ in range(3)]
    return _figures(settings, first, cached, extra, floor)
