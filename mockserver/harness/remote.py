"""`RemoteMock`: a mock running in another process (a `jimeng-mock` that CI started, shared by
several test processes), driven through its admin routes with the API of `MockServer`
(`mockserver.engine.api`).

`AdminRoutes` is that API's transport over HTTP: the journal is read a page at a time and
checked here, with the same code as in-process (`mockserver.record.verify`); faults are queued with
`POST /__admin/faults`, so their matchers must be JSON: values and compiled regexes, not
predicates.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import httpx

from mockserver.answers.matching import match_json
from mockserver.engine.api import FaultOrder, Served
from mockserver.options import DEFAULT_API_KEY
from mockserver.record.journal import RequestRecord

PAGE = 1000  # records asked for at once


class AdminRoutes:
    """The admin routes of the mock at `url`; an answer of 400 or more is a RuntimeError
    that quotes it."""

    def __init__(self, url: str, *, admin_token: str | None, timeout: float) -> None:
        self.url = url
        self.label = f"the mock at {url}"
        headers = {"X-Admin-Token": admin_token} if admin_token else {}
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout)

    def _call(self, method: str, path: str, query: dict[str, Any], **kw: Any) -> Any:
        target = path + ("?" + urlencode(query) if query else "")
        answer = self._http.request(method, target, **kw)
        if answer.status_code >= 400:
            raise RuntimeError(
                f"the mock at {self.url} answered {method} {target} with "
                f"{answer.status_code}: {answer.text[:500]}"
            )
        return answer.json()

    @staticmethod
    def _of(session: str | None) -> dict[str, Any]:
        return {} if session is None else {"session": session}

    def read_records(self, session: str | None) -> list[RequestRecord]:
        found: list[RequestRecord] = []
        after = 0
        while True:
            query = {"after": after, "limit": PAGE, **self._of(session)}
            page = self._call("GET", "/__admin/requests", query)
            found += [RequestRecord.from_json(r) for r in page["requests"]]
            if len(page["requests"]) < PAGE:
                return found
            after = page["next"]

    def read_coverage(self, session: str | None) -> dict[str, Any]:
        report: dict[str, Any] = self._call("GET", "/__admin/coverage", self._of(session))
        return report

    def queue_fault(self, order: FaultOrder) -> dict[str, Any]:
        """The queued entry, as the mock lists it."""
        if any(m.kind == "predicate" for m in order.match.values()):
            raise ValueError("a mock in another process takes values and regexes, not functions")
        body: dict[str, Any] = {
            "fault": order.fault,
            "times": order.times,
            "match": match_json(order.match),
        }
        optional = {
            "delay_ms": order.delay_ms,
            "retry_after_ms": order.retry_after_ms,
            "session": order.session,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        queued: dict[str, Any] = self._call("POST", "/__admin/faults", {}, json=body)["queued"]
        return queued

    def clear(self, session: str | None) -> None:
        self._call("POST", "/__admin/reset", self._of(session))

    def close(self) -> None:
        self._http.close()


class RemoteMock(Served[dict[str, Any]]):
    """The mock at `url` (as `jimeng-mock` printed it: `http://127.0.0.1:8000`).

    `api_key` is what clients should send (one of its `--api-key`s, if it has any);
    `admin_token` its `--admin-token`, if it was started with one. Its `fail_next` returns
    the queued entry as `GET /__admin/faults` lists it.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        admin_token: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._routes = AdminRoutes(url.rstrip("/"), admin_token=admin_token, timeout=timeout)
        self._api_key = api_key or DEFAULT_API_KEY
        self.expected_errors: set[str] = set()

    @property
    def transport(self) -> AdminRoutes:
        return self._routes

    @property
    def url(self) -> str:
        return self._routes.url

    @property
    def api_key(self) -> str:
        return self._api_key

    def close(self) -> None:
        self._routes.close()

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
        return f"<RemoteMock {self.url}>"
