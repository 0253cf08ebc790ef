"""The `jimeng-mock` command."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from uvicorn.supervisors import Multiprocess

from mockserver.app import create_app
from mockserver.config import (
    DEFAULT_CREATED,
    DEFAULT_IMAGE_CACHE_MB,
    DEFAULT_JOURNAL_SIZE,
    DEFAULT_MAX_BODY,
    DEFAULT_RENDER_CONCURRENCY,
    DEFAULT_RENDER_QUEUE,
    DEFAULT_SECRET,
    MockConfig,
)
from mockserver.errors import ConfigError
from mockserver.server import base_url, bind_socket

# uvicorn's "trace" level is left out: it logs every request's headers, API keys included.
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
WORKER_ARGV = "JIMENG_MOCK_WORKER_ARGV"


def _created(value: str) -> int | str:
    if value == "now":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a Unix timestamp or 'now', not {value!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jimeng-mock",
        description="A deterministic stand-in for the Jimeng image-generation API.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    add(
        "--port",
        type=int,
        default=8000,
        help="port to bind; 0 picks a free one (default: %(default)s)",
    )
    add(
        "--api-key",
        dest="api_keys",
        action="append",
        default=[],
        metavar="KEY",
        help="accept only this Bearer key (repeatable); without it any non-empty key is accepted",
    )
    add(
        "--created",
        type=_created,
        default=DEFAULT_CREATED,
        metavar="EPOCH|now",
        help="the 'created' timestamp of every answer (default: %(default)s); 'now' for the clock",
    )
    add(
        "--public-url",
        metavar="URL",
        help="base of returned image URLs (default: the request's host)",
    )
    add(
        "--strict",
        action="store_true",
        help="reject request fields the API document does not define",
    )
    add(
        "--sizes", type=Path, metavar="FILE", help="size table to use instead of schemas/sizes.json"
    )
    add(
        "--errors", type=Path, metavar="FILE", help="error catalogue instead of schemas/errors.json"
    )
    add(
        "--secret",
        default=DEFAULT_SECRET,
        help="key that signs image URLs; URLs stay valid across restarts with the same one",
    )
    add(
        "--max-body",
        type=int,
        default=DEFAULT_MAX_BODY,
        metavar="BYTES",
        help="largest request body accepted (default: %(default)s)",
    )
    add(
        "--journal-size",
        type=int,
        default=DEFAULT_JOURNAL_SIZE,
        metavar="N",
        help="requests the journal keeps, newest first (default: %(default)s)",
    )
    add(
        "--fixtures",
        type=Path,
        metavar="DIR",
        help="folder of stub files (*.json) that answer the requests they match",
    )
    add(
        "--fault-catalogue",
        type=Path,
        metavar="FILE",
        help="fault catalogue instead of schemas/faults.json",
    )
    add(
        "--latency",
        type=_latency,
        default=(0, 0),
        metavar="MS|MIN-MAX",
        help="delay every generation answer by MS, or a random MIN to MAX, milliseconds",
    )
    add(
        "--fault-rate",
        type=float,
        default=0.0,
        metavar="P",
        help="answer a share P (0 to 1) of generation requests with a random --fault",
    )
    add(
        "--fault",
        dest="fault_names",
        action="append",
        default=[],
        metavar="NAME",
        help="a fault --fault-rate draws from (repeatable)",
    )
    add("--seed", type=int, metavar="N", help="seed for --latency and --fault-rate draws")
    add("--rpm", type=int, metavar="N", help="answer 429 once a key sends more than N a minute")
    add(
        "--render-concurrency",
        type=int,
        default=DEFAULT_RENDER_CONCURRENCY,
        metavar="N",
        help="images drawn at once (default: %(default)s)",
    )
    add(
        "--render-queue",
        type=int,
        default=DEFAULT_RENDER_QUEUE,
        metavar="N",
        help="renders that may wait their turn; past that, 503 with Retry-After "
        "(default: %(default)s)",
    )
    add(
        "--image-cache-mb",
        type=int,
        default=DEFAULT_IMAGE_CACHE_MB,
        metavar="MB",
        help="memory for drawn PNGs, per worker (default: %(default)s)",
    )
    add(
        "--admin-token",
        metavar="TOKEN",
        help="require this token in X-Admin-Token on /__admin/ routes; needed to use them "
        "when --host is not a loopback address",
    )
    add(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="processes serving the port; each has its own journal (default: %(default)s)",
    )
    add("--log-level", choices=LOG_LEVELS, default="info", help="(default: %(default)s)")
    return parser


def _latency(value: str) -> tuple[int, int]:
    low, dash, high = value.partition("-")
    try:
        return (int(low), int(high)) if dash else (int(low), int(low))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected milliseconds (250) or a range (100-500), not {value!r}"
        ) from None


class _Server(uvicorn.Server):
    ready_line = ""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(self.ready_line, flush=True)


class _Workers(Multiprocess):
    """uvicorn's worker processes, with the ready line once every worker serves."""

    ready_line = ""

    def init_processes(self) -> None:
        super().init_processes()
        if all(p.wait_until_ready(60, self.should_exit) for p in self.processes):
            print(self.ready_line, flush=True)


def config_from(args: argparse.Namespace) -> MockConfig:
    return MockConfig(
        api_keys=args.api_keys,
        created=args.created,
        public_url=args.public_url,
        strict=args.strict,
        sizes=args.sizes,
        errors=args.errors,
        secret=args.secret,
        max_body=args.max_body,
        journal_size=args.journal_size,
        fixtures=args.fixtures,
        fault_catalogue=args.fault_catalogue,
        latency_ms=args.latency,
        fault_rate=args.fault_rate,
        fault_names=args.fault_names,
        seed=args.seed,
        rpm=args.rpm,
        render_concurrency=args.render_concurrency,
        render_queue=args.render_queue,
        image_cache_mb=args.image_cache_mb,
        host=args.host,
        admin_token=args.admin_token,
    )


def worker_app() -> Starlette:
    """The app of one worker process, from the options the command was started with."""
    args = build_parser().parse_args(json.loads(os.environ[WORKER_ARGV]))
    return create_app(config_from(args))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.workers < 1:
        print(f"jimeng-mock: --workers must be at least 1, not {args.workers}", file=sys.stderr)
        return 2
    try:
        # Built here with one worker or several: a bad option or data file is one line and
        # exit 2 before anything listens, not an error in each worker.
        app = create_app(config_from(args))
    except ConfigError as exc:
        print(f"jimeng-mock: {exc}", file=sys.stderr)
        return 2
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(
            f"jimeng-mock: cannot listen on {args.host}:{args.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    ready_line = f"jimeng-mock listening on {base_url(args.host, sock.getsockname()[1])}"
    if args.workers > 1:
        # Each worker builds its own app from the same options; image URLs are signed, not
        # stored, so any worker serves any URL. The journal is each worker's own.
        os.environ[WORKER_ARGV] = json.dumps(argv)
        config = uvicorn.Config(
            "mockserver.cli:worker_app",
            factory=True,
            workers=args.workers,
            log_level=args.log_level,
            lifespan="off",
        )
        workers = _Workers(config, sockets=[sock])
        workers.ready_line = ready_line
        workers.run()
        return 0
    server = _Server(uvicorn.Config(app, log_level=args.log_level, lifespan="off"))
    server.ready_line = ready_line
    server.run(sockets=[sock])
    return 0
