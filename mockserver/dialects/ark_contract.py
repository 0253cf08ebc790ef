"""What an Ark request asks, by Ark's rules: its schema (`schemas/dialects/ark/
request.schema.json`), its model's size rules (`models.json`), its reference images and its
counts. A request that breaks one is an ApiError naming the field, which Ark's envelope
(`errors.json`) answers with Ark's code."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import ValidationError

from mockserver.contract.schemas import validator_for
from mockserver.contract.validation import param_path
from mockserver.dialects import ark_references
from mockserver.errors import ApiError
from mockserver.paths import data_dir

MAX_REFERENCES = 14
MAX_IMAGES = 15  # references and generated images together
_SIZE = re.compile(r"([1-9][0-9]{0,5})x([1-9][0-9]{0,5})")


def ark_dir() -> Path:
    return data_dir() / "dialects" / "ark"


@dataclass(frozen=True)
class ArkModel:
    name: str
    presets: Mapping[str, tuple[int, int]]
    min_pixels: int
    max_pixels: int


@dataclass(frozen=True)
class ArkRules:
    """The model catalogue and the request schema of Ark's dialect, read once."""

    models: Mapping[str, ArkModel]
    default_size: str
    max_aspect: float
    schema: Mapping[str, Any]
    codes: Mapping[str, tuple[str, str]]  # the mock's code: Ark's code and type

    @functools.cached_property
    def validator(self) -> Any:
        return validator_for(self.schema)

    @classmethod
    def load(cls) -> ArkRules:
        def read(name: str) -> Any:
            return json.loads((ark_dir() / name).read_text(encoding="utf-8"))

        catalogue, errors = read("models.json"), read("errors.json")
        models = {
            name: ArkModel(
                name,
                {k: (int(v[0]), int(v[1])) for k, v in entry["presets"].items()},
                int(entry["min_pixels"]),
                int(entry["max_pixels"]),
            )
            for name, entry in catalogue["models"].items()
        }
        codes = {k: (str(v["code"]), str(v["type"])) for k, v in errors["codes"].items()}
        return cls(
            models,
            str(catalogue["default_size"]),
            float(catalogue["max_aspect_ratio"]),
            read("request.schema.json"),
            codes,
        )


@dataclass(frozen=True)
class ArkGeneration:
    """A request that passed Ark's rules."""

    model: str
    prompt: str
    width: int
    height: int
    images: tuple[str, ...]
    count: int  # the images the mock generates
    response_format: str
    watermark: bool
    kind: str  # "jpeg" or "png"
    stream: bool = False

    @functools.cached_property
    def seed(self) -> str:
        key = [self.model, self.prompt, self.width, self.height, list(self.images)]
        return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]


def checked(rules: ArkRules, request: Mapping[str, Any]) -> ArkGeneration:
    """The generation `request` asks for; an ApiError for the first rule it breaks."""
    body = {k: v for k, v in request.items() if v is not None}
    for name in ("model", "prompt"):
        if name not in body:
            raise ApiError("missing_required_parameter", param=name)
    model = body["model"]
    if isinstance(model, str) and model not in rules.models:
        raise ApiError(
            "model_not_found", param="model", value=model, allowed=", ".join(rules.models)
        )
    errors = list(rules.validator.iter_errors(body))
    if errors:
        raise _schema_error(min(errors, key=lambda e: [str(p) for p in e.absolute_path]))
    chosen = rules.models[model]
    width, height = _size(rules, chosen, body.get("size", rules.default_size))
    images = _references(body.get("image"))
    count = 1
    if body.get("sequential_image_generation") == "auto":
        options = body.get("sequential_image_generation_options") or {}
        count = min(options.get("max_images") or MAX_IMAGES, MAX_IMAGES - len(images))
    return ArkGeneration(
        model=model,
        prompt=body["prompt"],
        width=width,
        height=height,
        images=images,
        count=count,
        response_format=body.get("response_format", "url"),
        watermark=body.get("watermark", True),
        kind=body.get("output_format", "jpeg"),
        stream=body.get("stream", False),
    )


@functools.cache
def rules() -> ArkRules:
    """The rules of the data files (read once: they are not options)."""
    return ArkRules.load()


def _schema_error(error: ValidationError) -> ApiError:
    param = param_path(list(error.absolute_path))
    message = str(error.message)
    detail = message if len(message) <= 200 else message[:197] + "..."
    return ApiError("invalid_value", param=param, detail=detail)


def _size(rules: ArkRules, model: ArkModel, size: str) -> tuple[int, int]:
    """A preset of the model, or WIDTHxHEIGHT within its bounds."""
    if size in model.presets:
        return model.presets[size]
    found = _SIZE.fullmatch(size)
    presets = ", ".join(model.presets)
    if found is None:
        raise ApiError(
            "invalid_value",
            param="size",
            detail=f"{size!r} is neither a preset of {model.name} ({presets}) nor WIDTHxHEIGHT",
        )
    width, height = int(found[1]), int(found[2])
    pixels = width * height
    if not model.min_pixels <= pixels <= model.max_pixels:
        raise ApiError(
            "invalid_value",
            param="size",
            detail=f"{size} is {pixels:,} pixels; {model.name} makes "
            f"{model.min_pixels:,} to {model.max_pixels:,}",
        )
    if max(width, height) / min(width, height) > rules.max_aspect:
        raise ApiError(
            "invalid_value",
            param="size",
            detail=f"the aspect ratio of {size} is beyond 1:{rules.max_aspect:g}",
        )
    return width, height


def _references(image: str | list[str] | None) -> tuple[str, ...]:
    """The reference images, each checked; at most MAX_REFERENCES."""
    if image is None:
        return ()
    images = [image] if isinstance(image, str) else list(image)
    if len(images) > MAX_REFERENCES:
        raise ApiError(
            "invalid_value",
            param="image",
            detail=f"{len(images)} reference images; at most {MAX_REFERENCES}",
        )
    for index, reference in enumerate(images):
        why = ark_references.problem(reference)
        if why is not None:
            param = "image" if isinstance(image, str) else f"image[{index}]"
            raise ApiError("invalid_value", param=param, detail=why)
    return tuple(images)
