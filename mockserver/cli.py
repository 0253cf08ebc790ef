"""The `jimeng-mock` command: `serve`, the default (bare `jimeng-mock [options]` serves), and
`conform`. Their options are the rows of `mockserver.options`."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from typing import Any

from mockserver import options
from mockserver.app import create_app
from mockserver.config import MockConfig
from mockserver.errors import ConfigError
from mockserver.web.uvicorn_glue import ServeOptions, base_url, bind_socket, serve, serve_workers

DESCRIPTION = "A deterministic stand-in for the Jimeng image-generation API."
SERVING = (
    "Serve the mock until SIGINT or SIGTERM, with a line 'jimeng-mock listening on URL' on "
    "stdout once it serves."
)
CONFORMING = (
    "Run the mock's contract cases against a service (a real one) and report where its "
    "answers differ from the mock's. Exit 0 when all that ran agree, 1 when any disagrees, "
    "2 on bad usage."
)
# The choices of --http and --loop that are a package of their own, which may be missing.
OPTIONAL_PACKAGES = ("httptools", "uvloop")


class _Subcommand(argparse.ArgumentParser):
    """A subcommand's parser, which refuses an argument it does not know itself: argparse
    would leave that to the top parser, whose message names bare `jimeng-mock`."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def build_parser() -> argparse.ArgumentParser:
    """The command line: the serving options (with their defaults) at the top, for bare
    `jimeng-mock [options]`, and the subcommands. `serve` takes the same options; one given
    there wins over the same one given before it."""
    parser = argparse.ArgumentParser(prog="jimeng-mock", description=f"{DESCRIPTION} {SERVING}")
    commands = parser.add_subparsers(
        dest="command",
        title="commands",
        metavar="COMMAND",
        parser_class=_Subcommand,
        description="without one, jimeng-mock serves (as jimeng-mock serve)",
    )
    serving = commands.add_parser("serve", help="serve the mock (the default)", description=SERVING)
    options.add_arguments(serving, options.SERVE, defaults=False)
    conforming = commands.add_parser(
        "conform",
        help="run the contract cases against a service and report where it differs",
        description=CONFORMING,
    )
    options.add_arguments(conforming, options.CONFORM)
    # After the subcommands, so that `-h` lists them first.
    options.add_arguments(parser, options.SERVE)
    return parser


def config_from(args: argparse.Namespace) -> MockConfig:
    return MockConfig(**{row.name: getattr(args, row.name) for row in options.rows("config")})


def serve_options(args: argparse.Namespace) -> ServeOptions:
    return ServeOptions(**{row.name: getattr(args, row.name) for row in options.rows("serve")})


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)  # bad usage: 2
    if args.command == "conform":
        from mockserver.contract import conform

        return conform.main(conform.options_of(args))
    return serve_command(args)


def _refused(message: str) -> int:
    print(f"jimeng-mock: {message}", file=sys.stderr)
    return 2


def serve_command(args: argparse.Namespace) -> int:
    """`jimeng-mock [serve]`: the exit code (2: an option refused, 1: cannot listen)."""
    problem = options.check_command(vars(args))
    if problem is not None:
        return _refused(problem)
    for option, choice in (("--http", args.http), ("--loop", args.loop)):
        if choice in OPTIONAL_PACKAGES and importlib.util.find_spec(choice) is None:
            return _refused(f"{option} {choice} needs the {choice} package, which is not installed")
    try:
        # Built here with one worker or several: a bad option or data file is one line and
        # exit 2 before anything listens, not an error in each worker.
        config = config_from(args)
        app = create_app(config)
        serving = serve_options(args)
    except ConfigError as exc:
        return _refused(str(exc))
    try:
        sock = bind_socket(config.host, args.port)
    except OSError as exc:
        print(
            f"jimeng-mock: cannot listen on {config.host}:{args.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    ready_line = f"jimeng-mock listening on {base_url(config.host, sock.getsockname()[1])}"

    def ready() -> None:
        print(ready_line, flush=True)

    with sock:
        if args.workers > 1:
            # Each worker builds its own app from this config, as checked here (a random
            # secret in it: all sign alike); image URLs are signed, not stored, so any worker
            # serves any URL. The journal is each worker's own.
            return serve_workers(sock, args.workers, create_app, (config,), serving, ready)
        serve(app, sock, serving, ready)
    return 0
