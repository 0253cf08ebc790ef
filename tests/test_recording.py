"""Recording (`--record DIR`): upstream answers written as stub files that a mock with
`--fixtures DIR` replays offline, images and all; and `GET /images/_fixtures/FOLDER/NAME`,
which serves the files of the fixtures folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from mockserver import MockServer
from mockserver.answers.recording import file_name, slug
from mockserver.errors import ConfigError
from tests.test_upstream import BODY, HandServer, answering, post

UPSTREAM_KEY = "sk-upstream-secret-4242"
CLIENT_KEY = "sk-client-secret-1313"


def stub_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json"))


def assert_no_secret(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for secret in (UPSTREAM_KEY, CLIENT_KEY, "Bearer", "authorization"):
                assert secret.encode() not in content, (path, secret)


def test_a_recorded_folder_replays_offline(tmp_path: Path) -> None:
    folder = tmp_path / "recorded"
    body = {**BODY, "n": 2, "prompt": "A red fox, in the snow!"}
    with (
        MockServer(api_keys=[UPSTREAM_KEY]) as upstream,
        MockServer(upstream=upstream.api_base, upstream_api_key=UPSTREAM_KEY, record=folder) as p,
    ):
        live = post(p, body, CLIENT_KEY)
        assert live.status_code == 200
        urls = [item["url"] for item in live.json()["data"]]
        images = [httpx.get(url).content for url in urls]
        record = p.requests[-1]
        assert record.recorded is not None
        assert record.recorded["written"] is True
        assert record.recorded["failures"] == []
        refused = post(p, {**BODY, "n": 99}, CLIENT_KEY)  # an error answer is recorded too
        assert refused.status_code == 400
    files = stub_files(folder)
    assert len(files) == 2
    name = file_name({k: body[k] for k in ("model", "prompt", "n", "size")})
    assert name.startswith("jimeng-4-0-a-red-fox-in-the-snow-")
    assert (folder / name).is_file()
    stub = json.loads((folder / name).read_text())
    assert stub["match"] == {"body": body}
    assert stub["recorded"]["failures"] == []
    assert sorted(p.name for p in (folder / "images").iterdir()) == [
        name.removesuffix(".json") + "-1.png",
        name.removesuffix(".json") + "-2.png",
    ]
    assert_no_secret(folder)
    written = [folder / name, *(folder / "images").iterdir()]
    assert {oct(path.stat().st_mode & 0o777) for path in written} == {"0o644"}

    with MockServer(fixtures=folder) as replay:
        again = post(replay, body)
        assert again.status_code == 200
        data = again.json()["data"]
        assert [{**d, "url": None} for d in data] == [
            {**d, "url": None} for d in live.json()["data"]
        ]
        assert all(d["url"].startswith(replay.url + "/images/_fixtures/images/") for d in data)
        assert [httpx.get(d["url"]).content for d in data] == images
        assert httpx.get(data[0]["url"]).headers["content-type"] == "image/png"
        error = post(replay, {**BODY, "n": 99})
        assert error.status_code == 400
        assert error.json() == refused.json()
        assert replay.requests[0].images == tuple(d["url"] for d in data)


def test_modes_new_all_none(tmp_path: Path) -> None:
    with MockServer() as upstream:
        with MockServer(upstream=upstream.api_base, record=tmp_path / "a") as proxy:
            post(proxy, BODY)
            (only,) = stub_files(tmp_path / "a")
            first = only.read_text()
            post(proxy, BODY)
            assert stub_files(tmp_path / "a") == [only]
            assert only.read_text() == first
            assert proxy.requests[-1].recorded == {
                "file": only.name,
                "written": False,
                "failures": [],
            }
        with MockServer(
            upstream=upstream.api_base, record=tmp_path / "a", record_mode="all"
        ) as proxy:
            post(proxy, BODY)
            assert proxy.requests[-1].recorded is not None
            assert proxy.requests[-1].recorded["written"] is True
            assert stub_files(tmp_path / "a") == [only]
        with MockServer(
            upstream=upstream.api_base, record=tmp_path / "b", record_mode="none"
        ) as proxy:
            post(proxy, BODY)
            assert proxy.requests[-1].recorded is None
            assert not (tmp_path / "b").exists()
    leftovers = [p for p in (tmp_path / "a").rglob(".*")]
    assert leftovers == []  # no temporary file stays behind


def test_a_failed_download_is_noted(tmp_path: Path) -> None:
    payload: dict[str, Any] = {"created": 1, "data": []}
    with HandServer(answering(200, payload)) as up:
        payload["data"] = [
            {"url": up.url + "/files/gone.png"},  # the hand app answers it with JSON, 200
            {"url": "http://127.0.0.1:9/nothing.png"},
            {"url": "ftp://example/x.png"},
        ]
        with MockServer(upstream=up.api_base, record=tmp_path) as proxy:
            assert post(proxy, BODY).status_code == 200
            recorded = proxy.requests[-1].recorded
    assert recorded is not None
    failures = recorded["failures"]
    assert [f["index"] for f in failures] == [2, 3]
    assert "not an http(s) URL" in failures[1]["error"]
    (stub,) = stub_files(tmp_path)
    content = json.loads(stub.read_text())
    assert content["recorded"]["failures"] == failures
    urls = [d["url"] for d in content["response"]["body"]["data"]]
    assert urls[0].startswith("{{file:images/")
    assert urls[1:] == ["http://127.0.0.1:9/nothing.png", "ftp://example/x.png"]


def test_the_fixtures_route_serves_only_files_of_the_folder(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"png bytes")
    (tmp_path / "images" / ".hidden.png").write_bytes(b"hidden")
    (tmp_path / "secret.txt").write_text("outside")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    outside.write_text("outside the folder")
    os.symlink(outside, tmp_path / "images" / "link.txt")
    with MockServer(fixtures=tmp_path) as mock:
        assert httpx.get(mock.url + "/images/_fixtures/images/a.png").content == b"png bytes"
        for path in (
            "/images/_fixtures/images/.hidden.png",
            "/images/_fixtures/images/link.txt",
            "/images/_fixtures/images/missing.png",
            "/images/_fixtures/images/..%2F..%2Fsecret.txt",
            "/images/_fixtures/../secret.txt",
            "/images/_fixtures/%2E%2E/secret.txt",
            "/images/_fixtures/images/%2E%2E",
        ):
            answer = httpx.get(mock.url + path)
            assert answer.status_code == 404, path
            assert b"outside" not in answer.content
    with MockServer() as plain:
        assert httpx.get(plain.url + "/images/_fixtures/images/a.png").status_code == 404


@pytest.mark.parametrize("path", ["../x.png", "images/../x.png", "/etc/passwd", "x.png", ".a/b"])
def test_a_file_placeholder_must_be_a_file_of_a_folder(tmp_path: Path, path: str) -> None:
    stub = {"match": {}, "response": {"status": 200, "body": {"url": "{{file:" + path + "}}"}}}
    (tmp_path / "s.json").write_text(json.dumps(stub))
    with pytest.raises(ConfigError, match="FOLDER/NAME"):
        MockServer(fixtures=tmp_path)


def test_slug() -> None:
    assert slug("A red fox, in the snow!") == "a-red-fox-in-the-snow"
    assert slug("猫") == ""
    assert len(slug("word " * 40)) <= 40
    assert file_name({"prompt": "猫"}).startswith("model-request-")


def test_an_answer_the_stub_format_cannot_hold_is_not_recorded(tmp_path: Path) -> None:
    payload = {"created": 1, "data": [{"b64_json": "", "revised_prompt": "a {{mystery}}"}]}
    with (
        HandServer(answering(200, payload)) as up,
        MockServer(upstream=up.api_base, record=tmp_path) as proxy,
    ):
        answer = post(proxy, BODY)
        assert answer.json() == payload  # the client's answer is the upstream's all the same
        recorded = proxy.requests[-1].recorded
    assert recorded is not None
    assert recorded["written"] is False
    assert "unknown placeholder" in recorded["error"]
    assert stub_files(tmp_path) == []


def test_the_sdk_records_through_the_proxy_and_replays_offline(tmp_path: Path) -> None:
    """The openai SDK, as a user runs it: a proxy records, the upstream goes away, a mock of
    the folder answers the same call with the same images."""
    folder = tmp_path / "recorded"
    call = {"model": "jimeng-4.5", "prompt": "一只猫 in a hat", "n": 2, "size": "2048x2048"}
    upstream = MockServer(api_keys=[UPSTREAM_KEY]).start()
    try:
        with (
            MockServer(
                upstream=upstream.api_base, upstream_api_key=UPSTREAM_KEY, record=folder
            ) as p,
            openai.OpenAI(base_url=p.api_base, api_key=CLIENT_KEY, max_retries=0) as client,
        ):
            live = client.images.generate(**call)
        live_bytes = [httpx.get(str(image.url)).content for image in live.data or []]
    finally:
        upstream.stop()
    assert len(live_bytes) == 2

    with (
        MockServer(fixtures=folder) as replay,
        openai.OpenAI(base_url=replay.api_base, api_key="sk-any-key-0000", max_retries=0) as sdk,
    ):
        again = sdk.images.generate(**call)
        assert [image.revised_prompt for image in again.data or []] == [
            image.revised_prompt for image in live.data or []
        ]
        assert [httpx.get(str(image.url)).content for image in again.data or []] == live_bytes
    assert_no_secret(folder)
