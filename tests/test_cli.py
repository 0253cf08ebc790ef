"""The command line as CI scripts use it: start, wait for the ready line, serve, stop."""

from __future__ import annotations

import importlib.util
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from mockserver.cli import build_parser, main, serve_options
from mockserver.web.uvicorn_glue import ServeOptions
from tests.conftest import fetch_png

COMMAND = [sys.executable, "-m", "mockserver"]
SCRIPT = [str(Path(sys.executable).with_name("jimeng-mock"))]
READY = "jimeng-mock listening on "


@contextmanager
def started(
    *args: str, log_level: str = "warning", command: list[str] = COMMAND
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start the command on a free port, wait (15 s at most) for its ready line, yield the
    process and its URL; at the end SIGTERM it if it still runs, and kill what is left."""
    process = subprocess.Popen(
        [*command, "--port", "0", "--log-level", log_level, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout=15):
                pytest.fail("no ready line within 15 s")
        line = process.stdout.readline()
        assert line.startswith(READY), line + (process.stderr.read() if process.stderr else "")
        yield process, line.removeprefix(READY).strip()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        finally:
            process.kill()
            for stream in (process.stdout, process.stderr):
                if stream:
                    stream.close()


@contextmanager
def running(*args: str, command: list[str] = COMMAND) -> Iterator[str]:
    """The command started, its URL; stopped with SIGTERM, after which it exits 0."""
    with started(*args, command=command) as (process, url):
        yield url
    assert process.returncode == 0


def post(url: str, body: dict[str, object], key: str = "sk-test") -> httpx.Response:
    return httpx.post(
        url + "/v1/images/generations", json=body, headers={"Authorization": f"Bearer {key}"}
    )


BODY = {"model": "jimeng-4.5", "prompt": "城市夜景", "n": 2, "ratio": "4:3", "resolution": "1k"}


def test_ready_line_then_serves_health_and_generations() -> None:
    with running() as url:
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "/healthz").json() == {"status": "ok"}
        response = post(url, BODY)
        assert response.status_code == 200
        assert [fetch_png(item["url"])[1] for item in response.json()["data"]] == [(1024, 768)] * 2


def test_console_script_is_installed() -> None:
    with running(command=SCRIPT) as url:
        assert httpx.get(url + "/healthz").status_code == 200


def test_same_request_after_a_restart_gives_identical_bytes() -> None:
    answers = []
    for _ in range(2):
        with running("--public-url", "http://mock.invalid") as url:
            response = post(url, BODY)
            local = [i["url"].replace("http://mock.invalid", url) for i in response.json()["data"]]
            answers.append((response.content, [fetch_png(u)[0] for u in local]))

    assert answers[0] == answers[1]


def test_api_keys_and_created_options() -> None:
    with running("--api-key", "sk-one", "--api-key", "sk-two", "--created", "7") as url:
        assert post(url, BODY, key="sk-two").json()["created"] == 7
        refused = post(url, BODY, key="sk-three")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"


def test_strict_option() -> None:
    with running("--strict") as url:
        response = post(url, {**BODY, "aspect_ratio": "4:3"})
        assert response.json()["error"]["param"] == "aspect_ratio"


def test_sizes_option_replaces_the_table(tmp_path: Path) -> None:
    table = {
        "defaults": {"ratio": "5:4", "resolution": "hd"},
        "explicit_size_bounds": {"min_pixels": 1, "max_pixels": 4000000, "max_aspect_ratio": 4},
        "table": {"5:4": {"hd": [1250, 1000]}},
    }
    path = tmp_path / "sizes.json"
    path.write_text(json.dumps(table))

    with running("--sizes", str(path)) as url:
        default = post(url, {"model": "jimeng-4.0", "prompt": "p", "n": 1})
        old_ratio = post(url, {"model": "jimeng-4.0", "prompt": "p", "n": 1, "ratio": "1:1"})

    assert default.status_code == 200
    assert "/1250x1000/" in default.json()["data"][0]["url"]
    assert old_ratio.json()["error"]["param"] == "ratio"
    assert "5:4" in old_ratio.json()["error"]["message"]


def run_to_exit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, timeout=30, env={**os.environ}
    )


def test_the_serve_subcommand_serves_as_bare_jimeng_mock_does() -> None:
    with running("--api-key", "sk-one", command=[*COMMAND, "serve"]) as url:
        assert post(url, BODY, key="sk-one").status_code == 200
        assert post(url, BODY, key="sk-two").status_code == 401


def test_help_lists_the_subcommands_and_each_has_its_own() -> None:
    shown = run_to_exit("--help")
    assert shown.returncode == 0
    assert "COMMAND" in shown.stdout
    assert "\n    serve  " in shown.stdout
    assert "\n    conform  " in shown.stdout
    assert "\nhow it listens:\n" in shown.stdout
    conform = run_to_exit("conform", "--help")
    assert conform.returncode == 0
    assert conform.stdout.startswith("usage: jimeng-mock conform")
    assert "--max-generations N" in conform.stdout
    assert "--workers" not in conform.stdout


def test_port_in_use_is_one_line_and_a_nonzero_exit() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_to_exit("--port", str(port))

    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "sizes.json"),
        ('{"defaults": {"ratio": "1:1", "resolution": "2k"}, "table": {}}', "explicit_size_bounds"),
        (
            '{"defaults": {"ratio": "9:9", "resolution": "2k"},'
            ' "explicit_size_bounds": {"min_pixels": 1, "max_pixels": 9, "max_aspect_ratio": 2},'
            ' "table": {"1:1": {"2k": [2048, 2048]}}}',
            "9:9 at 2k is not in the size table",
        ),
    ],
)
def test_a_bad_sizes_file_is_one_line_naming_the_problem(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "sizes.json"
    path.write_text(content)

    result = run_to_exit("--sizes", str(path), "--port", "0")

    assert result.returncode == 2
    assert expected in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "Traceback" not in result.stderr


def test_bad_option_values_are_refused_before_starting() -> None:
    for args, expected in [
        (["--created", "yesterday"], "expected a Unix timestamp or 'now'"),
        (["--public-url", "ftp://x"], "must be http(s)://"),
        (["--api-key", ""], "non-empty string"),
        (["--max-body", "10"], "at least 1024 bytes"),
        (["--latency", "soon"], "expected milliseconds (250) or a range (100-500)"),
        (["--latency", "500-100"], "runs backwards"),
        (["--fault-rate", "0.2"], "needs at least one fault"),
        (["--fault", "quota"], "need a fault rate above 0"),
        (["--fault-rate", "2", "--fault", "quota"], "probability from 0 to 1"),
        (["--fault-rate", "0.2", "--fault", "gremlins"], "unknown fault 'gremlins'"),
        (["--rpm", "0"], "rpm must be a whole number of at least 1"),
        (["--journal-size", "0"], "journal size must be"),
        (["--fixtures", "/no/such/folder"], "/no/such/folder does not exist"),
        (["--render-concurrency", "0"], "render concurrency must be"),
        (["--render-queue", "-1"], "render queue must be"),
        (["--image-cache-mb", "-1"], "image cache must be"),
        (["--admin-token", "short"], "at least 8 characters"),
        (["--workers", "0"], "--workers must be at least 1"),
    ]:
        result = run_to_exit(*args, "--port", "0")
        assert result.returncode == 2, args
        assert expected in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_toolkit_options_reach_the_server() -> None:
    stubs = Path(__file__).parent.parent / "fixtures" / "stubs"
    args = ["--rpm", "2", "--journal-size", "2", "--fixtures", str(stubs), "--latency", "1-3"]
    with running(*args) as url:
        statuses = [post(url, BODY).status_code for _ in range(3)]
        journal = httpx.get(url + "/__admin/requests").json()
        listed = httpx.get(url + "/__admin/stubs").json()["stubs"]

    assert statuses == [200, 200, 429]
    assert journal["journal_size"] == 2
    assert [r["status"] for r in journal["requests"]] == [200, 429]
    assert listed == sorted(p.name for p in stubs.glob("*.json"))


def test_a_seeded_fault_rate_repeats_across_runs() -> None:
    args = ["--fault-rate", "0.5", "--fault", "bad_gateway", "--fault", "quota", "--seed", "11"]
    runs = []
    for _ in range(2):
        with running(*args) as url:
            runs.append([post(url, BODY).status_code for _ in range(12)])

    assert runs[0] == runs[1]
    assert {200, 502, 429} == set(runs[0])


def test_render_and_admin_options_reach_the_server() -> None:
    args = ["--host", "0.0.0.0", "--admin-token", "token-for-ci", "--render-queue", "0"]
    with running(*args, "--render-concurrency", "1", "--image-cache-mb", "0") as url:
        local = url.replace("0.0.0.0", "127.0.0.1")
        closed = httpx.get(local + "/__admin/requests")
        opened = httpx.get(local + "/__admin/requests", headers={"X-Admin-Token": "token-for-ci"})
        answer = post(local, BODY)
        image = httpx.get(answer.json()["data"][0]["url"])

    assert url.startswith("http://0.0.0.0:")
    assert (closed.status_code, closed.json()["error"]["code"]) == (403, "admin_forbidden")
    assert opened.status_code == 200
    assert image.status_code == 200


def children(parent: int) -> dict[int, bytes]:
    """The live processes whose parent is `parent`, with their command lines."""
    found = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines())
            command = (status.parent / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(fields["PPid"]) == parent and not fields["State"].startswith(("Z", "X")):
            found[int(status.parent.name)] = command
    return found


def worker_pids(parent: int) -> set[int]:
    """The processes whose parent is `parent` and that serve: the spawned workers."""
    return {pid for pid, command in children(parent).items() if b"spawn_main" in command}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text().split("State:\t", 1)[1]
    except (OSError, IndexError):
        return False
    return not state.startswith(("Z", "X"))  # a zombie nobody reaps has exited


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@contextmanager
def workers(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`--workers 2` started and ready: the supervisor process and its URL."""
    with started("--workers", "2", *args) as running_workers:
        yield running_workers


linux_only = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")


@pytest.mark.smoke
@linux_only
def test_workers_share_the_port_and_serve_the_same_images() -> None:
    with workers() as (process, url):
        pids = worker_pids(process.pid)
        assert len(pids) == 2

        # A fresh connection each time, so both workers answer some of them.
        answers = [post(url, BODY).json() for _ in range(20)]
        assert all(a == answers[0] for a in answers)
        images = {httpx.get(answers[0]["data"][0]["url"]).content for _ in range(10)}
        assert len(images) == 1
        # Each worker keeps its own journal: together they hold every request.
        counts = [httpx.get(url + "/__admin/requests").json()["count"] for _ in range(20)]
        assert max(counts) <= 20

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert process.stdout is not None
        assert READY not in process.stdout.read()  # the ready line came once
    assert not any(alive(pid) for pid in pids)
    assert worker_pids(process.pid) == set()


@pytest.mark.smoke
@linux_only
def test_workers_exit_when_the_supervisor_is_killed() -> None:
    with workers() as (process, url):
        pids = worker_pids(process.pid)
        assert len(pids) == 2
        assert post(url, BODY).status_code == 200
        process.kill()
        process.wait(timeout=5)
        assert wait_until(lambda: not any(alive(pid) for pid in pids), timeout=5), [
            pid for pid in pids if alive(pid)
        ]


@linux_only
def test_a_worker_that_dies_stops_the_others_and_fails_the_command() -> None:
    with workers() as (process, _):
        first, second = sorted(worker_pids(process.pid))
        os.kill(first, signal.SIGKILL)
        assert process.wait(timeout=15) == 1
        assert process.stderr is not None
        stderr = process.stderr.read()
    assert f"(pid {first}) was killed by signal {int(signal.SIGKILL)}" in stderr, stderr
    assert "stopping the other workers" in stderr
    assert not alive(second)


@linux_only
def test_workers_take_the_serving_options() -> None:
    with workers("--http", "h11", "--loop", "asyncio", "--access-log", "--log-level", "info") as (
        process,
        url,
    ):
        assert post(url, BODY).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert process.stdout is not None
        stdout = process.stdout.read()
    # uvicorn's access log goes to stdout, after the ready line.
    assert '"POST /v1/images/generations HTTP/1.1" 200' in stdout, stdout


@pytest.mark.smoke
@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_either_http_parser_serves_a_generation_request(http: str) -> None:
    with running("--http", http, "--loop", "asyncio") as url:
        response = post(url, BODY)
        assert response.status_code == 200
        assert len(response.json()["data"]) == 2


def test_the_serving_options_reach_uvicorn() -> None:
    args = build_parser().parse_args([])
    assert serve_options(args) == ServeOptions(
        http="auto", loop="auto", log_level="info", access_log=False
    )
    args = build_parser().parse_args(
        ["--http", "h11", "--loop", "uvloop", "--access-log", "--log-level", "debug"]
    )
    assert serve_options(args) == ServeOptions(
        http="h11", loop="uvloop", log_level="debug", access_log=True
    )
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--http", "h2"])


def test_a_parser_or_loop_that_is_not_installed_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert main(["--http", "httptools", "--port", "0"]) == 2
    assert "--http httptools needs the httptools package" in capsys.readouterr().err
    assert main(["--loop", "uvloop", "--port", "0"]) == 2
    assert "--loop uvloop needs the uvloop package" in capsys.readouterr().err


def served_log(*args: str) -> tuple[str, str]:
    """What the command logs at info level, on stdout after its ready line and on stderr,
    while it answers one generation request."""
    with started(*args, log_level="info") as (process, url):
        assert post(url, BODY).status_code == 200
        process.send_signal(signal.SIGTERM)
        return process.communicate(timeout=15)


def test_no_access_log_unless_asked() -> None:
    stdout, stderr = served_log()
    assert "Started server process" in stderr  # uvicorn's own lines stay
    assert "/v1/images/generations" not in stdout + stderr

    # uvicorn's access log goes to stdout, after the ready line.
    stdout, stderr = served_log("--access-log")
    assert '"POST /v1/images/generations HTTP/1.1" 200' in stdout
    assert "/v1/images/generations" not in stderr


def test_forwarded_headers_change_no_url_unless_asked() -> None:
    """From loopback, uvicorn would believe X-Forwarded-Proto; the mock does only with
    --proxy-headers, so no local process rewrites the URLs a test reads."""
    body = {"model": "jimeng-4.0", "prompt": "forwarded", "n": 1}
    headers = {"Authorization": "Bearer k", "X-Forwarded-Proto": "https"}
    for args, scheme in (
        ((), "http"),
        (("--proxy-headers",), "https"),
        (("--forwarded-allow-ips", "127.0.0.1"), "https"),  # implies --proxy-headers
        (("--forwarded-allow-ips", "10.9.8.7"), "http"),  # loopback is not believed then
    ):
        with running(*args) as url:
            answer = httpx.post(url + "/v1/images/generations", json=body, headers=headers)
            assert answer.json()["data"][0]["url"].split("://")[0] == scheme, args
