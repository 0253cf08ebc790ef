"""The contract cases: read from their files, sent to a service over HTTP, and judged.

A case is one request and what the mock answers to it (fixtures/contract/*.json in the
repository, `mockserver/_data/contract/` in a wheel; their format is fixtures/contract.schema.json).
`jimeng-mock conform` sends the cases to any service and reports where it disagrees;
tests/test_contract_cases.py sends each to a mock and fails on any difference. Both judge alike
what a case says about the API: the status, the error's code and param, the headers it names
and the size of every image. A mock is also held to what it promises of itself (`MockPromises`):
its own messages and `X-Mock-*` headers, its timestamps, bodies that match its schemas.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from PIL import Image

from mockserver.contract import schemas
from mockserver.paths import case_schema_file

if TYPE_CHECKING:
    import httpx
    from jsonschema import Draft202012Validator

# A case's path when it names none, and the API base of a case file that names none
# (fixtures/contract.schema.json).
GENERATIONS = "/v1/images/generations"
DEFAULT_API = "/v1"
# Server options that only add routes, which a real service may have too: conform runs the
# cases that ask for them.
ROUTE_OPTIONS = frozenset({"ark"})
MOCK_ONLY_PATHS = ("/healthz", "/openapi.json")
MOCK_ONLY_PREFIXES = ("/__admin/", "/images/")
MOCK_HEADERS = "x-mock-"  # the prefix of the mock's own headers, in requests and answers
ERROR_SCHEMA = "error.response.json"
# The schema of a successful answer, by the route a case asks: a route of another API dialect
# adds its own.
ANSWER_SCHEMAS = {GENERATIONS: "images-generations.response.json"}


# ------------------------------------------------------------------------------ the cases


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _mock_header(name: object) -> bool:
    return str(name).lower().startswith(MOCK_HEADERS)


@dataclass(frozen=True)
class Case:
    """One case: `<file stem>::<name>`, the case as its file has it, and how it fails the case
    schema (a case with problems is not to be sent)."""

    id: str
    spec: Any
    problems: tuple[str, ...] = ()
    api: str = DEFAULT_API  # the API base its path is under (its file's `api`)

    @property
    def request(self) -> Mapping[str, Any]:
        return _mapping(_mapping(self.spec).get("request"))

    @property
    def expect(self) -> Mapping[str, Any]:
        return _mapping(_mapping(self.spec).get("expect"))

    @property
    def server(self) -> Mapping[str, Any]:
        """The options (`MockConfig` fields) of the mock that answers as the case says."""
        return _mapping(_mapping(self.spec).get("server"))

    @property
    def method(self) -> str:
        return str(self.request.get("method", "POST"))

    @property
    def path(self) -> str:
        return str(self.request.get("path", GENERATIONS))

    @property
    def expected(self) -> dict[str, Any]:
        """What the case says of the API, which any service is held to: the status, the error's
        code and param, the headers it names but the mock's own, the [width, height] of every
        image."""
        expect = self.expect
        out: dict[str, Any] = {"status": expect.get("status")}
        if "error" in expect:
            error = _mapping(expect["error"])
            out["error"] = {"code": error.get("code"), "param": error.get("param")}
        headers = {k: v for k, v in _mapping(expect.get("headers")).items() if not _mock_header(k)}
        if headers:
            out["headers"] = headers
        if "images" in expect:
            images = expect["images"]
            out["images"] = [list(s) for s in images] if isinstance(images, list) else images
        return out

    @property
    def generates(self) -> bool:
        """Whether the mock answers this case with images (a cost on a real service)."""
        status = self.expected["status"]
        return (
            self.method == "POST" and self.path in ANSWER_SCHEMAS and isinstance(status, int)
        ) and status < 400

    @property
    def mock_only(self) -> bool:
        """Whether the case asks for a route or sends a header (`X-Mock-*`) of the mock's own."""
        path = self.path.split("?", 1)[0]
        if path in MOCK_ONLY_PATHS or path.startswith(MOCK_ONLY_PREFIXES):
            return True
        return any(_mock_header(name) for name in _mapping(self.request.get("headers")))

    @property
    def mock_options(self) -> list[str]:
        """The server options the case needs that change what a mock answers (not those
        that only add a route)."""
        return sorted(set(self.server) - ROUTE_OPTIONS)

    @property
    def takes_any_key(self) -> bool:
        """Whether the case succeeds with a key of its own: a mock without api_keys takes any
        key, a real service only its own."""
        headers = {str(k).lower(): v for k, v in _mapping(self.request.get("headers")).items()}
        return bool(headers.get("authorization")) and self.expected["status"] == 200


@dataclass(frozen=True)
class CaseFile:
    """The cases of one file, and how the file fails the case schema (or is not JSON)."""

    path: Path
    cases: tuple[Case, ...]
    problems: tuple[str, ...]


class CaseFileError(ValueError):
    """Case files that do not match the case schema: no case of theirs can be trusted."""


@functools.cache
def _case_validators() -> tuple[Draft202012Validator, Draft202012Validator]:
    """The validators of a case file and of one case."""
    schema = json.loads(case_schema_file().read_text(encoding="utf-8"))
    one = {"$ref": "#/$defs/case", "$defs": schema["$defs"]}
    return schemas.validator_for(schema), schemas.validator_for(one)


def read_case_file(path: Path) -> CaseFile:
    file_validator, case_validator = _case_validators()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return CaseFile(path, (), (f"not readable JSON: {exc}",))
    listed = _mapping(data).get("cases")
    cases = tuple(
        Case(
            f"{path.stem}::{_mapping(spec).get('name', f'#{index}')}",
            spec,
            tuple(schemas.problems(case_validator, spec)),
            str(_mapping(data).get("api", DEFAULT_API)),
        )
        for index, spec in enumerate(listed if isinstance(listed, list) else [])
    )
    return CaseFile(path, cases, tuple(schemas.problems(file_validator, data)))


def case_files(directories: Iterable[Path]) -> list[CaseFile]:
    """Every `*.json` of `directories`, in order of name within each."""
    return [read_case_file(path) for d in directories for path in sorted(d.glob("*.json"))]


def read_cases(directories: Iterable[Path]) -> list[Case]:
    """Every case of every `*.json` in `directories`; CaseFileError naming each file that does
    not match the case schema, and its first problems."""
    files = case_files(directories)
    if bad := [f for f in files if f.problems]:
        raise CaseFileError(
            "; ".join(
                f"{f.path}: does not match {case_schema_file().name}: "
                + ", ".join(f.problems[:3])
                + (f" (and {len(f.problems) - 3} more)" if len(f.problems) > 3 else "")
                for f in bad
            )
        )
    return [case for f in files for case in f.cases]


# ------------------------------------------------------------------------------ one request


@dataclass(frozen=True)
class Target:
    """Where cases go: a base URL as the openai SDK takes it (`https://host/v1`), and the key
    sent unless a case sends its own. An answer's image URL that starts with `public_url` (that
    of a mock behind --public-url, where nothing listens) is fetched from the base URL instead."""

    base_url: str
    api_key: str
    public_url: str | None = None

    def image_url(self, url: str) -> str:
        if self.public_url and url.startswith(self.public_url):
            return join(self.base_url, url[len(self.public_url) :])
        return url


def join(base: str, path: str, api: str = DEFAULT_API) -> str:
    """A case's full path (`/v1/...`) on a base URL, with or without its trailing API base
    (`api`: `/v1`, or `/api/v3` for Ark's cases)."""
    parts = urlsplit(base)
    prefix = parts.path.rstrip("/")
    if prefix.endswith(api):
        prefix = prefix[: -len(api)]
    route, _, query = path.partition("?")
    return urlunsplit((parts.scheme, parts.netloc, prefix + route, query, ""))


def request_parts(case: Case, api_key: str) -> tuple[dict[str, str], bytes]:
    """The headers and body a case sends: its headers over the defaults (a null one removes
    a default), its body as UTF-8 JSON, as text or as the bytes of its base64."""
    request = case.request
    merged: dict[str, tuple[str, str | None]] = {
        "authorization": ("Authorization", f"Bearer {api_key}"),
        "content-type": ("Content-Type", "application/json"),
    }
    for name, value in _mapping(request.get("headers")).items():
        merged[str(name).lower()] = (str(name), value)
    headers = {name: value for name, value in merged.values() if value is not None}
    if "body" in request:
        return headers, json.dumps(request["body"], ensure_ascii=False).encode("utf-8")
    if "raw_body" in request:
        return headers, str(request["raw_body"]).encode("utf-8")
    if "raw_body_base64" in request:
        return headers, base64.b64decode(request["raw_body_base64"], validate=True)
    return headers, b""


@dataclass(frozen=True)
class Picture:
    """One image of a generation answer: its bytes (None when they could not be had, `problem`
    says why) and, for a URL, the Content-Type it was served with ("" for none)."""

    where: str
    data: bytes | None
    problem: str | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class Answer:
    """What a service said to a case (`failure`: why it said nothing)."""

    status: int | None
    sent: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)  # names in lower case
    text: str = ""
    body: Any = None  # the JSON, None when the body is not JSON
    pictures: tuple[Picture, ...] | None = None  # None: not a list of images, or not looked at
    failure: str | None = None


def send(client: httpx.Client, target: Target, case: Case) -> Answer:
    """Send `case` to `target` with `client`; an answer's images are fetched (as a browser
    would: no Authorization) when the case expects images."""
    import httpx

    headers, content = request_parts(case, target.api_key)
    url = join(target.base_url, case.path, case.api)
    try:
        response = client.request(case.method, url, headers=headers, content=content or None)
    except httpx.HTTPError as exc:
        return Answer(None, content, failure=f"{type(exc).__name__}: {exc}")
    try:
        body = response.json()
    except ValueError:
        body = None
    pictures = None
    if "images" in case.expect and response.status_code < 400:
        pictures = _pictures(client, target, body)
    return Answer(
        response.status_code,
        content,
        dict(response.headers.items()),
        response.text,
        body,
        pictures,
    )


def _pictures(client: httpx.Client, target: Target, body: Any) -> tuple[Picture, ...] | None:
    data = _mapping(body).get("data")
    if not isinstance(data, list):
        return None
    return tuple(_picture(client, target, f"data[{i}]", entry) for i, entry in enumerate(data))


def _picture(client: httpx.Client, target: Target, where: str, entry: Any) -> Picture:
    entry = _mapping(entry)
    if isinstance(entry.get("b64_json"), str):
        try:
            return Picture(where, base64.b64decode(entry["b64_json"], validate=True))
        except binascii.Error as exc:
            return Picture(where, None, f"{where}.b64_json is not base64: {exc}")
    if not isinstance(entry.get("url"), str):
        return Picture(where, None, f"{where} has neither b64_json nor url")
    url = target.image_url(entry["url"])
    try:
        image = client.get(url)
    except Exception as exc:  # a URL that does not answer is an image we cannot read
        return Picture(where, None, f"{where}: GET {url}: {type(exc).__name__}: {exc}")
    if image.status_code != 200:
        return Picture(where, None, f"{where}: GET {url}: {image.status_code} {image.text[:200]}")
    return Picture(where, image.content, content_type=image.headers.get("content-type", ""))


def png_size(data: bytes | None) -> list[int] | None:
    """[width, height] of a PNG that decodes whole, else None."""
    if not data:
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG":
                return None
            image.load()
            return list(image.size)
    except Exception:  # whatever Pillow makes of the bytes, it is not an image we can read
        return None


# ------------------------------------------------------------------------------ the judgement


@dataclass(frozen=True)
class MockPromises:
    """What a mock promises beyond what a case says of the API: the case's messages and X-Mock-*
    headers, answers that match its schemas, each image a PNG answering its prompt, and the
    `created` it was started with (a Unix timestamp, or "now")."""

    created: int | Literal["now"]


@dataclass(frozen=True)
class Verdict:
    """`got`, what the service said in the shape of `Case.expected` (with `failure` when it
    said nothing), and every difference from the case; it agrees when there is none."""

    got: dict[str, Any]
    differences: tuple[str, ...]

    @property
    def agree(self) -> bool:
        return not self.differences


def observed(case: Case, answer: Answer) -> dict[str, Any]:
    """What the service said, in the shape of `case.expected`."""
    if answer.status is None:
        return {"status": None, "failure": answer.failure}
    expected = case.expected
    got: dict[str, Any] = {"status": answer.status}
    if answer.status >= 400:
        error = _mapping(_mapping(answer.body).get("error"))
        got["error"] = {"code": error.get("code"), "param": error.get("param")}
    if "headers" in expected:
        got["headers"] = {name: answer.headers.get(name.lower()) for name in expected["headers"]}
    if "images" in expected and answer.status < 400:
        pictures = answer.pictures
        got["images"] = None if pictures is None else [png_size(p.data) for p in pictures]
    return got


def judge(case: Case, answer: Answer, promises: MockPromises | None = None) -> Verdict:
    """The answer held to the case; with `promises`, to the mock's own promises too (when the
    status is the case's: otherwise they would only repeat that it is not)."""
    got = observed(case, answer)
    differences = [
        f"{key}: expected {_show(value)}, got {_show(got.get(key))}"
        for key, value in case.expected.items()
        if got.get(key) != value
    ]
    if answer.failure is not None:
        differences.append(f"no answer: {answer.failure}")
    elif promises is not None and got["status"] == case.expected["status"]:
        differences += _broken_promises(case, answer, promises)
    return Verdict(got, tuple(differences))


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _broken_promises(case: Case, answer: Answer, promises: MockPromises) -> list[str]:
    expect = case.expect
    broken = [
        f"headers: {name}: expected {_show(value)}, got {_show(answer.headers.get(name.lower()))}"
        for name, value in _mapping(expect.get("headers")).items()
        if _mock_header(name) and answer.headers.get(name.lower()) != value
    ]
    if "error" in expect:
        broken += _schema_problems(ERROR_SCHEMA, answer.body)
        message = _mapping(_mapping(answer.body).get("error")).get("message")
        broken += [
            f"message: {part!r} not in {message!r}"
            for part in expect.get("message_contains", [])
            if not isinstance(message, str) or part not in message
        ]
    if "images" in expect and case.path in ANSWER_SCHEMAS:
        broken += _schema_problems(ANSWER_SCHEMAS[case.path], answer.body)
        broken += _broken_image_promises(answer, promises)
    return broken


def _schema_problems(name: str, body: Any) -> list[str]:
    if body is None:
        return [f"the body is not JSON, as {name} wants"]
    return [
        f"{name}: {problem}" for problem in schemas.problems(schemas.schema_validator(name), body)
    ]


def _broken_image_promises(answer: Answer, promises: MockPromises) -> list[str]:
    body = _mapping(answer.body)
    created = body.get("created")
    broken = []
    if promises.created == "now":
        if not isinstance(created, int) or abs(created - time.time()) >= 120:
            broken.append(f"created: {created!r} is not now")
    elif created != promises.created:
        broken.append(f"created: expected {promises.created}, got {created!r}")
    try:
        prompt = _mapping(json.loads(answer.sent)).get("prompt")
    except ValueError:
        prompt = None
    entries = body.get("data")
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        revised = _mapping(entry).get("revised_prompt")
        if prompt is None or revised != prompt:
            broken.append(f"data[{index}].revised_prompt: {revised!r}, not the prompt sent")
    for picture in answer.pictures or ():
        if picture.problem is not None:
            broken.append(picture.problem)
        elif picture.content_type is not None and picture.content_type != "image/png":
            broken.append(f"{picture.where}: served as {picture.content_type}, not image/png")
    return broken
