"""The journal page's templates: what requests sent is escaped wherever it shows (over HTTP
and in headless chromium), the page code builds no markup itself, and the coverage view."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from playwright.sync_api import Browser, Dialog, expect

from mockserver import MockServer
from mockserver.record.coverage import totals
from mockserver.record.journal import RequestRecord
from mockserver.web.page import TEMPLATES, coverage_view, row_view
from tests.test_admin_page import admin_page, browser

__all__ = ["browser"]  # the fixture, shared with the journal page's tests

PACKAGE = Path(__file__).resolve().parent.parent / "mockserver"
PROMPT = "<script>alert('p')</script>\"prompt"
FIELD = '<script>x</script>"q'
STUB = '<img src=x onerror=alert(1)>".json'
SESSION = '<script>"s</script>'
STUB_PROMPT = "answer from the stub"
# The same, as HTML text: what markupsafe writes for < > " and '.
ESCAPED = {
    "prompt": "&lt;script&gt;alert(&#39;p&#39;)&lt;/script&gt;",
    "field": "&lt;script&gt;x&lt;/script&gt;&#34;q",
    "stub": "&lt;img src=x onerror=alert(1)&gt;&#34;.json",
    "session": "&lt;script&gt;&#34;s&lt;/script&gt;",
}


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[MockServer]:
    """A mock with one stub file whose name is markup, and a request of each hostile kind:
    a prompt and an unknown field (request 1), the stub (2), a session (3)."""
    stub = {
        "description": "answers one prompt, so that its file name shows on the page",
        "match": {"body": {"prompt": STUB_PROMPT}},
        "response": {"status": 200, "body": {"created": "{{created}}", "data": "{{data}}"}},
    }
    (tmp_path / STUB).write_text(json.dumps(stub), encoding="utf-8")
    with MockServer(fixtures=tmp_path) as mock:
        with openai.OpenAI(base_url=mock.api_base, api_key=mock.api_key, max_retries=0) as sdk:
            generate = sdk.images.with_raw_response.generate
            warned = generate(
                model="jimeng-4.0", prompt=PROMPT, n=1, size="1024x1024", extra_body={FIELD: 1}
            )
            assert "X-Mock-Warnings" in warned.headers
            stubbed = generate(model="jimeng-4.0", prompt=STUB_PROMPT, n=1, size="1024x1024")
            assert "X-Mock-Stub" in stubbed.headers
            generate(
                model="jimeng-4.0",
                prompt="tagged",
                n=1,
                size="1024x1024",
                extra_headers={"X-Mock-Session": SESSION},
            )
        assert [r.stub for r in mock.requests] == [None, STUB, None]
        assert [r.session for r in mock.requests] == ["default", "default", SESSION]
        yield mock


def test_what_requests_sent_is_escaped_over_http(hostile: MockServer) -> None:
    text = admin_page(hostile)

    assert "<script" not in text.lower()
    assert "<img src=x" not in text
    assert text.count("<img ") == 3  # a thumbnail per request, and nothing else
    assert "onerror" not in re.sub(r"&lt;img src=x onerror=alert\(1\)&gt;", "", text)
    for kind, escaped in ESCAPED.items():
        assert escaped in text, kind
    # Each where the page shows it: the warning, the stub's tag, the session's tag.
    assert f"warning unknown_field: &#39;{ESCAPED['field']}&#39;" in text
    assert f'<span class="tag">stub {ESCAPED["stub"]}</span>' in text
    assert f'<span class="tag session">session {ESCAPED["session"]}</span>' in text


def test_a_hostile_filter_is_escaped_where_the_form_echoes_it(hostile: MockServer) -> None:
    text = admin_page(hostile, session=SESSION, request_id=FIELD)

    assert "<script" not in text.lower()
    assert f'name="session" value="{ESCAPED["session"]}"' in text
    assert f'name="request_id" value="{ESCAPED["field"]}"' in text
    assert f"Coverage of session {ESCAPED['session']}:" in text
    assert "<tr id=" not in text  # no request has that id


def test_the_browser_builds_no_injected_element(browser: Browser, hostile: MockServer) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        dialogs: list[str] = []

        def dismissed(dialog: Dialog) -> None:  # an alert() run by injected markup
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", dismissed)
        response = page.goto(hostile.url + "/__admin/")
        assert response is not None
        assert response.status == 200
        page.locator("#coverage > summary").click()

        assert page.locator("script").count() == 0  # the page has no script of its own
        assert page.locator("img[onerror]").count() == 0
        sources = page.locator("img").evaluate_all("images => images.map(i => i.src)")
        assert len(sources) == 3
        assert all("/__admin/thumbnails/" in src for src in sources), sources
        # The browser shows what was sent as text, as it was sent.
        expect(page.locator("#request-1 .warning")).to_contain_text(f"'{FIELD}'")
        expect(page.locator("#request-1 pre")).to_contain_text(json.dumps(PROMPT)[1:-1])
        expect(page.locator("#request-2 .tag")).to_have_text(f"stub {STUB}")
        expect(page.locator("#request-3 .tag.session")).to_have_text(f"session {SESSION}")
        expect(page.locator("#coverage .stubs li")).to_have_text(f"{STUB}: 1")
        expect(page.locator("#coverage .unknown_fields")).to_contain_text(f"{FIELD}: 1")
        assert page.locator("#request-1 .tag.session, #request-2 .tag.session").count() == 0
        page.wait_for_timeout(200)
        assert dialogs == []
    finally:
        context.close()


def test_the_session_and_request_id_fields_filter_the_page(
    browser: Browser, hostile: MockServer
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(hostile.url + "/__admin/")
        page.get_by_label("session").fill(SESSION)
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("tbody tr[id]")).to_have_count(1)
        expect(page.locator("tbody tr[id]")).to_have_id("request-3")
        expect(page.locator("#coverage > summary")).to_contain_text(f"of session {SESSION}")

        page.get_by_label("session").fill("")
        page.get_by_label("request id").fill(hostile.requests[1].request_id or "?")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("tbody tr[id]")).to_have_count(1)
        expect(page.locator("tbody tr[id]")).to_have_id("request-2")
    finally:
        context.close()


def test_autoescape_is_on_whatever_the_template() -> None:
    env = TEMPLATES.env
    assert env.autoescape is True  # not select_autoescape(), which goes by the file name
    assert env.from_string("{{ x }}").render(x='<b a="1">') == "&lt;b a=&#34;1&#34;&gt;"
    tags = env.get_template("row.html").module.row(  # type: ignore[attr-defined]
        {
            "id": 7,
            "request_id": "<i>",
            "session": "<s>",
            "clock": "",
            "duration": "",
            "request": "<u>",
            "status": "200",
            "shade": '"><b>',
            "error": None,
            "param": None,
            "message": "",
            "tags": ["<em>"],
            "drift": None,
            "warnings": [],
            "body": "</pre><b>",
            "thumbnails": [],
        }
    )
    # Only the template's own elements: every value given is text.
    opened = " ".join(re.findall(r"<(\w+)", str(tags)))
    assert opened == "tr td br span br span td br span td td span span td pre td", opened


def test_the_page_code_builds_no_markup_by_hand() -> None:
    sources = {
        path.name: path.read_text(encoding="utf-8")
        for path in [
            PACKAGE / "web" / "page.py",
            PACKAGE / "web" / "admin.py",
            *PACKAGE.glob("web/templates/*"),
        ]
    }
    assert "page.html" in sources
    assert not (PACKAGE / "web" / "admin.html").exists()
    for name, text in sources.items():
        for banned in (
            "html.escape",
            "string.Template",
            "|safe",
            "| safe",
            "Markup(",
            "autoescape",
        ):
            if name == "page.py" and banned == "autoescape":
                continue  # where the environment turns it on
            assert banned not in text, (name, banned)
        assert not re.search(r"\bimport html\b|from html import", text), name


REPORT: dict[str, Any] = {
    "session": None,
    "since": 0.0,
    "requests": 12,
    "outcomes": {"answered": 11, "dropped": 1, "client_disconnected": 0},
    "statuses": {"200": 8, "400": 3, "429": 1},
    "errors": {"invalid_api_key": 0, "invalid_value": 3, "rate_limit_exceeded": 1},
    "faults": {"rate_limit": 1, "disconnect": 0},
    "stubs": {"cat.json": 2, "dog.json": 0},
    "fields": {"model": 10, "prompt": 10, "size": 3, "n": 0},
    "models": {"jimeng-4.5": 6, "jimeng-4.0": 4},
    "pairs": {"1:1 x 1k": 0, "1:1 x 2k": 3, "16:9 x 1k": 0},
    "warnings": {"unknown_field": 1, "ignored_field": 0, "size_overrides_ratio": 0},
    "unmatched": 3,
    "other": {"fields": 0, "models": 2},
}
REPORT["totals"] = totals(REPORT)


def test_the_coverage_view_of_a_report() -> None:
    view = coverage_view(REPORT)

    assert view.summary == (
        "errors 2 of 3 seen, faults 1 of 2 exercised, stubs 1 of 2 used, pairs 1 of 3 sent"
    )
    assert (view.session, view.since, view.requests, view.unmatched) == (
        None,
        "1970-01-01 00:00:00 UTC",
        12,
        3,
    )
    never = {g.name: [n for n, count in g.entries if not count] for g in view.marked}
    assert never == {
        "errors": ["invalid_api_key"],
        "faults": ["disconnect"],
        "stubs": ["dog.json"],
        "pairs": ["1:1 x 1k", "16:9 x 1k"],
    }
    assert all(g.verb for g in view.marked)
    assert [g.name for g in view.counted] == [
        "outcomes",
        "statuses",
        "fields",
        "models",
        "warnings",
    ]
    assert not any(g.verb for g in view.counted)  # plain counts: no "never" there
    assert view.other == (("models", 2),)


def test_the_page_marks_what_was_never_used(hostile: MockServer) -> None:
    text = admin_page(hostile)
    report = hostile.coverage()
    view = coverage_view(report)

    assert f"{view.summary}</summary>" in text
    assert "stubs 1 of 1 used" in view.summary
    errors = re.search(r'<ul class="counts errors">(.*?)</ul>', text, re.S)
    assert errors is not None
    never = re.findall(r'<li class="never">([^<:]+): never</li>', errors[1])
    assert never == [code for code, count in report["errors"].items() if not count]
    assert len(never) == len(report["errors"])  # three valid requests: no error yet
    assert '<li class="never">1:1 x 1k: never</li>' in text


def test_an_image_url_that_is_not_http_is_shown_without_its_link() -> None:
    """In proxy mode the URLs are the upstream's own: a `javascript:` one escapes intact."""
    hostile = "javascript:alert(1)//images/m/1024x1024/x.png"
    mine = "http://127.0.0.1:9/images/m/1024x1024/y.png"
    record = RequestRecord(1, 0.0, "POST", "/v1/images/generations", {}, None, 200)
    record = dataclasses.replace(record, images=(hostile, mine))
    view = row_view(record)

    assert [t["href"] for t in view["thumbnails"]] == [None, mine]
    html = str(TEMPLATES.env.get_template("row.html").module.row(view))  # type: ignore[attr-defined]
    assert re.findall(r'href="([^"]*)"', html) == [mine]
    assert html.count("<img ") == 2
    assert '<img src="/__admin/thumbnails/m/1024x1024/x.png" width="160" height="160"' in html
