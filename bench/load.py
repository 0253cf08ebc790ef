"""Load generation: wrk with a generated Lua script, or `bench.loadgen` when wrk is missing.

Both take a list of raw HTTP/1.1 requests, sent in turn over keep-alive connections, or a
`Unique` template, from which every request is made afresh with a body of its own (a
counter in it), for a duration or for an exact number of answers, and report answers per
second, latency percentiles and the count of each status.
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import CLIENT_CPU, ROOT, pinned

MARK = "BENCH-RESULT "
LIMIT_MARK = "BENCH-LIMIT"


def raw_request(
    method: str,
    path: str,
    *,
    host: str,
    headers: Mapping[str, str] | None = None,
    body: bytes | str | None = None,
) -> bytes:
    """One HTTP/1.1 request as bytes, with Host and (for a body) Content-Length."""
    payload = body.encode() if isinstance(body, str) else body
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if payload is not None:
        lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (payload or b"")


@dataclass(frozen=True)
class Unique:
    """Requests made one by one, each with a body never sent before: `body` with its one
    `{n}` replaced by `tag` and a counter (1, 2, ...) that the load tool keeps.

    The tag tells one load run from another, so bodies are not repeated across the runs of
    a benchmark either; wrk runs one thread, so its counter is one for all connections.
    """

    method: str
    path: str
    host: str
    headers: Mapping[str, str]
    body: str  # holds "{n}" once, as a JSON string's content: no quoting needed
    tag: str

    def parts(self) -> tuple[str, str]:
        prefix, mark, suffix = self.body.partition("{n}")
        if not mark or "{n}" in suffix:
            raise ValueError("a Unique body holds {n} exactly once")
        return prefix + self.tag + "-", suffix

    def make(self, n: int) -> bytes:
        """Request number `n` (from 1), as the load tools make it."""
        prefix, suffix = self.parts()
        return raw_request(
            self.method,
            self.path,
            host=self.host,
            headers=self.headers,
            body=f"{prefix}{n}{suffix}",
        )

    def loadgen_config(self) -> dict[str, str]:
        """What bench.loadgen needs to make the requests: the head without its blank line
        (Content-Length goes last), and the body around the counter."""
        prefix, suffix = self.parts()
        head = raw_request(self.method, self.path, host=self.host, headers=self.headers)
        return {
            "head": head.decode("latin-1").removesuffix("\r\n"),
            "prefix": prefix,
            "suffix": suffix,
        }

    def with_tag(self, tag: str) -> Unique:
        return Unique(self.method, self.path, self.host, self.headers, self.body, tag)


Requests = Sequence[bytes] | Unique


@dataclass
class LoadResult:
    """What one load run measured."""

    tool: str
    answered: int
    sent: int
    duration_s: float
    rps: float
    latency_us: dict[str, float]
    statuses: dict[int, int]
    errors: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    server_cpu: float = 0.0  # CPU seconds of the server per second of the run (0: not read)
    client_cpu: float = 0.0  # CPU seconds of the load tool per second of the run

    @property
    def non_200(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)

    def as_json(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "answered": self.answered,
            "sent": self.sent,
            "duration_s": self.duration_s,
            "rps": self.rps,
            "latency_us": self.latency_us,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": self.errors,
            "wall_s": self.wall_s,
            "server_cpu": self.server_cpu,
            "client_cpu": self.client_cpu,
        }


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def wrk_version() -> str:
    """`wrk 4.1.0` (from `wrk -v`, whose first line also names the packager and the poller)."""
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"wrk \S*?([0-9][0-9.]*)", out)
    return f"wrk {match[1]}" if match else "wrk"


def _lua_string(data: bytes) -> str:
    """A Lua string literal of `data` (decimal escapes for everything but plain ASCII)."""
    plain = {c for c in range(32, 127)} - {ord('"'), ord("\\")}
    return '"' + "".join(chr(c) if c in plain else f"\\{c:03d}" for c in data) + '"'


_LUA = """\
-- Generated by bench/load.py: send the requests in turn; stop after LIMIT answers (0: none).
local limit = %(limit)d
local sent, answered = 0, 0
local primed = false
statuses = {}
counts = {}
%(next_request)s

function request()
  -- wrk calls request() once to check the script before connecting; that one is not sent.
  if not primed then
    primed = true
    return next_request(0)
  end
  if limit > 0 and sent >= limit then
    return ""  -- nothing to write: the connection stays idle until wrk stops
  end
  sent = sent + 1
  counts.sent = sent
  return next_request(sent)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  answered = answered + 1
  counts.answered = answered
  if limit > 0 and answered == limit then
    io.write("%(limit_mark)s\\n")
    io.flush()
    wrk.thread:stop()
  end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests_)
  local parts = {}
  local sent_total, answered_total = 0, 0
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      table.insert(parts, string.format('"%%d": %%d', status, n))
    end
    local c = thread:get("counts")
    sent_total = sent_total + (c.sent or 0)
    answered_total = answered_total + (c.answered or 0)
  end
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests": %%d, "duration_us": %%d, "bytes": %%d, "sent": %%d, ' ..
    '"answered": %%d, "statuses": {%%s}, "errors": {"connect": %%d, "read": %%d, ' ..
    '"write": %%d, "status": %%d, "timeout": %%d}, "latency_us": {"p50": %%f, "p90": %%f, ' ..
    '"p99": %%f, "max": %%f, "mean": %%f}}\\n',
    summary.requests, summary.duration, summary.bytes, sent_total, answered_total,
    table.concat(parts, ", "), e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
"""


_LIST = """\
local requests = {
%(requests)s
}
local offset = %(offset)d  -- where in the list to start

local function next_request(i)
  -- Request i (from 1) is the list's (offset + i)th, round and round; 0 is the check call.
  return requests[(offset + math.max(i, 1) - 1) %% #requests + 1]
end
"""

_UNIQUE = """\
local method, path = %(method)s, %(path)s
local headers = {
%(headers)s
}
local prefix, suffix = %(prefix)s, %(suffix)s
local made = 0

local function next_request(i)
  -- Every call makes a new body, the check call's too: none is ever sent twice.
  made = made + 1
  return wrk.format(method, path, headers, prefix .. made .. suffix)
end
"""


def write_lua(directory: Path, requests: Requests, limit: int = 0, offset: int = 0) -> Path:
    """The Lua script that makes wrk send `requests` in turn from `offset`, or every request
    afresh from a `Unique` template (and stop after `limit` answers)."""
    if isinstance(requests, Unique):
        prefix, suffix = requests.parts()
        headers = {"Host": requests.host, **requests.headers}
        next_request = _UNIQUE % {
            "method": _lua_string(requests.method.encode()),
            "path": _lua_string(requests.path.encode()),
            "headers": ",\n".join(
                f"  [{_lua_string(k.encode())}] = {_lua_string(v.encode())}"
                for k, v in headers.items()
            ),
            "prefix": _lua_string(prefix.encode()),
            "suffix": _lua_string(suffix.encode()),
        }
    else:
        next_request = _LIST % {
            "requests": ",\n".join(f"  {_lua_string(r)}" for r in requests),
            "offset": offset,
        }
    script = directory / "requests.lua"
    script.write_text(
        _LUA
        % {
            "next_request": next_request,
            "limit": limit,
            "mark": MARK,
            "limit_mark": LIMIT_MARK,
        }
    )
    return script


def run_wrk(
    url: str,
    requests: Requests,
    *,
    connections: int = 32,
    duration: float | None = None,
    count: int | None = None,
    offset: int = 0,
    timeout: float = 600,
) -> LoadResult:
    """wrk (1 thread) on CPU 1: `duration` seconds, or until exactly `count` answers."""
    with tempfile.TemporaryDirectory(prefix="jimeng-bench-") as tmp:
        script = write_lua(Path(tmp), requests, count or 0, offset)
        seconds = max(1, round(duration)) if duration else int(timeout)
        cmd = pinned(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout",
                "30s",
                "-s",
                str(script),
                url,
            ],
            CLIENT_CPU,
        )
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stderr is not None
        out: list[str] = []
        stderr: list[str] = []
        threading.Thread(target=lambda: stderr.extend(proc.stderr or []), daemon=True).start()
        for line in proc.stdout:
            out.append(line)
            if count and line.strip() == LIMIT_MARK:
                # wrk's main thread sleeps for the whole duration: wake it to report now.
                proc.send_signal(signal.SIGINT)
        proc.wait()
    found = [line for line in out if line.startswith(MARK)]
    if proc.returncode != 0 or not found:
        raise RuntimeError(
            f"wrk failed ({proc.returncode}): {''.join(out)[-500:]} {''.join(stderr)[-500:]}"
        )
    data = json.loads(found[-1][len(MARK) :])
    duration_s = data["duration_us"] / 1e6
    return LoadResult(
        tool=wrk_version(),
        answered=data["answered"],
        sent=data["sent"],
        duration_s=duration_s,
        rps=data["requests"] / duration_s if duration_s else 0.0,
        latency_us=data["latency_us"],
        statuses={int(k): v for k, v in data["statuses"].items()},
        errors={k: v for k, v in data["errors"].items() if k != "status"},
    )


def run_python(
    url: str,
    requests: Requests,
    *,
    connections: int = 32,
    duration: float | None = None,
    count: int | None = None,
    offset: int = 0,
    timeout: float = 600,
) -> LoadResult:
    """`bench.loadgen` in its own process on CPU 1, with the same contract as `run_wrk`."""
    host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
    config = {
        "host": host,
        "port": int(port),
        "connections": connections,
        "duration": duration or timeout,  # a count run stops at the timeout too
        "count": count,
        "offset": offset,
    }
    if isinstance(requests, Unique):
        config["unique"] = requests.loadgen_config()
    else:
        config["requests"] = [r.decode("latin-1") for r in requests]
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="jimeng-bench-") as file:
        json.dump(config, file)
        file.flush()
        cmd = pinned([sys.executable, "-m", "bench.loadgen", file.name], CLIENT_CPU)
        done = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout + 120, check=False
        )
    found = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not found:
        raise RuntimeError(f"bench.loadgen failed ({done.returncode}): {done.stderr[-800:]}")
    data = json.loads(found[-1][len(MARK) :])
    return LoadResult(
        tool="bench.loadgen (Python)",
        answered=data["answered"],
        sent=data["sent"],
        duration_s=data["duration_s"],
        rps=data["answered"] / data["duration_s"] if data["duration_s"] else 0.0,
        latency_us=data["latency_us"],
        statuses={int(k): v for k, v in data["statuses"].items()},
        errors=data["errors"],
    )


def run_load(tool: str, url: str, requests: Requests, **options: Any) -> LoadResult:
    """Run `requests` (a list, or a `Unique` template) against `url` with `tool` ("wrk" or
    "python")."""
    started = time.perf_counter()
    before = _children_cpu()
    result = (run_wrk if tool == "wrk" else run_python)(url, requests, **options)
    result.wall_s = time.perf_counter() - started
    result.client_cpu = (_children_cpu() - before) / result.wall_s
    return result


def _children_cpu() -> float:
    """CPU seconds of this process's children that have ended (the load tool, once run)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
