"""The `jimeng-mock` command."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from mockserver.app import create_app
from mockserver.argtypes import amount, whole
from mockserver.config import (
    DEFAULT_CREATED,
    DEFAULT_IMAGE_CACHE_MB,
    DEFAULT_JOURNAL_MB,
    DEFAULT_JOURNAL_SIZE,
    DEFAULT_MAX_BODY,
    DEFAULT_RENDER_CONCURRENCY,
    DEFAULT_RENDER_QUEUE,
    DEFAULT_SECRET,
    DEFAULT_UPSTREAM_TIMEOUT,
    RECORD_MODES,
    UPSTREAM_INVALID,
    MockConfig,
)
from mockserver.errors import ConfigError
from mockserver.serving import (
    DEFAULT_READ_TIMEOUT,
    DEFAULT_SHUTDOWN_TIMEOUT,
    HTTP_CHOICES,
    LOOP_CHOICES,
    ServeOptions,
    base_url,
    bind_socket,
    serve,
    serve_workers,
)

# uvicorn's "trace" level is left out: it logs every request's headers, API keys included.
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
# The choices of --http and --loop that are a package of their own, which may be missing.
OPTIONAL_PACKAGES = ("httptools", "uvloop")


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
    _serving_options(parser.add_argument_group("how it listens"))
    _contract_options(parser.add_argument_group("the contract and its answers"))
    _fault_options(parser.add_argument_group("faults and stubs"))
    _resource_options(parser.add_argument_group("what it keeps"))
    _upstream_options(parser.add_argument_group("proxy and recording"))
    _browser_options(parser.add_argument_group("pages on other origins"))
    return parser


def _browser_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--cors",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let pages of this origin (http://host:port; repeatable) or of any ('*') call the "
        "API and draw its images: preflights answered, CORS headers on every answer; admin "
        "routes excepted (default: off)",
    )


def _serving_options(group: argparse._ArgumentGroup) -> None:
    add = group.add_argument
    _proxy_options(add)
    add("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    add(
        "--port",
        type=int,
        default=8000,
        help="port to bind; 0 picks a free one (default: %(default)s)",
    )
    add(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="processes serving the port; each has its own journal (default: %(default)s)",
    )
    add(
        "--http",
        choices=HTTP_CHOICES,
        default="auto",
        help="uvicorn's HTTP parser; auto is httptools where it is installed, else h11 "
        "(default: %(default)s)",
    )
    add(
        "--loop",
        choices=LOOP_CHOICES,
        default="auto",
        help="the event loop; auto is uvloop where it is installed, else asyncio "
        "(default: %(default)s)",
    )
    add("--log-level", choices=LOG_LEVELS, default="info", help="(default: %(default)s)")
    add(
        "--access-log",
        action="store_true",
        help="log a line per request at info level (off by default: the journal, "
        "GET /__admin/requests, has every request)",
    )
    add(
        "--admin-token",
        metavar="TOKEN",
        help="require this token in X-Admin-Token on /__admin/ routes; needed to use them "
        "when --host is not a loopback address",
    )
    _limit_options(add)


def _proxy_options(add: Callable[..., Any]) -> None:
    add(
        "--proxy-headers",
        action="store_true",
        help="take the client's scheme and address from X-Forwarded-Proto and X-Forwarded-For "
        "sent by --forwarded-allow-ips (off by default; --public-url sets the URL base)",
    )
    add(
        "--forwarded-allow-ips",
        metavar="IPS",
        help="comma-separated addresses (or *) whose X-Forwarded-* headers are believed; "
        "implies --proxy-headers (default: 127.0.0.1)",
    )


def _limit_options(add: Callable[..., Any]) -> None:
    add(
        "--read-timeout",
        type=amount("seconds"),
        default=DEFAULT_READ_TIMEOUT,
        metavar="SECONDS",
        help="a request's headers must arrive within this, and its body within this after "
        "them (else 408 request_timeout); a connection that sends nothing, or part of the "
        "headers, is closed (default: %(default)g)",
    )
    add(
        "--limit-concurrency",
        type=whole(1),
        metavar="N",
        help="past N connections or requests at once, answer new requests with uvicorn's "
        "503 (default: no limit)",
    )
    add(
        "--shutdown-timeout",
        type=amount("seconds", zero=True),
        default=DEFAULT_SHUTDOWN_TIMEOUT,
        metavar="SECONDS",
        help="on SIGTERM or SIGINT, answers in progress may finish for this long; then the "
        "connections still open are cut (default: %(default)g)",
    )


def _contract_options(group: argparse._ArgumentGroup) -> None:
    add = group.add_argument
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
        help=f"key that signs image URLs; URLs stay valid across restarts with the same one "
        f"(default: {DEFAULT_SECRET!r} on loopback; beyond it, a random one made at start-up)",
    )
    add(
        "--max-body",
        type=int,
        default=DEFAULT_MAX_BODY,
        metavar="BYTES",
        help="largest request body accepted (default: %(default)s)",
    )


def _fault_options(group: argparse._ArgumentGroup) -> None:
    add = group.add_argument
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


def _resource_options(group: argparse._ArgumentGroup) -> None:
    add = group.add_argument
    add(
        "--journal-size",
        type=int,
        default=DEFAULT_JOURNAL_SIZE,
        metavar="N",
        help="requests the journal keeps, newest first (default: %(default)s)",
    )
    add(
        "--journal-mb",
        type=int,
        default=DEFAULT_JOURNAL_MB,
        metavar="MB",
        help="memory the journal may take, per worker: past it the oldest requests go; long "
        "strings of a body are kept as excerpts (default: %(default)s)",
    )
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


def _upstream_options(group: argparse._ArgumentGroup) -> None:
    add = group.add_argument
    add(
        "--upstream",
        metavar="URL",
        help="proxy mode: forward generation and model requests to this base URL "
        "(http://host:port/v1), judging each by the mock's contract too (drift)",
    )
    add(
        "--upstream-api-key",
        metavar="KEY",
        help="send this Bearer key to the upstream instead of the client's",
    )
    add(
        "--upstream-timeout",
        type=amount("seconds"),
        default=DEFAULT_UPSTREAM_TIMEOUT,
        metavar="SECONDS",
        help="an upstream slower than this is answered 504 gateway_timeout (default: %(default)g)",
    )
    add(
        "--upstream-invalid",
        choices=UPSTREAM_INVALID,
        default="forward",
        help="requests the mock judges invalid: forward them, or answer the mock's own error "
        "(default: %(default)s)",
    )
    add(
        "--record",
        type=Path,
        metavar="DIR",
        help="with --upstream: write each generation answer to DIR as a stub file, its images "
        "beside it, for --fixtures DIR to replay",
    )
    add(
        "--record-mode",
        choices=RECORD_MODES,
        default="new",
        help="new: keep a stub file already there; all: overwrite it; none: record nothing "
        "(default: %(default)s)",
    )


def _latency(value: str) -> tuple[int, int]:
    low, dash, high = value.partition("-")
    try:
        return (int(low), int(high)) if dash else (int(low), int(low))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected milliseconds (250) or a range (100-500), not {value!r}"
        ) from None


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
        journal_mb=args.journal_mb,
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
        upstream=args.upstream,
        upstream_api_key=args.upstream_api_key,
        upstream_timeout=args.upstream_timeout,
        upstream_invalid=args.upstream_invalid,
        record=args.record,
        record_mode=args.record_mode,
        cors=args.cors,
    )


def worker_argv(argv: list[str], args: argparse.Namespace, config: MockConfig) -> list[str]:
    """The options each worker builds its app from: with the random secret this process made
    (bound beyond loopback without --secret), so that every worker signs URLs alike. Workers
    get them pickled through a pipe, never on a command line that `ps` shows."""
    if args.secret is None and config.secret is not None:
        return [*argv, "--secret", config.secret]
    return argv


def worker_app(argv: Sequence[str]) -> Starlette:
    """The app of one worker process, from the options the command was started with."""
    return create_app(config_from(build_parser().parse_args(argv)))


def serve_options(args: argparse.Namespace) -> ServeOptions:
    return ServeOptions(
        http=args.http,
        loop=args.loop,
        log_level=args.log_level,
        access_log=args.access_log,
        proxy_headers=args.proxy_headers or args.forwarded_allow_ips is not None,
        forwarded_allow_ips=args.forwarded_allow_ips,
        read_timeout=args.read_timeout,
        shutdown_timeout=args.shutdown_timeout,
        limit_concurrency=args.limit_concurrency,
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["conform"]:
        from mockserver import conform

        return conform.main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.workers < 1:
        print(f"jimeng-mock: --workers must be at least 1, not {args.workers}", file=sys.stderr)
        return 2
    for option, choice in (("--http", args.http), ("--loop", args.loop)):
        if choice in OPTIONAL_PACKAGES and importlib.util.find_spec(choice) is None:
            print(
                f"jimeng-mock: {option} {choice} needs the {choice} package, "
                "which is not installed",
                file=sys.stderr,
            )
            return 2
    try:
        # Built here with one worker or several: a bad option or data file is one line and
        # exit 2 before anything listens, not an error in each worker.
        config = config_from(args)
        app = create_app(config)
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

    def ready() -> None:
        print(ready_line, flush=True)

    with sock:
        if args.workers > 1:
            # Each worker builds its own app from the same options; image URLs are signed,
            # not stored, so any worker serves any URL. The journal is each worker's own.
            handed = worker_argv(argv, args, config)
            return serve_workers(
                sock, args.workers, worker_app, (handed,), serve_options(args), ready
            )
        serve(app, sock, serve_options(args), ready)
    return 0
