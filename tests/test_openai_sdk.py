"""The mock as the openai SDK sees it: what most users will point at it."""

from __future__ import annotations

import base64
import io
from typing import Any

import openai
import pytest
from PIL import Image

from mockserver import MockServer
from tests.conftest import fetch_png

CAT = (
    "A close-up depiction of a domestic cat in a relaxed state. The cat features vibrant orange "
    "fur, with striking white markings around its eyes that extend down to its soft, pink nose."
)


def test_document_example_text_to_image(client: openai.OpenAI) -> None:
    result = client.images.generate(model="jimeng-4.0", prompt=CAT, n=2, size="1024*1024")

    assert result.created == 1735689600
    assert len(result.data or []) == 2
    for image in result.data or []:
        assert image.revised_prompt == CAT
        assert image.url is not None
        assert fetch_png(image.url)[1] == (1024, 1024)


def test_document_example_reference_image_with_ratio_and_resolution(
    client: openai.OpenAI,
) -> None:
    result = client.images.generate(
        model="jimeng-4.0",
        prompt="Generate a photorealistic image based on the reference image",
        n=1,
        extra_body={
            "image": ["https://example.com/reference.png"],
            "ratio": "16:9",
            "resolution": "2k",
        },
    )

    (image,) = result.data or []
    assert image.url is not None
    assert fetch_png(image.url)[1] == (2560, 1440)


@pytest.mark.parametrize(
    ("extra", "size"),
    [
        ({}, (2048, 2048)),
        ({"ratio": "9:16"}, (1440, 2560)),
        ({"resolution": "1k"}, (1024, 1024)),
        ({"ratio": "21:9", "resolution": "1k"}, (1195, 512)),
    ],
)
def test_ratio_and_resolution_default_to_1_1_and_2k(
    client: openai.OpenAI, extra: dict[str, Any], size: tuple[int, int]
) -> None:
    result = client.images.generate(
        model="jimeng-4.5", prompt="雪山下的湖泊", n=1, extra_body=extra
    )

    (image,) = result.data or []
    assert image.url is not None
    assert fetch_png(image.url)[1] == size


def test_explicit_size_wins_over_ratio_and_resolution(client: openai.OpenAI) -> None:
    result = client.images.generate(
        model="jimeng-4.0",
        prompt="a lighthouse",
        n=1,
        size="1280x720",
        extra_body={"ratio": "1:1", "resolution": "4k"},
    )

    (image,) = result.data or []
    assert image.url is not None
    assert fetch_png(image.url)[1] == (1280, 720)


def test_b64_json_carries_the_same_png_as_the_url(client: openai.OpenAI) -> None:
    request = {"model": "jimeng-4.0", "prompt": "a red kite", "n": 1, "size": "1024x1024"}
    inline = client.images.generate(**request, response_format="b64_json")
    linked = client.images.generate(**request)

    (inline_image,) = inline.data or []
    (linked_image,) = linked.data or []
    assert inline_image.url is None
    assert inline_image.b64_json is not None
    assert linked_image.url is not None
    png = base64.b64decode(inline_image.b64_json)
    with Image.open(io.BytesIO(png)) as decoded:
        assert decoded.size == (1024, 1024)
    assert png == fetch_png(linked_image.url)[0]


def test_unknown_model_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.images.generate(model="dall-e-3", prompt="a cat", n=1)

    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"
    assert "jimeng-4.0" in caught.value.message


def test_n_is_required_as_the_document_says(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="jimeng-4.0", prompt="a cat")

    assert caught.value.code == "missing_required_parameter"
    assert caught.value.param == "n"


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({"n": 16}, "n"),
        ({"n": 1, "size": "1024 * 1024"}, "size"),
        ({"n": 1, "size": "512x512"}, "size"),
        ({"n": 1, "extra_body": {"ratio": "5:4"}}, "ratio"),
        ({"n": 1, "extra_body": {"resolution": "8k"}}, "resolution"),
        (
            {"n": 1, "extra_body": {"image": ["https://a.example/1.png", "file:///x"]}},
            "image[1]",
        ),
        ({"n": 6, "extra_body": {"image": ["https://a.example/1.png"] * 10}}, "n"),
    ],
)
def test_invalid_values_name_the_field(
    client: openai.OpenAI, arguments: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="jimeng-4.0", prompt="a cat", **arguments)

    assert caught.value.status_code == 400
    assert caught.value.code == "invalid_value"
    assert caught.value.param == param


@pytest.mark.parametrize("jimeng_mock_config", [{"api_keys": ["sk-right-key"]}])
def test_a_key_not_configured_is_rejected(jimeng_mock: MockServer) -> None:
    sdk = openai.OpenAI(base_url=jimeng_mock.api_base, api_key="sk-wrong-key", max_retries=0)
    with sdk, pytest.raises(openai.AuthenticationError) as caught:
        sdk.images.generate(model="jimeng-4.0", prompt="a cat", n=1)

    assert caught.value.code == "invalid_api_key"
    assert "sk-wrong-key" not in caught.value.message
    assert jimeng_mock.api_key == "sk-right-key"


@pytest.mark.parametrize("jimeng_mock_config", [{"strict": True}])
def test_strict_mode_rejects_fields_the_document_does_not_define(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(
            model="jimeng-4.0", prompt="a cat", n=1, extra_body={"aspect_ratio": "16:9"}
        )

    assert caught.value.code == "unknown_parameter"
    assert caught.value.param == "aspect_ratio"


def test_lenient_mode_accepts_fields_the_document_does_not_define(client: openai.OpenAI) -> None:
    result = client.images.generate(
        model="jimeng-4.0", prompt="a cat", n=1, size="1024x1024", user="someone", quality="hd"
    )

    assert len(result.data or []) == 1


def test_models_are_listed_and_retrieved(client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == ["jimeng-4.0", "jimeng-4.5"]
    assert client.models.retrieve("jimeng-4.5").id == "jimeng-4.5"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("jimeng-3.0")
    assert caught.value.code == "model_not_found"
