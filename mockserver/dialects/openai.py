"""The OpenAI-compatible dialect of the seed document: `/v1/images/generations` and the
model routes. Its request schema, model list and size rules are the contract's files
(`schemas/images-generations.request.json`, `schemas/sizes.json`), its answers the
endpoints' (`mockserver.web.endpoints`, `mockserver.web.proxy`), its errors the
catalogue's own envelope `{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations

from mockserver.web import endpoints, proxy
from mockserver.web.dialect import Dialect
from mockserver.web.pipeline import api
from mockserver.web.routes import BODY, GENERATIONS, RouteSpec, api_route

ROUTES: tuple[RouteSpec, ...] = (
    api_route(
        GENERATIONS,
        "POST",
        api(endpoints.generate_images, proxy.generate_images),
        "createImages",
        "invalid_api_key",
        "rate_limit_exceeded",
        *BODY,
        "missing_required_parameter",
        "invalid_value",
        "unknown_parameter",  # --strict only; left out of a lenient mock's document
        "model_not_found",
        "stub_error",
        "server_busy",  # b64_json, when more renders wait than --render-queue allows
        "server_error",
    ),
    api_route(
        "/v1/models",
        "GET",
        api(endpoints.list_models, proxy.list_models),
        "listModels",
        "invalid_api_key",
        "rate_limit_exceeded",
    ),
    api_route(
        "/v1/models/{model}",
        "GET",
        api(endpoints.retrieve_model, proxy.retrieve_model),
        "retrieveModel",
        "invalid_api_key",
        "rate_limit_exceeded",
        "model_not_found",
        "not_found",  # an empty or slashed model makes a URL no route has
    ),
)

DIALECT = Dialect("openai", "/v1/", ROUTES)
