"""Item 5: a soak of mixed requests against the command, watching the server's memory.

The requests are prepared first (image URLs from real answers), each sent once to learn its
status, then sent in turn by the load tool: up to exactly 1,000 server requests (RSS
sampled), then in ten phases to exactly the total (RSS after each, and the peak).
"""

from __future__ import annotations

import http.client
import json
import random
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    Figure,
    ServerProcess,
    Target,
    children,
    hello_cmd,
    mock_cmd,
    rss_kb,
    step,
)
from bench.load import LoadResult, raw_request, run_load

AUTH = {"Authorization": "Bearer sk-soak"}
JSON = {"Content-Type": "application/json"}
SAMPLE_AT = 1_000
# Peak RSS of the 100,000-request soak: 45 MB measured before, plus 10%.
PEAK_TARGET_MB = 49.5
# Blocks of the request list: 40 generation prompts each, so 4,000 distinct bodies in all.
BLOCKS = 100

SUBJECTS = [
    "a lighthouse at dusk",
    "一只在阳光下的猫",
    "a red fox in the snow",
    "poster: neon city, rain",
    "watercolour harbour",
    "isometric robot workshop",
    "macro shot of dew on a leaf",
    "a bowl of ramen, top view",
]
SIZE_FIELDS: list[dict[str, str]] = [
    {"size": "1024x1024"},
    {"size": "2048*2048"},
    {"ratio": "16:9", "resolution": "2k"},
    {"ratio": "3:4", "resolution": "1k"},
    {"size": "1280x720"},
    {"ratio": "21:9", "resolution": "4k"},
    {},
]
# Image URLs come from real answers: the mock draws no size a request cannot get. The
# smallest are the 1k ratios (about 0.6 megapixels); a few are 1024x1024.
SMALL_IMAGES: list[dict[str, Any]] = [
    {"ratio": ratio, "resolution": "1k", "n": 2}
    for ratio in ("16:9", "9:16", "21:9", "4:3", "3:4", "3:2")
]
BIG_IMAGES: list[dict[str, Any]] = [{"size": "1024x1024", "n": 3}]


@dataclass
class Settings:
    total: int = 100_000


@dataclass
class Entry:
    kind: str
    raw: bytes
    status: int  # what the validation pass got


def _generation(host: str, body: dict[str, Any]) -> bytes:
    headers = {**AUTH, **JSON}
    payload = json.dumps(body, ensure_ascii=False)
    return raw_request("POST", "/v1/images/generations", host=host, headers=headers, body=payload)


def _invalid_requests(host: str, gen: str) -> list[tuple[str, bytes]]:
    """Requests the mock refuses: bad bodies, keys, media types, paths and methods."""

    def post(body: str, headers: dict[str, str]) -> bytes:
        return raw_request("POST", gen, host=host, headers=headers, body=body)

    valid = {"model": "jimeng-4.5", "prompt": "a cat", "n": 1}
    bad_bodies = [
        '{"model": "jimeng-4.5", "prompt": ',
        "not json",
        "[1, 2]",
        json.dumps({**valid, "size": "10x10"}),
        json.dumps({**valid, "size": "abc"}),
        json.dumps({**valid, "size": "100000x2"}),
        json.dumps({**valid, "n": 16}),
        json.dumps({**valid, "n": 0}),
        json.dumps({"model": "jimeng-4.5", "n": 1}),
        json.dumps({**valid, "model": "dall-e-3"}),
    ]
    others: list[tuple[str, bytes]] = [
        ("invalid", post(body, {**AUTH, **JSON})) for body in bad_bodies
    ]
    others += [
        ("invalid", post(json.dumps(valid), JSON)),
        ("invalid", post(json.dumps(valid), {"Authorization": "Basic eHl6", **JSON})),
        ("invalid", post(json.dumps(valid), {**AUTH, "Content-Type": "text/plain"})),
        ("invalid", raw_request("GET", "/v1/nope", host=host, headers=AUTH)),
        ("invalid", post(json.dumps(valid), {**AUTH, **JSON}).replace(gen.encode(), b"/v1/x", 1)),
        ("invalid", raw_request("GET", gen + "/", host=host, headers=AUTH)),
        ("invalid", raw_request("GET", gen, host=host, headers=AUTH)),
        ("invalid", raw_request("GET", "/favicon.ico", host=host)),
    ]
    return others


def _image_and_model_requests(
    host: str, big: list[str], small: list[str]
) -> list[tuple[str, bytes]]:
    """Image fetches (issued URLs and broken ones) and the model routes."""
    others: list[tuple[str, bytes]] = []
    fetches = [*(small * 2)[:22], *big[:3]]
    others += [("image", raw_request("GET", path, host=host)) for path in fetches]
    others += [("models", raw_request("GET", "/v1/models", host=host, headers=AUTH))] * 5
    others += [("models", raw_request("GET", "/v1/models/jimeng-4.0", host=host, headers=AUTH))] * 2
    others += [("models", raw_request("GET", "/v1/models/nope", host=host, headers=AUTH))]
    some = small[0]
    bad_images = [
        some[:-8] + "0000.png" if not some.endswith("0000.png") else some[:-8] + "1111.png",
        "/images/jimeng-4.5/64x64/nothex-1-0123456789abcdef.png",
        "/images/jimeng-4.5/64x64/0123456789abcdef-1-0123456789abcdef.png",
        "/images/jimeng-4.5/0x64/0123456789abcdef-1-0123456789abcdef.png",
        "/images/bad model/64x64/0123456789abcdef-1-0123456789abcdef.png".replace(" ", "%20"),
        "/images/jimeng-4.5/64x64",
    ]
    others += [("image-404", raw_request("GET", path, host=host)) for path in bad_images]
    return others


def build_requests(
    host: str, big: list[str], small: list[str], blocks: int = 1
) -> list[tuple[str, bytes]]:
    """`blocks` blocks of about a hundred requests of every kind, in the same shuffled order
    each; the generations' prompts differ from block to block, the rest is the same."""
    gen = "/v1/images/generations"
    template: list[tuple[str, Callable[[int], bytes]]] = []

    def generation(i: int) -> Callable[[int], bytes]:
        def make(block: int) -> bytes:
            body: dict[str, Any] = {
                "model": "jimeng-4.5" if i % 2 else "jimeng-4.0",
                "prompt": f"{SUBJECTS[i % len(SUBJECTS)]} #{i}" + (f" ({block})" if block else ""),
                "n": 1 + i % 4,
                **SIZE_FIELDS[i % len(SIZE_FIELDS)],
            }
            return _generation(host, body)

        return make

    def same(raw: bytes) -> Callable[[int], bytes]:
        return lambda block: raw

    template += [("generate", generation(i)) for i in range(40)]
    b64 = {"model": "jimeng-4.0", "prompt": "b64 soak", "n": 1, "response_format": "b64_json"}
    template.append(
        ("generate", same(_generation(host, {**b64, "ratio": "16:9", "resolution": "1k"})))
    )

    others = _invalid_requests(host, gen)
    others += _image_and_model_requests(host, big, small)
    others += [("health", raw_request("GET", "/healthz", host=host))] * 3
    template += [(kind, same(raw)) for kind, raw in others]
    random.Random(42).shuffle(template)
    return [(kind, make(block)) for block in range(blocks) for kind, make in template]


def send_once(host: str, port: int, raw: bytes) -> int:
    """The status one raw request gets, on a connection of its own."""
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(raw)
        response = http.client.HTTPResponse(sock)
        response.begin()
        response.read()
        return response.status


def _sent_per_entry(entries: int, sent: int) -> list[int]:
    """How often each entry was sent, when `sent` requests went through the list in turn."""
    return [sent // entries + (1 if i < sent % entries else 0) for i in range(entries)]


def _chunks(total: int, prep: int) -> list[int]:
    """Phase sizes: to exactly SAMPLE_AT requests (after `prep`), then up to ten more to total."""
    rest = total - SAMPLE_AT
    parts = max(1, min(10, rest // 1_000))
    return [SAMPLE_AT - prep] + [
        rest // parts + (1 if i < rest % parts else 0) for i in range(parts)
    ]


@dataclass
class Soak:
    """Consecutive load phases over one request list, the server's memory after each."""

    done: list[int]  # server requests after each phase (the first sample is the start)
    rss: list[dict[str, int]]
    phases: list[LoadResult]

    @property
    def sent(self) -> int:
        return sum(p.sent for p in self.phases)

    @property
    def answered(self) -> int:
        return sum(p.answered for p in self.phases)

    @property
    def rps(self) -> float:
        return self.answered / sum(p.duration_s for p in self.phases)

    def trajectory(self) -> list[tuple[int, float]]:
        return [(n, r["VmRSS"] / 1024) for n, r in zip(self.done, self.rss, strict=True)]


def soak(
    tool: str, url: str, pid: int, requests: list[bytes], counts: list[int], prep: int
) -> Soak:
    result = Soak(done=[prep], rss=[rss_kb(pid)], phases=[])
    offset = 0
    for count in counts:
        # Stop anyway, and report the count reached, if answers come slower than 200 a second.
        phase = run_load(
            tool,
            url,
            requests,
            connections=32,
            count=count,
            offset=offset,
            timeout=max(30, count // 200),
        )
        offset = (offset + phase.sent) % len(requests)
        result.phases.append(phase)
        result.done.append(result.done[-1] + phase.sent)
        result.rss.append(rss_kb(pid))
    return result


def _statuses(entries: list[Entry], mock_soak: Soak) -> tuple[Counter[int], Counter[int]]:
    """The statuses the soak's answers should have had, by the check, and those they had."""
    expected: Counter[int] = Counter()
    for entry, n in zip(entries, _sent_per_entry(len(entries), mock_soak.sent), strict=True):
        expected[entry.status] += n
    observed: Counter[int] = Counter()
    for phase in mock_soak.phases:
        observed.update(phase.statuses)
    return expected, observed


def _checked(host: str, port: int, listed: list[tuple[str, bytes]], block: int) -> list[Entry]:
    """The requests, each with the status its first block's copy was answered with."""
    statuses = [send_once(host, port, raw) for _kind, raw in listed[:block]]
    return [Entry(kind, raw, statuses[i % block]) for i, (kind, raw) in enumerate(listed)]


def _samples(mock_soak: Soak, floor: Soak) -> dict[str, Any]:
    """The memory samples and phases of the soak and of its floor, for the JSON."""
    return {
        "rss_mb_by_requests": mock_soak.trajectory(),
        "rss_kb_samples": mock_soak.rss,
        "phases": [p.as_json() for p in mock_soak.phases],
        "floor_rss_mb_by_requests": floor.trajectory(),
        "floor_rss_kb_samples": floor.rss,
        "floor_phases": [p.as_json() for p in floor.phases],
    }


def _image_paths(url: str) -> tuple[list[str], list[str], int]:
    """The paths of small and big images the mock issued, and how many requests that took."""
    prep = 0
    small: list[str] = []
    big: list[str] = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for fields, urls in [(f, small) for f in SMALL_IMAGES] + [(f, big) for f in BIG_IMAGES]:
            body = {"model": "jimeng-4.5", "prompt": "soak images", **fields}
            answer = client.post("/v1/images/generations", json=body, headers=AUTH)
            prep += 1
            answer.raise_for_status()
            urls += [httpx.URL(d["url"]).raw_path.decode() for d in answer.json()["data"]]
    return small, big, prep


def _memory_figures(
    total: int, mock_soak: Soak, floor: Soak, how: str, note: str, extra: dict[str, Any]
) -> list[Figure]:
    """Peak memory and its growth since the first sample, beside the floor's."""
    mib = 1 / 1024
    rss_first, rss_end = mock_soak.rss[1], mock_soak.rss[-1]
    growth = (rss_end["VmRSS"] - rss_first["VmRSS"]) * mib
    floor_growth = (floor.rss[-1]["VmRSS"] - floor.rss[1]["VmRSS"]) * mib
    floor_label = "hello-world, same requests"
    return [
        Figure(
            5,
            "soak.peak_rss",
            f"soak peak RSS (VmHWM), {total:,} requests",
            "MB",
            runs=[rss_end["VmHWM"] * mib],
            floor_runs=[floor.rss[-1]["VmHWM"] * mib],
            floor_label=floor_label,
            target=Target("<=", PEAK_TARGET_MB),
            tool=how,
            note=note,
            extra=extra,
        ),
        Figure(
            5,
            "soak.rss_growth",
            f"soak RSS growth, after {SAMPLE_AT:,} to after {total:,}",
            "MB",
            runs=[growth],
            floor_runs=[floor_growth],
            floor_label=floor_label,
            target=Target("abs<", 5.0),
            tool=how,
            show_ratio=False,
        ),
    ]


def _figures(
    total: int,
    mock_soak: Soak,
    floor: Soak,
    distinct: int,
    how: str,
    note: str,
    extra: dict[str, Any],
) -> list[Figure]:
    """The soak's figures: peak memory, its growth, and throughput, beside the floor's."""
    mib = 1 / 1024
    rss_end = mock_soak.rss[-1]
    floor_label = "hello-world, same requests"
    warm = min(2, len(mock_soak.done) - 1)  # the sample after the first phase past 1,000
    warm_at = mock_soak.done[warm]
    return [
        *_memory_figures(total, mock_soak, floor, how, note, extra),
        Figure(
            5,
            "soak.rss_growth_warm",
            f"soak RSS growth, after {warm_at:,} to after {total:,}",
            "MB",
            runs=[(rss_end["VmRSS"] - mock_soak.rss[warm]["VmRSS"]) * mib],
            floor_runs=[(floor.rss[-1]["VmRSS"] - floor.rss[warm]["VmRSS"]) * mib],
            floor_label=floor_label,
            tool=how,
            show_ratio=False,
            note=(
                f"no target; by {warm_at:,} requests the list of {distinct:,} "
                f"has gone round {warm_at / distinct:.1f} times"
            ),
        ),
        Figure(
            5,
            "soak.rps",
            "soak throughput, mixed requests",
            "req/s",
            runs=[mock_soak.rps],
            floor_runs=[floor.rps],
            floor_label=floor_label,
            tool=how,
            note="no target",
        ),
    ]


def run(tool: str, settings: Settings) -> list[Figure]:
    total = settings.total
    notes: list[str] = []
    with ServerProcess(mock_cmd()) as mock, step(f"soak: {total:,} mixed requests"):
        cmdline = Path(f"/proc/{mock.pid}/cmdline").read_text().replace("\0", " ").strip()
        if "jimeng-mock" not in cmdline:
            notes.append(f"process {mock.pid} is not the command: {cmdline}")
        rss_start = rss_kb(mock.pid)
        small, big, prep = _image_paths(mock.url)
        # Every request of the first block is sent once to learn its status; the other
        # blocks differ only by the prompts of their generations, which get the same.
        listed = build_requests(f"{mock.host}:{mock.port}", big, small, BLOCKS)
        block = len(listed) // BLOCKS
        entries = _checked(mock.host, mock.port, listed, block)
        prep += block
        bad_small = [e for e in entries[:block] if e.kind == "image" and e.status != 200]
        if bad_small:
            notes.append(f"{len(bad_small)} image fetches did not answer 200 when checked")
        requests = [e.raw for e in entries]
        counts = _chunks(total, prep)
        mock_soak = soak(tool, mock.url, mock.pid, requests, counts, prep)
        kids = children(mock.pid)
    with step("soak floor: the same against the hello-world"), ServerProcess(hello_cmd()) as hello:
        floor = soak(tool, hello.url, hello.pid, requests, _chunks(total, 0), 0)
    expected, observed = _statuses(entries, mock_soak)
    differing = sum((expected - observed).values())
    answered = prep + mock_soak.answered
    server_requests = prep + mock_soak.sent

    rss_end = mock_soak.rss[-1]
    if kids:
        notes.append(f"the server has child processes {kids}: their memory is not counted")
    extra = {
        "server_cmdline": cmdline,
        "server_pid": mock.pid,
        "server_children": kids,
        "threads_at_end": rss_end.get("Threads"),
        "requests_sent": server_requests,
        "answers": answered,
        "prepared_requests": prep,
        "mix_per_block": dict(Counter(e.kind for e in entries[:block])),
        "blocks": BLOCKS,
        "distinct_requests": len(set(requests)),
        "statuses_expected": {str(k): v for k, v in sorted(expected.items())},
        "statuses_observed": {str(k): v for k, v in sorted(observed.items())},
        "answers_not_as_expected": differing,
        "rss_kb_at_start": rss_start,
        **_samples(mock_soak, floor),
        "notes": notes,
    }
    how = f"{mock_soak.phases[0].tool}, 1 run of {server_requests:,} requests"
    path = ", ".join(f"{mb:.1f}" for _, mb in mock_soak.trajectory()[1:])
    note = "; ".join(
        [
            f"{answered:,} answered, {differing} unlike their check; RSS MB after "
            f"{SAMPLE_AT:,} and each later phase: {path}",
            *notes,
        ]
    )
    return _figures(total, mock_soak, floor, len(requests), how, note, extra)
