"""What every benchmark shares: figures and targets, server processes, CPU pinning, RSS."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
READY = re.compile(r"listening on http://(?P<host>[^\s:/]+):(?P<port>\d+)")

# Servers run on CPU 0, load generators and the harness on CPU 1, when there are two.
SERVER_CPU = 0
CLIENT_CPU = 1


def pinning() -> bool:
    return (os.cpu_count() or 1) >= 2


def pin_self() -> None:
    """Keep the harness (and clients started from it) off the servers' CPU."""
    if pinning():
        os.sched_setaffinity(0, {CLIENT_CPU})


def pinned(cmd: Sequence[str], cpu: int) -> list[str]:
    """`cmd` run on one CPU with taskset (which execs it: the PID is the command's own)."""
    if not pinning() or shutil.which("taskset") is None:
        return list(cmd)
    return ["taskset", "-c", str(cpu), *cmd]


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(p / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


@dataclass
class Target:
    """What a figure should be: `op` ("<", "<=", ">=" or "abs<") `value`, on it or on its
    ratio."""

    op: str
    value: float
    on: str = "value"  # or "ratio"

    def met(self, value: float | None, ratio: float | None) -> bool | None:
        x = ratio if self.on == "ratio" else value
        if x is None:
            return None
        if self.op == "abs<":
            return abs(x) < self.value
        if self.op == "<=":
            return x <= self.value
        return x < self.value if self.op == "<" else x >= self.value

    def describe(self, unit: str) -> str:
        what = "ratio" if self.on == "ratio" else ""
        op = "|x| <" if self.op == "abs<" else self.op
        amount = f"{self.value:g}" + ("" if self.on == "ratio" else f" {unit}")
        return " ".join(part for part in (what, op, amount) if part)


@dataclass
class Figure:
    """One row of the table: a median of runs, its floor, their ratio and a target."""

    item: int
    key: str
    label: str
    unit: str
    runs: list[float] = field(default_factory=list)
    floor_runs: list[float] = field(default_factory=list)
    floor_label: str = ""
    target: Target | None = None
    tool: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    show_ratio: bool = True  # False where the floor is near zero (a growth), so no ratio
    # Why the figure could not be measured here (say, no Java for WireMock): not an error.
    skipped: str | None = None
    # A check the figure's runs failed (say, answers other than 200): the target is not met.
    check_failed: str | None = None

    @property
    def value(self) -> float | None:
        return median(self.runs)

    @property
    def floor(self) -> float | None:
        return median(self.floor_runs)

    @property
    def ratio(self) -> float | None:
        value, floor = self.value, self.floor
        if not self.show_ratio or value is None or floor is None or abs(floor) < 1e-9:
            return None
        return value / floor

    @property
    def met(self) -> bool | None:
        if self.check_failed:
            return False
        return self.target.met(self.value, self.ratio) if self.target else None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            median=self.value,
            floor=self.floor,
            ratio=self.ratio,
            met=self.met,
            target=asdict(self.target) if self.target else None,
        )
        return data


def failed(item: int, key: str, label: str, unit: str, error: BaseException) -> Figure:
    return Figure(item, key, label, unit, error=f"{type(error).__name__}: {error}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free just now, for a server that cannot be given a socket."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def rss_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in kB, from /proc/PID/status."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM", "Threads"):
            values[name] = int(rest.split()[0])
    return values


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Child processes of `pid` (a server meant to be one process should have none)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


class ServerProcess:
    """A server command started as a subprocess, ready once it prints its `listening on` line."""

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        cpu: int | None = SERVER_CPU,
        timeout: float = 30,
        ready: re.Pattern[str] = READY,
    ):
        """`ready` matches the line that tells the server is up: its `port` group (and its
        `host` group, if it has one, else 127.0.0.1) say where."""
        self.cmd = pinned(cmd, cpu) if cpu is not None else list(cmd)
        self._ready = ready
        # The server's log lives as long as the server: closed in stop().
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self.ready_line = self._wait_ready(timeout)
        self.ready_s = time.perf_counter() - started
        match = self._ready.search(self.ready_line)
        assert match is not None
        groups = match.groupdict()
        self.host, self.port = groups.get("host") or "127.0.0.1", int(groups["port"])
        self.url = f"http://{self.host}:{self.port}"
        # Keep reading stdout so the server never blocks on a full pipe.
        self._drain = threading.Thread(target=self._read_rest, daemon=True)
        self._drain.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_ready(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        lines: list[str] = []
        done = threading.Event()

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.append(line)
                if self._ready.search(line):
                    break
            done.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        if not done.wait(timeout) or not lines or not self._ready.search(lines[-1]):
            self.proc.kill()
            self.proc.wait()
            problem = f"{''.join(lines)[-300:]}{self.stderr()[-600:]}"
            self._log.close()
            raise RuntimeError(
                f"{' '.join(self.cmd)} printed no ready line "
                f"(exit status {self.proc.returncode}): {problem}"
            )
        return lines[-1].strip()

    def _read_rest(self) -> None:
        assert self.proc.stdout is not None
        for _ in self.proc.stdout:
            pass

    def stderr(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def mock_cmd(*args: str) -> list[str]:
    """The `jimeng-mock` command of this virtualenv on a free port, started as a user starts
    it: with its defaults (log level included), so its figures are what a user gets."""
    return [str(BIN / "jimeng-mock"), "--port", "0", *args]


def hello_cmd() -> list[str]:
    """The floor: the bare ASGI hello-world on uvicorn with httptools and uvloop, quiet."""
    return [sys.executable, "-m", "bench.hello", "--port", "0", "--log-level", "warning"]


def loaded_libraries(pid: int) -> dict[str, str]:
    """Which HTTP parser and event loop a running uvicorn server uses, from the shared
    objects mapped into its process (uvicorn's "auto" imports httptools and uvloop only to
    use them): {"http": "httptools" or "h11", "loop": "uvloop" or "asyncio"}."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return {"http": "unknown", "loop": "unknown"}
    return {
        "http": "httptools" if re.search(r"/httptools/parser/", maps) else "h11",
        "loop": "uvloop" if re.search(r"/uvloop/loop\.", maps) else "asyncio",
    }


def timed(fn: Callable[[], object]) -> float:
    """Seconds `fn` takes."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


@contextlib.contextmanager
def step(title: str, quiet: bool = False) -> Iterator[None]:
    """Say what runs and how long it took, on stderr, so the table on stdout stays clean."""
    started = time.perf_counter()
    if not quiet:
        print(f"-- {title} ...", file=sys.stderr, flush=True)
    yield
    if not quiet:
        print(f"   {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
