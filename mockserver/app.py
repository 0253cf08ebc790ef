"""The ASGI app: every route of the mock, from the HTTP request to the JSON or the PNG."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mockserver.config import MockConfig, data_dir
from mockserver.contract import RequestContract, json_type
from mockserver.errors import ApiError, ErrorCatalogue
from mockserver.images import ImageSigner, ImageSpec, render_spec
from mockserver.sizes import SizeTable

OWNER = "jimeng"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def create_app(config: MockConfig | None = None, **options: Any) -> Starlette:
    """The mock as an ASGI app. Pass a `MockConfig`, or its fields as keyword arguments."""
    if config is not None and options:
        raise TypeError("pass either a MockConfig or keyword options, not both")
    config = config or MockConfig(**options)
    catalogue = ErrorCatalogue.from_file(config.errors_file)
    sizes = SizeTable.from_file(config.sizes_file, data_dir() / "sizes.schema.json")
    contract = RequestContract.from_dir(data_dir(), sizes, strict=config.strict)
    signer = ImageSigner(config.secret)

    def authenticate(request: Request) -> None:
        header = request.headers.get("authorization")
        if header is None:
            raise ApiError("invalid_api_key", detail="No API key provided.")
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise ApiError(
                "invalid_api_key", detail="The Authorization header is not 'Bearer <key>'."
            )
        if config.api_keys and key not in config.api_keys:
            shown = f"...{key[-4:]}" if len(key) > 8 else "****"
            raise ApiError("invalid_api_key", detail=f"Incorrect API key provided: {shown}.")

    async def read_json_object(request: Request) -> dict[str, Any]:
        content_type = request.headers.get("content-type")
        media_type = (content_type or "").split(";")[0].strip().lower()
        if media_type != "application/json":
            shown = repr(content_type) if content_type else "(none)"
            raise ApiError("unsupported_media_type", content_type=shown)

        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > config.max_body:
            raise ApiError("request_too_large", limit=config.max_body)
        chunks: list[bytes] = []
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > config.max_body:
                raise ApiError("request_too_large", limit=config.max_body)
            chunks.append(chunk)

        try:
            text = b"".join(chunks).decode("utf-8")
            body = json.loads(text, parse_constant=_reject_constant)
            if _SURROGATE_ESCAPE.search(text):
                # "\ud800" alone parses, but is no character: it could not be answered in UTF-8.
                json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApiError("invalid_json", detail=f"it is not UTF-8 ({exc.reason})") from None
        except UnicodeEncodeError:
            raise ApiError(
                "invalid_json", detail="it has an unpaired surrogate escape (\\ud800 to \\udfff)"
            ) from None
        except RecursionError:
            raise ApiError("invalid_json", detail="it is nested too deeply") from None
        except ValueError as exc:
            raise ApiError("invalid_json", detail=str(exc)) from None
        if not isinstance(body, dict):
            raise ApiError(
                "invalid_json", detail=f"expected an object at the top, got {json_type(body)}"
            )
        return body

    async def generate_images(request: Request) -> Response:
        authenticate(request)
        generation = contract.validate(await read_json_object(request))
        specs = [
            ImageSpec(generation.model, generation.width, generation.height, generation.seed, i)
            for i in range(1, generation.n + 1)
        ]
        if generation.response_format == "b64_json":
            data = [
                {
                    "b64_json": base64.b64encode(
                        await run_in_threadpool(render_spec, spec)
                    ).decode(),
                    "revised_prompt": generation.prompt,
                }
                for spec in specs
            ]
        else:
            base = config.public_url or str(request.base_url).rstrip("/")
            data = [
                {"url": base + signer.path(spec), "revised_prompt": generation.prompt}
                for spec in specs
            ]
        return JSONResponse({"created": config.created_at(), "data": data})

    def model_object(model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": config.created_at(), "owned_by": OWNER}

    async def list_models(request: Request) -> Response:
        authenticate(request)
        return JSONResponse({"object": "list", "data": [model_object(m) for m in contract.models]})

    async def retrieve_model(request: Request) -> Response:
        authenticate(request)
        model = request.path_params["model"]
        if model not in contract.models:
            raise contract.unknown_model(model)
        return JSONResponse(model_object(model))

    async def get_image(request: Request) -> Response:
        spec = signer.parse(**request.path_params)
        headers = {
            "ETag": signer.etag(spec),
            "Cache-Control": "public, max-age=31536000, immutable",
        }
        wanted = _etags(request.headers.get("if-none-match"))
        if headers["ETag"] in wanted or "*" in wanted:
            return Response(status_code=304, headers=headers)
        png = await run_in_threadpool(render_spec, spec)
        return Response(png, media_type="image/png", headers=headers)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return catalogue.response(exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        method, path = request.method, request.url.path
        if exc.status_code == 405:
            # Starlette keeps a route's methods in a set: sort them so the answer is stable.
            allowed = ", ".join(sorted((exc.headers or {}).get("Allow", "").split(", ")))
            error = ApiError(
                "method_not_allowed",
                headers={"Allow": allowed},
                method=method,
                path=path,
                allowed=allowed,
            )
        else:
            error = ApiError("not_found", method=method, path=path)
        return catalogue.response(error)

    async def on_server_error(request: Request, exc: Exception) -> Response:
        return catalogue.response(ApiError("server_error", detail=type(exc).__name__))

    routes = [
        Route("/v1/images/generations", generate_images, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model}", retrieve_model, methods=["GET"]),
        Route("/images/{model}/{size}/{name}", get_image, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            ApiError: on_api_error,
            HTTPException: on_http_error,
            Exception: on_server_error,
        },
    )
    # A slash too many is an unknown URL, as on the real service, not a redirect.
    app.router.redirect_slashes = False
    return app


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}
