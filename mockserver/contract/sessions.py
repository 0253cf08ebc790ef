"""Sessions: a client tags its requests with `X-Mock-Session: NAME`, and the journal, the
checks, queued faults, stub uses, coverage and reset can be scoped to that name, so that
test processes sharing one mock do not see each other's requests. Requests without the
header are the session named "default". Unscoped, each of them covers every session.

This module holds what a session name is; a session of a mock, as tests drive it, is
`mockserver.MockSession` (`mockserver.engine.api`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from mockserver.errors import ApiError

HEADER = "X-Mock-Session"
_RAW_HEADER = HEADER.lower().encode()
NAME_LIMIT = 200  # characters of a session name
DEFAULT_SESSION = "default"  # the session of a request sent without X-Mock-Session
_DIGEST = 12  # hex digits that tell apart the names `name_for` had to cut or change


class SessionNameError(ValueError):
    """A session name that is not 1 to NAME_LIMIT printable ASCII characters; `problem`
    says how, for the error envelope (param X-Mock-Session or session)."""

    def __init__(self, problem: str, name: str) -> None:
        super().__init__(f"{problem}: {name!r}")
        self.problem = problem


def _printable(char: str) -> bool:
    return " " <= char <= "~"


def checked(name: str) -> str:
    """A session name, spaces at either end left out (as HTTP leaves them out of a header):
    1 to NAME_LIMIT printable ASCII characters, else a SessionNameError."""
    if not isinstance(name, str):
        raise TypeError(f"a session name is a str, not {type(name).__name__}")
    clean = name.strip(" \t")
    if not clean:
        raise SessionNameError("the session name is empty", name)
    if len(clean) > NAME_LIMIT:
        problem = f"the session name is {len(clean)} characters long; at most {NAME_LIMIT}"
        raise SessionNameError(problem, name)
    if not all(_printable(c) for c in clean):
        raise SessionNameError("the session name has a character that is not printable ASCII", name)
    return clean


def name_for(text: str) -> str:
    """A valid session name made of any non-empty `text` without spaces at either end: the
    text itself if it is one, else its printable ASCII (others as "?"), a long one cut, and
    told apart from the others by a hash of the text."""
    name = "".join(c if _printable(c) else "?" for c in text)
    if len(name) > NAME_LIMIT or name != text:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_DIGEST]
        name = f"{name[: NAME_LIMIT - _DIGEST - 1]}~{digest}"
    return checked(name)


def session_of(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The session of a request, from its raw ASGI headers (one value: the first)."""
    for key, value in headers:
        if key == _RAW_HEADER:
            try:
                return checked(value.decode("latin-1"))
            except SessionNameError as exc:
                raise ApiError("invalid_value", param=HEADER, detail=exc.problem) from None
    return DEFAULT_SESSION


def session_headers(name: str) -> dict[str, str]:
    """The default headers an HTTP client (the openai SDK's `default_headers`) sends so its
    requests belong to session `name`."""
    return {HEADER: checked(name)}
