"""Security defaults: loopback only, the admin routes closed beyond it, keys never shown."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import openai
import pytest

from mockserver import MockServer
from mockserver.config import MockConfig
from mockserver.errors import ConfigError

ADMIN = ["/__admin/", "/__admin/requests", "/__admin/faults", "/__admin/stubs"]
TOKEN = "admin-token-1234"
SECRET_KEY = "sk-live-0123456789abcdef-SECRETTAIL"


def test_the_mock_binds_loopback_by_default() -> None:
    with MockServer() as server:
        assert server.host == "127.0.0.1"
        assert server.config.loopback


@pytest.fixture(scope="module")
def open_to_all() -> Iterator[MockServer]:
    with MockServer(host="0.0.0.0") as server:
        yield server


@pytest.mark.parametrize("path", ADMIN)
def test_beyond_loopback_the_admin_routes_are_closed(open_to_all: MockServer, path: str) -> None:
    response = httpx.get(f"http://127.0.0.1:{open_to_all.port}{path}")

    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "admin_forbidden"
    assert "--admin-token" in error["message"]
    assert "0.0.0.0" in error["message"]


def test_beyond_loopback_the_api_still_serves(open_to_all: MockServer) -> None:
    with openai.OpenAI(
        base_url=f"http://127.0.0.1:{open_to_all.port}/v1", api_key="sk-x", max_retries=0
    ) as client:
        answer = client.images.generate(model="jimeng-4.5", prompt="open", n=1)
    assert answer.data
    reset = httpx.post(f"http://127.0.0.1:{open_to_all.port}/__admin/reset")
    assert reset.status_code == 403
    assert len(open_to_all.requests) >= 1  # nothing was reset


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_with_a_token_the_admin_routes_want_it(host: str) -> None:
    with MockServer(host=host, admin_token=TOKEN) as server:
        base = f"http://127.0.0.1:{server.port}"
        for path in ADMIN:
            assert httpx.get(base + path).status_code == 403, path
            wrong = httpx.get(base + path, headers={"X-Admin-Token": TOKEN + "x"})
            assert wrong.status_code == 403, path
            assert "does not match" in wrong.json()["error"]["message"]
            right = httpx.get(base + path, headers={"X-Admin-Token": TOKEN})
            assert right.status_code == 200, path
        reset = httpx.post(base + "/__admin/reset", headers={"X-Admin-Token": TOKEN})
        # What else a reset reports is the admin API's; here, only that the token let it run.
        assert reset.status_code == 200
        assert reset.json()["reset"] is True


@pytest.mark.parametrize(("host", "loopback"), [("::1", True), ("127.0.0.2", True), ("::", False)])
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    assert MockConfig(host=host).loopback is loopback


def test_a_short_admin_token_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 8"):
        MockConfig(admin_token="short")


def test_api_keys_never_reach_the_journal_the_page_or_the_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # With uvicorn's access log on too (off by default): a line per request, keys in none.
    with MockServer(
        api_keys=["sk-the-only-good-key"], log_level="debug", access_log=True
    ) as server:
        with (
            openai.OpenAI(base_url=server.api_base, api_key=SECRET_KEY, max_retries=0) as sdk,
            pytest.raises(openai.AuthenticationError) as refused,
        ):
            sdk.images.generate(model="jimeng-4.5", prompt="p", n=1)
        with openai.OpenAI(
            base_url=server.api_base, api_key="sk-the-only-good-key", max_retries=0
        ) as sdk:
            sdk.images.generate(model="jimeng-4.5", prompt="p", n=1)
            sdk.images.generate(model="jimeng-4.5", prompt="p", n=1)  # the same body again
        httpx.get(server.url + "/v1/models", headers={"Cookie": f"session={SECRET_KEY}"})

        journal = httpx.get(server.url + "/__admin/requests").text
        page = httpx.get(server.url + "/__admin/").text
        records = json.dumps([r.to_json() for r in server.requests])

    shown = {
        "error message": str(refused.value),
        "journal": journal,
        "page": page,
        "records": records,
        "logs": caplog.text,
    }
    for secret in (SECRET_KEY, "sk-the-only-good-key", SECRET_KEY[-12:]):
        for where, text in shown.items():
            assert secret not in text, f"{secret!r} shown in the {where}"
    assert "...TAIL" in journal  # the last 4 characters tell keys apart
    assert "GET /v1/models" in caplog.text  # the logs were captured at all
