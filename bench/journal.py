"""Item 7: the journal filled with 1 MB bodies, watching the server's memory.

`jimeng-mock --port 0`, with its defaults (--journal-size 1000, --journal-mb 32, --max-body
1 MiB), a fresh server for each of two kinds of body, 1,000 valid generations of each, sent
one after another on one keep-alive connection, every answer checked to be 200:

- `image`: each with its own data: URI of about 1 MB in `image`. The journal keeps each as
  an excerpt of 256 characters, so it stays in kilobytes whatever the bodies weigh.
- `strings`: each with 1,000 strings of 900 characters in `user` (an option of other APIs,
  ignored: about 900 KB of JSON, no string long enough to be cut). Nothing makes these
  small: the journal keeps the newest that fit in its 32 MiB and drops the others.

The figure is the server's peak RSS (VmHWM) less its RSS after a warm-up of small requests
(the floor); the target is within --journal-mb plus a fixed MARGIN_MB of 24 MB. The margin is
for what 1 MB bodies cost outside the journal: each is read, decoded, parsed and validated in
several copies, and the heap keeps the high-water mark of those. Measured: the `image` run
grows by about 40 MB of which the journal is some 3 MB, and stays there (about 45 MB after
3,000 requests); the `strings` run by about 48 MB, of which the journal is 31 MiB. Before the
journal was bounded in bytes, 200 requests of either kind grew it by 190 MB.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.common import Figure, ServerProcess, Target, mock_cmd, rss_kb, step

JOURNAL_MB = 32  # the command's default, which the mock is started with
MARGIN_MB = 24.0
AUTH = {"Authorization": "Bearer sk-journal", "Content-Type": "application/json"}
BASE = {"model": "jimeng-4.0", "prompt": "journal filler", "n": 1, "size": "1024x1024"}
IMAGE_CHARS = 1_000_000
STRINGS, STRING_CHARS = 1_000, 900


@dataclass
class Settings:
    requests: int = 1_000
    warmup: int = 50


def image_body(index: int) -> bytes:
    """A generation with a data: URI of about 1 MB, different for each `index`."""
    head = f"data:image/png;base64,{index:012d}"
    image = head + "A" * (IMAGE_CHARS - len(head))
    return json.dumps({**BASE, "prompt": f"journal filler {index}", "image": [image]}).encode()


def strings_body(index: int) -> bytes:
    """A generation with 1,000 strings of 900 characters in the ignored field `user`."""
    strings = [f"{index:08d}-{i:05d}-".ljust(STRING_CHARS, "s") for i in range(STRINGS)]
    return json.dumps({**BASE, "prompt": f"journal filler {index}", "user": strings}).encode()


def _send(conn: http.client.HTTPConnection, body: bytes) -> int:
    conn.request("POST", "/v1/images/generations", body=body, headers=AUTH)
    answer = conn.getresponse()
    answer.read()
    return answer.status


def fill(kind: str, make: Callable[[int], bytes], settings: Settings) -> dict[str, Any]:
    """One fresh server filled with `settings.requests` bodies from `make`: its memory."""
    with ServerProcess(mock_cmd()) as mock:
        conn = http.client.HTTPConnection(mock.host, mock.port, timeout=60)
        small = json.dumps(BASE).encode()
        statuses = [_send(conn, small) for _ in range(settings.warmup)]
        start = rss_kb(mock.pid)
        samples: list[tuple[int, float]] = []
        started = time.perf_counter()
        for index in range(settings.requests):
            statuses.append(_send(conn, make(index)))
            if (index + 1) % max(1, settings.requests // 10) == 0:
                samples.append((index + 1, rss_kb(mock.pid)["VmRSS"] / 1024))
        seconds = time.perf_counter() - started
        end = rss_kb(mock.pid)
        listed_at = time.perf_counter()
        conn.request("GET", "/__admin/requests?limit=1")
        head = json.loads(conn.getresponse().read())
        conn.request("GET", "/__admin/requests")
        whole = conn.getresponse().read()
        listed_s = time.perf_counter() - listed_at
        after_listing = rss_kb(mock.pid)
        conn.close()
    odd = sorted({s for s in statuses if s != 200})
    return {
        "kind": kind,
        "requests": settings.requests,
        "body_bytes": len(make(0)),
        "seconds": seconds,
        "rss_kb_after_warmup": start,
        "rss_kb_at_end": end,
        "rss_kb_after_listing": after_listing,
        "rss_mb_by_requests": samples,
        "peak_growth_mb": (end["VmHWM"] - start["VmRSS"]) / 1024,
        "peak_growth_with_listing_mb": (after_listing["VmHWM"] - start["VmRSS"]) / 1024,
        "journal": {k: head[k] for k in ("journal_size", "journal_mb", "journal_bytes", "dropped")},
        "kept": json.loads(whole)["count"],
        "listing_bytes": len(whole),
        "listing_s": listed_s,
        "non_200": odd,
    }


def run(settings: Settings) -> list[Figure]:
    figures = []
    for kind, make, what in (
        ("image", image_body, "a 1 MB data: image each"),
        ("strings", strings_body, "1,000 strings of 900 characters each"),
    ):
        with step(f"journal: {settings.requests:,} requests with {what}"):
            result = fill(kind, make, settings)
        journal = result["journal"]
        note = (
            f"RSS {result['rss_kb_after_warmup']['VmRSS'] / 1024:.1f} MB after the warm-up, "
            f"{result['rss_kb_at_end']['VmRSS'] / 1024:.1f} MB at the end; the journal's "
            f"estimate {journal['journal_bytes'] / 2**20:.1f} MiB, {journal['dropped']:,} "
            f"dropped; GET /__admin/requests {result['listing_bytes'] / 2**20:.1f} MB in "
            f"{result['listing_s'] * 1000:.0f} ms, peak growth with it "
            f"{result['peak_growth_with_listing_mb']:.1f} MB; "
            f"{result['requests'] / result['seconds']:.0f} req/s"
        )
        figures.append(
            Figure(
                7,
                f"journal.{kind}.peak_growth",
                f"journal filled with {what}: peak RSS growth",
                "MB",
                runs=[result["peak_growth_mb"]],
                floor_runs=[result["rss_kb_after_warmup"]["VmRSS"] / 1024],
                floor_label="the mock's RSS after start and a warm-up of small requests",
                target=Target("<=", JOURNAL_MB + MARGIN_MB),
                tool=f"http.client, 1 connection, {result['requests']:,} requests in turn",
                note=note,
                extra=result,
                show_ratio=False,
                check_failed=f"answers other than 200: {result['non_200']}"
                if result["non_200"]
                else None,
            )
        )
    return figures
