"""WireMock 3.x, the reference server of item 1: a static stub of the same JSON answer.

`setup()` finds Java and the WireMock standalone jar, installing what is missing when it
may: Java is Debian's `default-jre-headless` (with apt-get, as root), the jar comes from the
npm registry's `wiremock` package (which ships it), installed with `npm install --prefix
bench/.cache/wiremock` (git-ignored). `WireMockServer` runs it pinned to the servers' CPU.

`python -m bench.wiremock` sets up and says what it found.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import ROOT, SERVER_CPU, ServerProcess

VERSION = "3.13.2"  # the npm package's version is WireMock's
CACHE = ROOT / "bench" / ".cache" / "wiremock"
PATH = "/v1/images/generations"

# A fair configuration: no request journal and no request log (the mock keeps a journal,
# bounded, so this favours WireMock), more container threads than connections, synchronous
# answers, no gzip and no HTTP/2 upgrade on plain HTTP (wrk speaks HTTP/1.1 and asks for
# no compression). A fixed heap, so no resizing; the serial collector, which is what the
# JVM picks on the one CPU it is given, said explicitly.
CONTAINER_THREADS = 64
JVM_OPTIONS = ["-Xms512m", "-Xmx512m", "-XX:+UseSerialGC"]
WIREMOCK_OPTIONS = [
    "--bind-address",
    "127.0.0.1",
    "--no-request-journal",
    "--disable-request-logging",
    "--container-threads",
    str(CONTAINER_THREADS),
    "--async-response-enabled",
    "false",
    "--disable-gzip",
    "--disable-http2-plain",
    "--disable-banner",
]
# WireMock prints its settings once it is listening; `--port 0` picks a free port.
READY = re.compile(r"^port:\s+(?P<port>\d+)\s*$")


@dataclass
class Setup:
    """What `setup()` found: Java and the jar, or why WireMock cannot run here."""

    java: str | None = None
    java_version: str | None = None
    jar: Path | None = None
    wiremock_version: str | None = None
    problem: str | None = None
    installed: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.problem is None

    def describe(self) -> str:
        if not self.ok:
            return f"unavailable: {self.problem}"
        return f"WireMock {self.wiremock_version} on {self.java_version}"


def _say(message: str) -> None:
    print(f"   {message}", file=sys.stderr, flush=True)


def java_version(java: str) -> str | None:
    """`OpenJDK 17.0.15` (from the first line of `java -version`), or None if it fails."""
    try:
        done = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError:
        return None
    if done.returncode != 0:
        return None
    first = (done.stderr or done.stdout).strip().splitlines()[:1]
    match = re.match(r'(\S+) version "([^"]+)"', first[0]) if first else None
    if not match:
        return first[0] if first else "java"
    vendor = "OpenJDK" if match[1] == "openjdk" else match[1]
    return f"{vendor} {match[2]}"


def find_jar() -> Path | None:
    """The standalone jar of the npm package in the cache, if it is installed."""
    build = CACHE / "node_modules" / "wiremock" / "build"
    jars = sorted(build.glob("wiremock-standalone-*.jar")) if build.is_dir() else []
    return jars[-1] if jars else None


def _jar_version(jar: Path) -> str:
    match = re.search(r"wiremock-standalone-(.+)\.jar$", jar.name)
    return match[1] if match else "?"


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _install_java() -> str | None:
    """Debian's default-jre-headless with apt-get, as root: the reason it was not, or None."""
    if not _is_root() or shutil.which("apt-get") is None:
        return "java is not installed (installed here only as root with apt-get)"
    _say("java is not installed: installing default-jre-headless with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", "default-jre-headless"],
    ):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            return f"{' '.join(cmd)} failed: {done.stderr.strip()[-300:]}"
    return None


def _install_jar() -> str | None:
    """The `wiremock` npm package into the cache: the reason it was not, or None."""
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not installed, so the WireMock jar cannot be fetched"
    _say(f"installing wiremock@{VERSION} from the npm registry into {CACHE.relative_to(ROOT)}")
    CACHE.mkdir(parents=True, exist_ok=True)
    cmd = [
        npm,
        "install",
        "--prefix",
        str(CACHE),
        "--no-audit",
        "--no-fund",
        "--no-save",
        "--no-package-lock",
        f"wiremock@{VERSION}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        return f"npm install wiremock@{VERSION} failed: {done.stderr.strip()[-300:]}"
    return None


def setup(install: bool = True) -> Setup:
    """Java and the jar, installing what is missing when `install` (and it may)."""
    found = Setup()
    installed: list[str] = []
    java = shutil.which("java")
    if java is None and install:
        problem = _install_java()
        if problem is not None:
            return Setup(problem=problem)
        installed.append("default-jre-headless")
        java = shutil.which("java")
    if java is None:
        return Setup(problem="java is not installed")
    version = java_version(java)
    if version is None:
        return Setup(problem=f"{java} -version failed")
    found.java, found.java_version = java, version
    jar = find_jar()
    if jar is None and install:
        problem = _install_jar()
        if problem is not None:
            found.problem = problem
            return found
        installed.append(f"wiremock@{VERSION}")
        jar = find_jar()
    if jar is None:
        found.problem = f"the WireMock jar is not in {CACHE.relative_to(ROOT)} (npm: wiremock)"
        return found
    found.jar, found.wiremock_version = jar, _jar_version(jar)
    found.installed = tuple(installed)
    return found


def describe() -> str:
    """What is here now, installing nothing."""
    return setup(install=False).describe()


def stub_mapping(answer: bytes, content_type: str = "application/json") -> dict[str, object]:
    """The static stub: any POST to the route gets `answer`, with its Content-Length (as the
    mock sends one) so neither answer is chunked."""
    return {
        "request": {"method": "POST", "url": PATH},
        "response": {
            "status": 200,
            "headers": {"Content-Type": content_type, "Content-Length": str(len(answer))},
            "body": answer.decode(),
        },
    }


class WireMockServer(ServerProcess):
    """WireMock standalone on a free port, pinned to CPU 0, answering `answer` to POSTs of
    the route; ready once it prints its port and the stub answers."""

    def __init__(self, found: Setup, answer: bytes, *, cpu: int | None = SERVER_CPU):
        assert found.java is not None
        assert found.jar is not None
        self._root = tempfile.TemporaryDirectory(prefix="jimeng-bench-wiremock-")
        mappings = Path(self._root.name) / "mappings"
        mappings.mkdir()
        (mappings / "generations.json").write_text(json.dumps(stub_mapping(answer)))
        (Path(self._root.name) / "__files").mkdir()
        cmd = [
            found.java,
            *JVM_OPTIONS,
            "-jar",
            str(found.jar),
            "--port",
            "0",
            "--root-dir",
            self._root.name,
            *WIREMOCK_OPTIONS,
        ]
        try:
            super().__init__(cmd, cpu=cpu, timeout=120, ready=READY)
            self._wait_stub(answer)
        except BaseException:
            if hasattr(self, "proc"):
                self.stop()
            self._root.cleanup()
            raise

    def _wait_stub(self, answer: bytes, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        problem = ""
        with httpx.Client(timeout=10) as client:
            while time.monotonic() < deadline:
                try:
                    got = client.post(self.url + PATH, content=b'{"prompt":"ready?"}')
                    if got.status_code == 200 and got.content == answer:
                        return
                    problem = f"status {got.status_code}, {got.content[:200]!r}"
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                time.sleep(0.1)
        raise RuntimeError(f"the WireMock stub did not answer as set up: {problem}")

    def stop(self) -> None:
        super().stop()
        self._root.cleanup()


def main() -> int:
    found = setup()
    print(found.describe())
    if found.ok:
        print(f"java: {found.java}\njar: {found.jar}")
    return 0 if found.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
