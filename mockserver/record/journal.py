"""The request journal: what each API request sent and what the mock answered, newest kept.

The journal is bounded twice: it keeps the newest `size` records whose estimated sizes add up
to at most `max_bytes` (`--journal-size`, `--journal-mb`). A record is made small when it is
added (`bounded`): a string of the body longer than STRING_LIMIT characters is kept as an
excerpt, `{"$excerpt": "<its first 256 characters>", "length": <characters>, "sha256": "<hex
digest of its UTF-8>"}`, and its path is listed in `RequestRecord.cut`; other long text (a
body's long keys, whose paths are listed too; header names and values, messages, the path) is
clipped in place to `"<first 256 characters>… [<length> characters, sha256 <hex>]"`; at most
WARNINGS_LIMIT warnings and HEADERS_LIMIT headers are kept, the others counted. A record
that would still take more than an eighth of the journal (RECORD_SHARE: a body of a great
many small values, which no valid request has) keeps its body as the excerpt of its compact
JSON text, and `cut` is `("$",)`: one request cannot push all the others out. The estimate
is of the memory a record takes (see `_scan`), not of its JSON: that is what bounds the
process. Measured with tracemalloc, the records really take 0.6 (small bodies) to 0.98
(large ones) of it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from mockserver.contract.validation import ContractWarning
from mockserver.options import DEFAULT_JOURNAL_MB
from mockserver.redaction import masked

if TYPE_CHECKING:
    from mockserver.record.outcome import Outcome

REDACTED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-admin-token"})

MIB = 1024 * 1024
DEFAULT_MAX_BYTES = DEFAULT_JOURNAL_MB * MIB
STRING_LIMIT = 1024  # the longest string kept whole, in characters
# An integer of more than STRING_LIMIT digits is kept as the excerpt of its digits, as a long
# string is. Below this many bits no integer has that many digits.
LONG_INT_BITS = math.ceil(STRING_LIMIT * math.log2(10))
EXCERPT_LENGTH = 256  # the characters an excerpt keeps
TRACEBACK_LIMIT = 16 * 1024  # the longest traceback (`exception`) kept whole
WARNINGS_LIMIT = 100  # warnings kept per record
HEADERS_LIMIT = 100  # headers kept per record
WHOLE_BODY = "$"  # the path in `cut` of a body kept as the excerpt of its JSON
RECORD_SHARE = 8  # no record takes more than this share of the journal's bytes
# Sessions whose clearing is remembered (a request of one in progress is then not recorded);
# past this many, the least recently cleared is forgotten.
SESSION_EPOCHS = 10_000
# Estimated sizes in memory, as CPython 3.11 on 64 bits makes them (`sys.getsizeof`), a little
# over: a record's own objects (the dataclass, its tuples, the journal's slots), one warning, a
# header (its two strings and its entry), a string (besides 1 byte a character; 4 if it is not
# all ASCII), an object (besides its entries), an array (besides 8 bytes an item), a number.
RECORD_BYTES = 1024
WARNING_BYTES = 400
HEADER_BYTES = 160
STR_BYTES = 64
DICT_BYTES = 64
ENTRY_BYTES = 40
LIST_BYTES = 64
VALUE_BYTES = 32


Epoch = tuple[int, int]  # the journal's, and the session's, when a request began


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request to an API route and the mock's answer to it."""

    id: int
    time: float
    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    status: int | None  # None: no answer reached the client (see `outcome`)
    error: str | None = None
    error_message: str | None = None
    param: str | None = None
    images: tuple[str, ...] = ()
    warnings: tuple[ContractWarning, ...] = ()
    fault: str | None = None
    stub: str | None = None
    duration_ms: float = 0.0
    exception: str | None = field(default=None, repr=False)
    # "answered"; "dropped": the mock closed the connection on purpose (the disconnect fault);
    # "client_disconnected": the client left before its answer was sent.
    outcome: str = "answered"
    # What the journal cut down (see the module's docstring): the paths of the body's values
    # kept as excerpts (`image[0]`, `prompt`; `$`, the whole body), and how many warnings and
    # headers it left out.
    cut: tuple[str, ...] = ()
    warnings_dropped: int = 0
    headers_dropped: int = 0
    # Proxy mode (`--upstream`): what the upstream answered (`url`, `status`, `error`, `param`,
    # `message`, `duration_ms`; or `failure`, the gateway error the mock answered instead),
    # what the mock's own contract says of the request (`status`, `error`, `param`), and
    # their disagreement: "upstream_refuses", "mock_refuses" or "different_error".
    upstream: Mapping[str, Any] | None = None
    mock_verdict: Mapping[str, Any] | None = None
    drift: str | None = None
    # Recording (`--record DIR`): the stub file (`file`), whether it was `written`, and the
    # images that could not be downloaded (`failures`).
    recorded: Mapping[str, Any] | None = None
    # The `x-request-id` of the answer (the mock's, or a stub's or the upstream's own), which a
    # dropped connection did not send; and the id the client sent (`x-request-id` or
    # `x-client-request-id`), clipped as a header is.
    request_id: str | None = None
    client_request_id: str | None = None
    # The client's X-Mock-Session, "default" without one (see `mockserver.contract.sessions`).
    session: str = "default"
    # A streamed answer's digest (`mockserver.record.streamed`): how many `events`, their
    # `types` (counted) and `order`, the `images` they carried, whether the end marker went
    # out (`done`), and its `ending`: "read_to_end", "client_left" or "cut".
    stream: Mapping[str, Any] | None = None

    @property
    def model(self) -> Any:
        return self.body.get("model") if isinstance(self.body, dict) else None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RequestRecord:
        """A record as `GET /__admin/requests` lists it (`to_json`), back as a record; fields
        of a newer mock that this one does not know are left out."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["images"] = tuple(values.get("images", ()))
        values["cut"] = tuple(values.get("cut", ()))
        values["warnings"] = tuple(ContractWarning(**w) for w in values.get("warnings", ()))
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["headers"] = dict(self.headers)
        data["images"] = list(self.images)
        data["warnings"] = [asdict(w) for w in self.warnings]
        data["cut"] = list(self.cut)
        if self.stream is None:  # a record of an answer not streamed has no `stream`
            del data["stream"]
        return data


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Request headers with secrets cut to their last 4 characters (`Bearer ...abcd`); the
    values of a header sent more than once joined with ", "."""
    shown: dict[str, list[str]] = {}
    for name, value in headers:
        name = name.lower()
        if name in REDACTED_HEADERS:
            scheme, _, secret = value.partition(" ")
            if not secret:
                scheme, secret = "", value
            value = f"{scheme} {masked(secret.strip())}".strip()
        shown.setdefault(name, []).append(value)
    return {
        name: values[0] if len(values) == 1 else ", ".join(values) for name, values in shown.items()
    }


def record_of(outcome: Outcome) -> RequestRecord:
    """The journal's record of a request, from its completed outcome: a pure function of it
    (the headers redacted here, as the record keeps them), so it can be made whenever the
    record is wanted."""
    arrival, error = outcome.arrival, outcome.error
    headers = redact_headers(
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in arrival.headers
    )
    return RequestRecord(
        id=arrival.id,
        time=arrival.started,
        method=arrival.method,
        path=arrival.path,
        headers=headers,
        body=outcome.body,
        status=outcome.status,
        error=None if error is None else error.code,
        error_message=None if error is None else error.message,
        param=None if error is None else error.param,
        images=outcome.images,
        warnings=outcome.warnings,
        fault=outcome.fault,
        stub=outcome.stub,
        duration_ms=outcome.duration_ms,
        exception=outcome.exception,
        outcome=outcome.ending,
        upstream=outcome.upstream,
        mock_verdict=outcome.mock_verdict,
        drift=outcome.drift,
        recorded=outcome.recorded,
        request_id=outcome.answer_id,
        client_request_id=client_request_id(headers),
        session=arrival.session,
        stream=None if outcome.stream is None else outcome.stream.to_json(outcome.ending),
    )


def client_request_id(headers: Mapping[str, str]) -> str | None:
    """The id the client sent with its request, if any (as the journal keeps headers)."""
    found = headers.get("x-request-id", headers.get("x-client-request-id"))
    return None if found is None else clip(found)


# ---------------------------------------------------------------------------- keeping it small


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def excerpt(text: str) -> dict[str, Any]:
    """The excerpt the journal keeps of a long string of a body (see the module's docstring)."""
    return {"$excerpt": text[:EXCERPT_LENGTH], "length": len(text), "sha256": _digest(text)}


def is_excerpt(value: Any) -> bool:
    """Whether `value` is an `excerpt` (as the journal keeps a long string)."""
    return isinstance(value, dict) and value.keys() == _EXCERPT_KEYS


_EXCERPT_KEYS = frozenset({"$excerpt", "length", "sha256"})


def clip(text: str, limit: int = STRING_LIMIT) -> str:
    """`text`, or if it is longer than `limit` its first characters, length and digest."""
    if len(text) <= limit:
        return text
    keep = EXCERPT_LENGTH if limit == STRING_LIMIT else limit
    return f"{text[:keep]}… [{len(text):,} characters, sha256 {_digest(text)}]"


def as_recorded(value: Any) -> Any:
    """`value` as the journal keeps it in a body: each string longer than STRING_LIMIT
    replaced by its `excerpt`, long keys clipped. `assert_requested` compares a wanted value
    with a cut field this way: `image=[data_uri]` matches by the excerpt's length and digest."""
    return _cut_long(value)[0]


def _scan(value: Any) -> tuple[int, bool]:
    """The estimated size in memory of a JSON value, in bytes, and whether it has a string or
    key longer than STRING_LIMIT; walked without recursion, with `len` only (nothing is
    serialized)."""
    size = 0
    long = False
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            # Keys are counted at 4 bytes a character, the most they can take.
            keys = sum(map(len, item))
            size += DICT_BYTES + (ENTRY_BYTES + STR_BYTES) * len(item) + 4 * keys
            long = long or (keys > STRING_LIMIT and max(map(len, item)) > STRING_LIMIT)
            children: Iterable[Any] = item.values()
        elif kind is list or kind is tuple:
            size += LIST_BYTES + 8 * len(item)
            children = item
        else:
            children = (item,)
        for child in children:
            kind = type(child)
            if kind is str:
                length = len(child)
                size += STR_BYTES + (length if child.isascii() else 4 * length)
                if length > STRING_LIMIT:
                    long = True
            elif kind is dict or kind is list or kind is tuple:
                stack.append(child)
            elif kind is int:
                # CPython keeps 30 bits in 4 bytes: a 4,300-digit integer takes some 1.8 KB.
                bits = child.bit_length()
                size += VALUE_BYTES + bits // 7
                if bits >= LONG_INT_BITS and _long_int(child):
                    long = True
            else:
                size += VALUE_BYTES  # a float, true, false or null
    return size, long


def _long_int(number: int) -> bool:
    """Whether `number` has more than STRING_LIMIT digits (its bit length says so but near
    the limit)."""
    return number.bit_length() > LONG_INT_BITS + 4 or len(str(abs(number))) > STRING_LIMIT


def _path(link: tuple[Any, ...] | None) -> str:
    """`image[2]`, `meta.note` (the form of an error's `param`) from a chain of (key, parent)."""
    parts: list[str | int] = []
    while link is not None:
        key, link = link
        parts.append(key)
    text = ""
    for part in reversed(parts):
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or WHOLE_BODY


def _cut_long(value: Any) -> tuple[Any, tuple[str, ...]]:
    """A copy of `value` with each string longer than STRING_LIMIT an `excerpt` and each long
    key clipped, and the paths of the excerpts; without recursion, in the order of the body."""
    cut: list[str] = []
    root: list[Any] = [None]
    # (value, the container its copy goes in, its key there, its path as (key, parent path))
    stack: list[tuple[Any, Any, Any, Any]] = [(value, root, 0, None)]
    while stack:
        item, parent, key, link = stack.pop()
        if isinstance(item, str):
            if len(item) > STRING_LIMIT:
                item = excerpt(item)
                cut.append(_path(link))
            parent[key] = item
        elif type(item) is int and item.bit_length() >= LONG_INT_BITS and _long_int(item):
            parent[key] = excerpt(str(item))  # its digits, kept like a long string
            cut.append(_path(link))
        elif isinstance(item, dict):
            copy: dict[str, Any] = {}
            children = []
            for name, child in item.items():
                short = clip(name)
                if short is not name:
                    cut.append(_path((short, link)))
                copy[short] = None
                children.append((child, copy, short, (short, link)))
            parent[key] = copy
            stack.extend(reversed(children))
        elif isinstance(item, list | tuple):
            items: list[Any] = [None] * len(item)
            parent[key] = items
            stack.extend((item[i], items, i, (i, link)) for i in range(len(item) - 1, -1, -1))
        else:
            parent[key] = item
    return root[0], tuple(dict.fromkeys(cut))


def _compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)


def _headers(headers: Mapping[str, str], changes: dict[str, Any]) -> int:
    """The estimated size of the headers, clipped and counted into `changes` if need be."""
    names, values = sum(map(len, headers)), sum(map(len, headers.values()))
    # Only a total over the limit can have a text over it.
    if len(headers) > HEADERS_LIMIT or (
        max(names, values) > STRING_LIMIT
        and any(len(text) > STRING_LIMIT for text in itertools.chain(headers, headers.values()))
    ):
        changes["headers_dropped"] = max(0, len(headers) - HEADERS_LIMIT)
        headers = changes["headers"] = {
            clip(name): clip(value)
            for name, value in itertools.islice(headers.items(), HEADERS_LIMIT)
        }
        names, values = sum(map(len, headers)), sum(map(len, headers.values()))
    return DICT_BYTES + HEADER_BYTES * len(headers) + names + values


def _warnings(warnings: tuple[ContractWarning, ...], changes: dict[str, Any]) -> int:
    """The estimated size of the warnings, capped and clipped into `changes` if need be."""
    kept = warnings[:WARNINGS_LIMIT]
    if len(warnings) > WARNINGS_LIMIT:
        changes["warnings_dropped"] = len(warnings) - WARNINGS_LIMIT
    if any(len(w.message) > STRING_LIMIT or len(w.param or "") > STRING_LIMIT for w in kept):
        kept = tuple(
            ContractWarning(w.code, None if w.param is None else clip(w.param), clip(w.message))
            for w in kept
        )
    if kept is not warnings:
        changes["warnings"] = kept
    return sum(WARNING_BYTES + len(w.message) + len(w.param or "") for w in kept)


_TEXTS = ("method", "path", "error_message", "param")


def _texts(record: RequestRecord, changes: dict[str, Any]) -> int:
    """The estimated size of the record's other text, clipped into `changes` if need be."""
    length = len(record.method) + len(record.path)
    if record.error_message is not None or record.param is not None:
        length += len(record.error_message or "") + len(record.param or "")
    if length > STRING_LIMIT:
        for name in _TEXTS:
            text = getattr(record, name)
            if text is not None and len(text) > STRING_LIMIT:
                changes[name] = clip(text)
        length = sum(len(changes.get(name, getattr(record, name)) or "") for name in _TEXTS)
    size = 4 * STR_BYTES + length
    if record.images:
        size += STR_BYTES * len(record.images) + sum(map(len, record.images))
    if record.exception is not None:
        if len(record.exception) > TRACEBACK_LIMIT:
            changes["exception"] = clip(record.exception, TRACEBACK_LIMIT)
        size += STR_BYTES + min(len(record.exception), 2 * TRACEBACK_LIMIT)
    size += len(record.request_id or "") + len(record.client_request_id or "")
    if record.stream is not None:  # bounded: EVENT_LIMIT kinds, an image's URL per event
        order, images = record.stream["order"], record.stream["images"]
        size += DICT_BYTES + (STR_BYTES + 40) * len(order) + sum(map(len, images))
    return size + len(record.stub or "") + len(record.fault or "")


def bounded(record: RequestRecord, limit: int) -> tuple[RequestRecord, int]:
    """`record` as the journal keeps it (see the module's docstring), and its estimated size
    in bytes: at most `limit`, unless its other parts, each capped, take more (they can take
    some 250 KB at most)."""
    changes: dict[str, Any] = {}
    body_size, long = _scan(record.body)
    if long:
        body, cut = _cut_long(record.body)
        changes.update(body=body, cut=cut)
        body_size = _scan(body)[0]
    size = RECORD_BYTES + body_size + _headers(record.headers, changes) + _texts(record, changes)
    if record.warnings:
        size += _warnings(record.warnings, changes)
    for extra in (record.upstream, record.mock_verdict, record.recorded):
        if extra is not None:
            size += _scan(extra)[0]
    if size > limit:
        # A body of a great many small values: its JSON's excerpt stands for it.
        body = changes["body"] = excerpt(_compact_json(record.body))
        changes["cut"] = (WHOLE_BODY,)
        size += _scan(body)[0] - body_size
    return (replace(record, **changes) if changes else record), size


class Journal:
    """The newest `size` records, together at most `max_bytes` (estimated; see `bounded`),
    oldest first; safe to read from the test's thread."""

    def __init__(self, size: int, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self._records: deque[RequestRecord] = deque()
        self._sizes: deque[int] = deque()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.dropped = 0
        self.bytes = 0  # the estimated size of the records kept
        # Bumped by clear(): a request that began before it is not recorded when it ends;
        # likewise for a session, by clear(session=) (the newest SESSION_EPOCHS of them).
        self.epoch = 0
        self._session_epochs: OrderedDict[str, int] = OrderedDict()

    def next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def begin(self, session: str = "default") -> tuple[Epoch, int]:
        """The epoch and a new id for a request beginning now, taken together: a request
        begun before a `clear` (of all, or of its session) keeps the epoch its id came with,
        and is not recorded."""
        with self._lock:
            return (self.epoch, self._session_epochs.get(session, 0)), next(self._ids)

    def current(self, session: str) -> Epoch:
        return self.epoch, self._session_epochs.get(session, 0)

    def add(self, record: RequestRecord, epoch: Epoch) -> bool:
        """Keep `record`, cut down to size (`bounded`), dropping the oldest to make room;
        unless the journal (or its session's part) was cleared since its request began
        (`epoch`): False then. Its id was taken when its request began, so a quicker request
        begun later can be in first: the records are kept in the order of their ids."""
        if epoch != self.current(record.session):
            return False
        kept, size = bounded(record, self.max_bytes // RECORD_SHARE)
        records, sizes = self._records, self._sizes
        with self._lock:
            if epoch != self.current(record.session):
                return False
            place = len(records)
            while place and records[place - 1].id > kept.id:
                place -= 1
            records.insert(place, kept)
            sizes.insert(place, size)
            total = self.bytes + size
            # The newest record stays, whatever the bound (`bounded` keeps it small).
            while len(records) > self.size or (total > self.max_bytes and len(records) > 1):
                records.popleft()
                total -= sizes.popleft()
                self.dropped += 1
            self.bytes = total
        return True

    def records(self, session: str | None = None) -> list[RequestRecord]:
        """The records kept, oldest first: all of them, or one session's."""
        with self._lock:
            if session is None:
                return list(self._records)
            return [r for r in self._records if r.session == session]

    def clear(self, *, restart_ids: bool = False, session: str | None = None) -> int:
        """Drop every record, or one session's (whose requests in progress are then not
        recorded either); `restart_ids`, and the next id is 1 again."""
        if session is not None:
            return self._clear_session(session)
        with self._lock:
            self._session_epochs.clear()
            count = len(self._records)
            self._records.clear()
            self._sizes.clear()
            self.bytes = 0
            self.dropped = 0
            self.epoch += 1
            if restart_ids:
                self._ids = itertools.count(1)
            return count

    def _clear_session(self, session: str) -> int:
        with self._lock:
            epochs = self._session_epochs
            epochs[session] = epochs.pop(session, 0) + 1
            while len(epochs) > SESSION_EPOCHS:
                epochs.popitem(last=False)
            kept = [
                (r, n)
                for r, n in zip(self._records, self._sizes, strict=True)
                if r.session != session
            ]
            count = len(self._records) - len(kept)
            self._records = deque(r for r, _ in kept)
            self._sizes = deque(n for _, n in kept)
            self.bytes = sum(self._sizes)
            return count

    def __len__(self) -> int:
        return len(self._records)
