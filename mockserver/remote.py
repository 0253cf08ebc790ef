"""`RemoteMock`: a mock running in another process (a `jimeng-mock` that CI started, shared by
several test processes), driven through its admin routes with the checks of `MockServer`.

The journal is read over HTTP and checked here, with the same code as in-process
(`mockserver.verify`); faults are queued with `POST /__admin/faults`, so their matchers must
be JSON: values and compiled regexes, not predicates.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import httpx

from mockserver.config import DEFAULT_API_KEY
from mockserver.journal import RequestRecord
from mockserver.matching import compile_python, match_json
from mockserver.sessions import Served, checked

PAGE = 1000  # records asked for at once


class RemoteMock(Served):
    """The mock at `url` (as `jimeng-mock` printed it: `http://127.0.0.1:8000`).

    `api_key` is what clients should send (one of its `--api-key`s, if it has any);
    `admin_token` its `--admin-token`, if it was started with one.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        admin_token: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._url = url.rstrip("/")
        self._api_key = api_key or DEFAULT_API_KEY
        headers = {"X-Admin-Token": admin_token} if admin_token else {}
        self._http = httpx.Client(base_url=self._url, headers=headers, timeout=timeout)
        self.expected_errors: set[str] = set()
        self.label = f"the mock at {self._url}"

    @property
    def url(self) -> str:
        return self._url

    @property
    def api_key(self) -> str:
        return self._api_key

    def _call(self, method: str, path: str, session: str | None = None, **kw: Any) -> Any:
        query = "" if session is None else "?" + urlencode({"session": checked(session)})
        answer = self._http.request(method, path + query, **kw)
        if answer.status_code >= 400:
            raise RuntimeError(
                f"the mock at {self._url} answered {method} {path}{query} with "
                f"{answer.status_code}: {answer.text[:500]}"
            )
        return answer.json()

    def records(self, session: str | None = None) -> list[RequestRecord]:
        """The recorded requests of one session (all of them: None), oldest first; read a
        page at a time."""
        found: list[RequestRecord] = []
        after = 0
        while True:
            query = {"after": after, "limit": PAGE}
            if session is not None:
                query["session"] = checked(session)  # type: ignore[assignment]
            page = self._call("GET", "/__admin/requests?" + urlencode(query))
            found += [RequestRecord.from_json(r) for r in page["requests"]]
            if len(page["requests"]) < PAGE:
                return found
            after = page["next"]

    def reset(self, session: str | None = None) -> None:
        """`POST /__admin/reset`: the whole mock, or one session's part of it."""
        self._call("POST", "/__admin/reset", session)
        if session is None:
            self.expected_errors.clear()

    def fail_next(
        self,
        fault: str,
        times: int = 1,
        *,
        delay_ms: int | None = None,
        retry_after_ms: int | None = None,
        session: str | None = None,
        **match: Any,
    ) -> dict[str, Any]:
        """Queue `fault` for the next `times` generation requests whose body has `match`
        (of `session` only, if given); the queued entry, as the mock lists it."""
        matchers = compile_python(match)
        if any(m.kind == "predicate" for m in matchers.values()):
            raise ValueError("a mock in another process takes values and regexes, not functions")
        body: dict[str, Any] = {"fault": fault, "times": times, "match": match_json(matchers)}
        optional = {"delay_ms": delay_ms, "retry_after_ms": retry_after_ms, "session": session}
        body.update({k: v for k, v in optional.items() if v is not None})
        queued: dict[str, Any] = self._call("POST", "/__admin/faults", json=body)["queued"]
        return queued

    def coverage(self, session: str | None = None) -> dict[str, Any]:
        """`GET /__admin/coverage`: of every request, or of one session's."""
        report: dict[str, Any] = self._call("GET", "/__admin/coverage", session)
        return report

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RemoteMock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RemoteMock {self._url}>"
