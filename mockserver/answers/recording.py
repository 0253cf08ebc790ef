"""Recording (`--record DIR`, with `--upstream`): each upstream answer to a generation request
written to DIR as a stub file in the `--fixtures` format, so `jimeng-mock --fixtures DIR`
answers the same request the same way, offline.

A stub file matches on the body fields that decide the answer (`MATCHED`, those the request
has) and keeps the status, the headers the proxy hands on (`upstream.PASSED_HEADERS`,
`x-ratelimit-*`) and the body; error answers too. The images the answer's URLs point at
(http or https, at most IMAGE_LIMIT bytes each, IMAGE_TIMEOUT seconds) are downloaded into
`DIR/images/`, and the recorded body has `{{file:images/NAME}}` in their place, which the
replaying mock answers with a URL of its own (`GET /images/_fixtures/images/NAME`). An
image that could not be downloaded keeps its URL, and is listed in the file's
`recorded.failures` and in the journal's `recorded`. Nothing of the request's headers is
written: no key, no cookie. An answer whose text the stub format would read as an unknown
placeholder (`{{...}}`), or a file that cannot be written, is not recorded, and the
journal's `recorded.error` says why: the answer itself is unchanged. Gateway errors (the
upstream unreachable, too slow, not JSON) are not answers of the upstream: not recorded.

The file is `<model>-<slug of the prompt, 40 characters>-<8 hex of the SHA-256 of the matched
fields>.json`: the same request is one file. Mode `new` keeps a file already there, `all`
overwrites it, `none` records nothing. Every file is written to a temporary file in its
folder, then moved in place (`os.replace`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mockserver.answers.stubs import HEADER_VALUE, TOKEN, check_placeholders
from mockserver.answers.upstream import Upstream, UpstreamAnswer

MATCHED = ("model", "prompt", "n", "size", "ratio", "resolution", "image", "response_format")
IMAGE_LIMIT = 20 * 1024 * 1024
IMAGE_TIMEOUT = 30.0
IMAGES = "images"
SLUG_LENGTH = 40
EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}


def slug(text: str, length: int = SLUG_LENGTH) -> str:
    """Lower-case ASCII letters and digits, runs of anything else one '-'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:length].strip("-")


def matched_fields(body: dict[str, Any], fields: Sequence[str] = MATCHED) -> dict[str, Any]:
    """The fields a recorded stub matches on: an object is left out, as a matcher that is
    an object is a regex (Ark's `sequential_image_generation_options`)."""
    return {
        name: body[name] for name in fields if name in body and not isinstance(body[name], dict)
    }


def file_name(match: dict[str, Any]) -> str:
    text = json.dumps(match, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    model = slug(str(match.get("model", "")), 60) or "model"
    prompt = slug(str(match.get("prompt", ""))) or "request"
    return f"{model}-{prompt}-{digest}.json"


RECORDED_MODE = 0o644


def write_atomic(path: Path, content: bytes) -> None:
    """`content` in a temporary file of `path`'s folder, then moved in place, readable by all
    as a file committed to a repository is (mkstemp makes it 0600)."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".recording-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
        os.chmod(temporary, RECORDED_MODE)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class Recorder:
    def __init__(self, directory: Path, mode: str, upstream: Upstream) -> None:
        self.directory = directory
        self.mode = mode
        self.upstream = upstream
        if mode != "none":
            directory.mkdir(parents=True, exist_ok=True)

    async def record(
        self, body: dict[str, Any], got: UpstreamAnswer, fields: Sequence[str] = MATCHED
    ) -> dict[str, Any] | None:
        """Write the stub file of `got`, the answer to `body` (matching its `fields`: a
        dialect's own); what the journal notes of it."""
        if self.mode == "none":
            return None
        match = matched_fields(body, fields)
        name = file_name(match)
        path = self.directory / name
        if self.mode == "new" and path.exists():
            return {"file": name, "written": False, "failures": []}
        answer, failures = await self.images(got.payload, name.removesuffix(".json"))
        headers = {
            key: value
            for key, value in got.headers.items()
            if TOKEN.fullmatch(key) and HEADER_VALUE.fullmatch(value)
        }
        stub = {
            "description": f"recorded from {self.upstream.base}",
            "recorded": {
                "upstream": self.upstream.base,
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "failures": failures,
            },
            "match": {"body": match},
            "response": {"status": got.status, "headers": headers, "body": answer},
        }
        note: dict[str, Any] = {"file": name, "written": False, "failures": failures}
        try:
            check_placeholders(answer, "response.body")
        except ValueError as exc:
            # The stub format would read text of the answer as a placeholder it does not know.
            note["error"] = f"not recorded: {exc}"
            return note
        text = json.dumps(stub, indent=2, ensure_ascii=False) + "\n"
        try:
            write_atomic(path, text.encode("utf-8"))
        except OSError as exc:
            note["error"] = f"not recorded: {exc}"
            return note
        return {**note, "written": True}

    async def images(self, payload: Any, stem: str) -> tuple[Any, list[dict[str, Any]]]:
        """The answer with each image URL of its `data` replaced by `{{file:images/...}}`, its
        image downloaded; and the images that could not be."""
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            return payload, []
        failures: list[dict[str, Any]] = []
        entries: list[Any] = []
        for index, item in enumerate(data, start=1):
            url = item.get("url") if isinstance(item, dict) else None
            if not isinstance(url, str):
                entries.append(item)
                continue
            try:
                local = await self.download(url, f"{stem}-{index}")
            except (OSError, ValueError) as exc:  # TimeoutError is an OSError
                failures.append({"index": index, "url": url, "error": str(exc)})
                entries.append(item)
                continue
            entries.append({**item, "url": "{{file:" + local + "}}"})
        return {**payload, "data": entries}, failures

    async def download(self, url: str, stem: str) -> str:
        """The image at `url` saved in DIR/images/; its path there. ValueError, OSError if not."""
        import httpx

        if not url.lower().startswith(("http://", "https://")):
            raise ValueError("not an http(s) URL")
        client = await self.upstream.client()
        try:
            async with (
                asyncio.timeout(IMAGE_TIMEOUT),
                client.stream("GET", url, timeout=IMAGE_TIMEOUT) as response,
            ):
                if response.status_code != 200:
                    raise ValueError(f"the image's URL answered {response.status_code}")
                kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > IMAGE_LIMIT:
                        raise ValueError(f"the image is larger than {IMAGE_LIMIT} bytes")
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise ValueError(f"cannot download the image: {type(exc).__name__}") from None
        local = f"{IMAGES}/{stem}{EXTENSIONS.get(kind, '.bin')}"
        (self.directory / IMAGES).mkdir(exist_ok=True)
        write_atomic(self.directory / local, b"".join(chunks))
        return local
