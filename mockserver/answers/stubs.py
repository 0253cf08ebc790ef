"""Stubs: canned answers or faults for the requests they match, read from a folder of JSON files."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from mockserver.answers.faults import Fault, FaultCatalogue
from mockserver.answers.matching import Match, MatcherError, compile_json, matches_all
from mockserver.contract.schemas import schema_validator
from mockserver.contract.sessions import DEFAULT_SESSION
from mockserver.errors import ConfigError

# {{file:PATH}}: a file of the fixtures folder (as recording writes the images it downloads),
# answered as the URL the mock serves it at, GET /images/_fixtures/PATH.
_FILE = re.compile(r"\{\{\s*file:([^{}\s]*)\s*\}\}")
_FILE_PATH = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*/[A-Za-z0-9_-][A-Za-z0-9._-]*")
FIXTURE_ROUTE = "/images/_fixtures/"
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)(?::([0-9]+))?\s*\}\}")
_DATA = re.compile(r"\{\{\s*data\s*\}\}")
_WHOLE_VALUE = {"data", "created"}
_IN_TEXT = {"url", "prompt", "model", "created"}
# What the server sets for each answer and connection (framing and hop-by-hop headers, RFC 9110
# 7.6.1): a stub's own would contradict the body sent or the connection, and the client would
# read a broken answer, or none.
SERVER_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te"}
    | {"trailer", "proxy-connection"}
)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # a header name (RFC 9110 5.1)
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")  # no control characters, ASCII
TOKEN, HEADER_VALUE = _TOKEN, _HEADER_VALUE
USES_LIMIT = 100_000  # (session, stub) use counts kept
NO_BODY = frozenset({204, 304})  # statuses whose answers have no body
# X-Mock-Stub carries the file name percent-encoded as UTF-8; these stay as they are.
NAME_SAFE = "!#$&'()*+,;=@[]^`{}~"


@dataclass(frozen=True)
class Stub:
    name: str  # the file name
    match_body: Match
    match_headers: Match  # lower-case header names
    times: int | None
    fault: Fault | None  # with the stub's delay_ms and retry_after_ms
    delay_ms: int | None
    retry_after_ms: int | None
    status: int
    headers: Mapping[str, str]
    body: Any
    url_count: int  # how many image URLs the body's placeholders use
    uses_data: bool  # whether the body has "{{data}}"

    @property
    def x_mock_stub(self) -> str:
        """The file name as X-Mock-Stub carries it: percent-encoded UTF-8 (`猫.json` is
        `%E7%8C%AB.json`), so any name is one safe header value."""
        return quote(self.name, safe=NAME_SAFE)

    def matches(self, body: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
        return matches_all(self.match_body, body) and matches_all(self.match_headers, headers)

    def render(self, values: Mapping[str, Any], urls: list[str]) -> Any:
        """The canned body with its placeholders filled in."""

        def fill(value: Any) -> Any:
            if isinstance(value, str):
                whole = _PLACEHOLDER.fullmatch(value.strip())
                if whole and whole[1] in _WHOLE_VALUE:
                    return values[whole[1]]
                if "file:" in value:
                    base = str(values.get("base", ""))
                    value = _FILE.sub(lambda m: base + FIXTURE_ROUTE + m[1], value)
                return _PLACEHOLDER.sub(
                    lambda m: urls[int(m[2]) - 1] if m[1] == "url" else str(values[m[1]]), value
                )
            if isinstance(value, list):
                return [fill(v) for v in value]
            if isinstance(value, dict):
                return {k: fill(v) for k, v in value.items()}
            return value

        return fill(self.body)


def _check_placeholders(value: Any, where: str) -> int:
    """Raise on an unknown placeholder; return the highest {{url:K}}."""
    highest = 0
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value.strip())
        if whole and whole[1] in _WHOLE_VALUE and whole[2] is None:
            return 0
        for m in _FILE.finditer(value):
            path = m[1]
            if not _FILE_PATH.fullmatch(path):
                raise ValueError(
                    f"{where}: {m[0]!r}: a file of the fixtures folder is FOLDER/NAME, each "
                    "letters, digits, '.', '_' and '-', not beginning with '.'"
                )
        for m in _PLACEHOLDER.finditer(_FILE.sub("", value)):
            name, index = m[1], m[2]
            if name == "data":
                raise ValueError(f"{where}: {{{{data}}}} must be a whole string value")
            if name not in _IN_TEXT or (name == "url") != (index is not None):
                known = "{{url:K}}, {{prompt}}, {{model}}, {{created}}, {{data}}, {{file:PATH}}"
                raise ValueError(f"{where}: unknown placeholder {m[0]!r}; known: {known}")
            if index is not None:
                if not 1 <= int(index) <= 999:
                    raise ValueError(f"{where}: {m[0]!r}: K must be 1 to 999")
                highest = max(highest, int(index))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            highest = max(highest, _check_placeholders(item, f"{where}[{i}]"))
    elif isinstance(value, dict):
        for key, item in value.items():
            highest = max(highest, _check_placeholders(item, f"{where}.{key}"))
    return highest


check_placeholders = _check_placeholders


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def _check_response(response: Any) -> None:
    """Raise ValueError on what would break the answer on the wire: a header name that is not
    an HTTP token, a value with a control character, a header the server sets itself, a body
    with a status that has none. The schema says the first two as well; this names the header."""
    if not isinstance(response, dict):
        return
    headers = response.get("headers")
    for name, value in headers.items() if isinstance(headers, dict) else ():
        if not _TOKEN.fullmatch(name):
            raise ValueError(
                f"response header {name!r}: a header name is letters, digits and "
                "!#$%&'*+-.^_`|~ only"
            )
        if name.lower() in SERVER_HEADERS:
            raise ValueError(
                f"response header {name!r}: the server sets it for each answer and connection "
                "(framing and hop-by-hop headers cannot come from a stub)"
            )
        if isinstance(value, str) and not _HEADER_VALUE.fullmatch(value):
            raise ValueError(
                f"response header {name!r}: the value {value!r} has a control character or a "
                "character beyond ASCII, which a header value cannot carry"
            )
    if response.get("status") in NO_BODY and response.get("body") is not None:
        raise ValueError(f"a {response['status']} answer has no body; leave out response.body")


def _read(path: Path, validator: Draft202012Validator) -> Any:
    """A stub file's JSON, checked against the schema: ConfigError naming the file if not."""
    try:
        path.name.encode("utf-8")
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_not_json)
    except UnicodeEncodeError:
        raise ConfigError(f"stub {str(path)!r}: the file name is not UTF-8") from None
    except FileNotFoundError:
        raise  # gone since the folder was listed: not a broken stub (see StubSet._load)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"stub {path}: cannot be read: {exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"stub {path}: not valid JSON: {exc}") from exc
    if isinstance(data, dict) and ("fault" in data) == ("response" in data):
        raise ConfigError(f"stub {path}: give exactly one of 'fault' and 'response'")
    try:
        _check_response(data.get("response") if isinstance(data, dict) else None)
    except ValueError as exc:
        raise ConfigError(f"stub {path}: {exc}") from None
    error = best_match(validator.iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "top level"
        raise ConfigError(f"stub {path}: at {where}: {error.message}")
    return data


def load_stub(path: Path, validator: Draft202012Validator, faults: FaultCatalogue) -> Stub:
    """One stub file, or ConfigError naming the file and what is wrong with it."""
    data = _read(path, validator)
    fault = None
    if data.get("fault") is not None:
        found = faults.get(data["fault"])
        if found is None:
            known = ", ".join(sorted(faults.names()))
            raise ConfigError(f"stub {path}: unknown fault {data['fault']!r}; known: {known}")
        fault = found.with_options(
            delay_ms=data.get("delay_ms"), retry_after_ms=data.get("retry_after_ms")
        )
    match = data["match"]
    response = data.get("response", {})
    try:
        match_body = compile_json(match.get("body", {}), "match.body")
        headers = {k.lower(): v for k, v in match.get("headers", {}).items()}
        match_headers = compile_json(headers, "match.headers")
        url_count = _check_placeholders(response.get("body"), "response.body")
    except (MatcherError, ValueError) as exc:
        raise ConfigError(f"stub {path}: {exc}") from None
    return Stub(
        name=path.name,
        match_body=match_body,
        match_headers=match_headers,
        times=data.get("times"),
        fault=fault,
        delay_ms=data.get("delay_ms"),
        retry_after_ms=data.get("retry_after_ms"),
        status=response.get("status", 200),
        headers=response.get("headers", {}),
        body=response.get("body"),
        url_count=url_count,
        uses_data=bool(_DATA.search(json.dumps(response.get("body")))),
    )


class StubSet:
    """The stubs of one folder, re-read when its files change or on reset.

    At start-up a bad file is a ConfigError. Changed into a bad file while the mock runs,
    it is kept in `.error`, which the mock answers until the file is fixed.
    """

    def __init__(self, directory: Path, faults: FaultCatalogue) -> None:
        if not directory.is_dir():
            raise ConfigError(f"fixtures folder {directory} does not exist or is not a folder")
        self.directory = directory
        self._validator = schema_validator("stub.schema.json")
        self._faults = faults
        self._lock = threading.Lock()
        self._signature: tuple[tuple[str, int, int], ...] = ()
        self.stubs: list[Stub] = []
        self.error: str | None = None
        # Uses of each stub, by session: `times` counts the uses of each session apart.
        self._used: dict[tuple[str, str], int] = {}
        self._load(self._scan())  # raises ConfigError: refused at start-up

    def _scan(self) -> tuple[tuple[str, int, int], ...]:
        try:
            files = sorted(self.directory.glob("*.json"))
        except OSError as exc:
            raise ConfigError(f"fixtures folder {self.directory}: {exc}") from exc
        found = []
        for path in files:
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # removed since the folder was listed (or a link to nothing)
            except OSError as exc:
                raise ConfigError(f"stub {path}: cannot be read: {exc}") from exc
            found.append((path.name, stat.st_mtime_ns, stat.st_size))
        return tuple(found)

    def _load(self, signature: tuple[tuple[str, int, int], ...]) -> None:
        # A file removed between the listing and its reading is simply gone: the next
        # refresh sees a folder without it, as it is now.
        stubs = []
        for name, _, _ in signature:
            try:
                stubs.append(load_stub(self.directory / name, self._validator, self._faults))
            except FileNotFoundError:
                continue
        self.stubs, self._signature, self.error, self._used = stubs, signature, None, {}

    def refresh(self, *, force: bool = False) -> None:
        """Re-read the folder if a file was added, removed or changed (or always, with force)."""
        with self._lock:
            try:
                signature = self._scan()
                if force or signature != self._signature:
                    self._signature = signature
                    self._load(signature)
            except ConfigError as exc:
                self.error = str(exc)

    def available(self, session: str = DEFAULT_SESSION) -> list[Stub]:
        """The stubs that have uses left in `session`, in file-name order."""
        with self._lock:
            return [
                stub
                for stub in self.stubs
                if stub.times is None or self._used.get((session, stub.name), 0) < stub.times
            ]

    def use(self, stub: Stub, session: str = DEFAULT_SESSION) -> None:
        if stub.times is None:
            return  # nothing to count down (coverage counts every use)
        with self._lock:
            key = (session, stub.name)
            self._used[key] = self._used.pop(key, 0) + 1
            if len(self._used) > USES_LIMIT:  # the sessions of a long run: the oldest go
                del self._used[next(iter(self._used))]

    def restart(self, session: str) -> None:
        """One session's uses back to none (a reset of that session)."""
        with self._lock:
            self._used = {key: n for key, n in self._used.items() if key[0] != session}

    def names(self) -> list[str]:
        return [stub.name for stub in self.stubs]
