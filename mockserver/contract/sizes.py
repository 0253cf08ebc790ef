"""Pixel sizes: the ratio x resolution table and the bounds of an explicit size, from sizes.json."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mockserver.contract.schemas import read_data_file
from mockserver.errors import ApiError, ConfigError


@dataclass(frozen=True)
class SizeBounds:
    min_pixels: int
    max_pixels: int
    max_aspect_ratio: float

    def check(self, width: int, height: int) -> str | None:
        """Why an explicit WIDTHxHEIGHT is out of bounds, or None when it is within them."""
        pixels = width * height
        aspect = max(width, height) / min(width, height)
        if self.min_pixels <= pixels <= self.max_pixels and aspect <= self.max_aspect_ratio:
            return None
        return (
            f"{width}x{height} is {pixels:,} pixels with an aspect ratio of {aspect:.3g}:1; "
            f"total pixels must be between {self.min_pixels:,} and {self.max_pixels:,} "
            f"and the aspect ratio at most {self.max_aspect_ratio:g}:1"
        )


class SizeTable:
    def __init__(
        self,
        table: Mapping[str, Mapping[str, tuple[int, int]]],
        *,
        default_ratio: str,
        default_resolution: str,
        bounds: SizeBounds,
    ) -> None:
        self.table = {ratio: dict(row) for ratio, row in table.items()}
        self.ratios = tuple(self.table)
        self.resolutions = tuple(dict.fromkeys(res for row in self.table.values() for res in row))
        self.default_ratio = default_ratio
        self.default_resolution = default_resolution
        self.bounds = bounds
        self._sizes = {size for row in self.table.values() for size in row.values()}
        if default_resolution not in self.table.get(default_ratio, {}):
            raise ConfigError(
                f"the default {default_ratio} at {default_resolution} is not in the size table"
            )

    @classmethod
    def from_file(cls, path: Path) -> SizeTable:
        data = read_data_file(path, "sizes.schema.json", "size table")
        bounds = data["explicit_size_bounds"]
        return cls(
            {
                r: {res: (wh[0], wh[1]) for res, wh in row.items()}
                for r, row in data["table"].items()
            },
            default_ratio=data["defaults"]["ratio"],
            default_resolution=data["defaults"]["resolution"],
            bounds=SizeBounds(
                bounds["min_pixels"], bounds["max_pixels"], bounds["max_aspect_ratio"]
            ),
        )

    def issuable(self, width: int, height: int) -> bool:
        """Whether a request could get an image of this size: in the table or the bounds."""
        return (width, height) in self._sizes or self.bounds.check(width, height) is None

    def resolve(self, body: Mapping[str, Any]) -> tuple[int, int]:
        """Width and height of a valid request: an explicit size wins over ratio x resolution."""
        size = body.get("size")
        if size is not None:
            width, height = (int(part) for part in size.replace("x", "*").split("*"))
            problem = self.bounds.check(width, height)
            if problem:
                raise ApiError("invalid_value", param="size", detail=problem)
            return width, height
        ratio = body.get("ratio", self.default_ratio)
        resolution = body.get("resolution", self.default_resolution)
        row = self.table[ratio]
        if resolution not in row:
            offered = ", ".join(r for r, res in self.table.items() if resolution in res)
            raise ApiError(
                "invalid_value",
                param="ratio",
                detail=f"{ratio} is not offered at resolution {resolution}; "
                f"ratios offered at {resolution}: {offered}",
            )
        return row[resolution]
