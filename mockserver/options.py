"""Every option of the mock, declared once: a row each, with its name, where it goes, how the
command line spells and parses it, its default, help, group and check.

From these rows come the command line's arguments and groups (`add_arguments`), the fields
of `MockConfig` and `ServeOptions` with their defaults and checks (`field`, `declared`,
`checked`), the keywords `MockServer` and `create_app` take (`sort_keywords`), and the
README's options table (`readme_section`; `python -m mockserver.options --readme` rewrites
that section of README.md in place, and tests/test_options.py fails when it differs).

Where a row goes (`home`): "config", a field of `MockConfig` (so a keyword of `create_app`
and `MockServer` too); "serve", a field of `ServeOptions` (how uvicorn serves); "command",
the command's own (the port, the workers); "conform", an option of `jimeng-mock conform`.

The standard library only: every layer may read its defaults from here.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from mockserver import argtypes as kind
from mockserver.argtypes import Check, OptionError

Home = Literal["config", "serve", "command", "conform"]
Form = Literal["value", "repeat", "switch", "positional"]

# The key clients are handed when the mock has no --api-key (any non-empty key passes then);
# also what `jimeng-mock conform` sends by default.
DEFAULT_API_KEY = "sk-jimeng-mock"
# What signs image URLs on loopback without --secret; beyond loopback a random one does.
DEFAULT_SECRET = "jimeng-mockserver"
DEFAULT_JOURNAL_MB = 32
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_SHUTDOWN_TIMEOUT = 3.0
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
HTTP_CHOICES = ("auto", "h11", "httptools")
LOOP_CHOICES = ("auto", "asyncio", "uvloop")
# uvicorn's "trace" level is left out: it logs every request's headers, API keys included.
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
UPSTREAM_INVALID = ("forward", "reject")
RECORD_MODES = ("new", "all", "none")

_SAME = object()  # `python_default` when MockServer's default is the command's


@dataclass(frozen=True)
class Option:
    """One option. `help` is written for both `-h` and the README: `code` in backticks (which
    `-h` leaves out). `shown` is how the default reads, when not as the value itself;
    `keyword` whether `MockServer` takes it (every "config" row is also `create_app`'s), with
    `python_default` its default there when not the command's; `secret` keeps it out of
    `repr`. `check` puts a value from Python in its normal form, or raises `OptionError`."""

    name: str
    group: str
    help: str
    home: Home = "config"
    form: Form = "value"
    default: Any = None
    flag: str = ""  # "--" and the name with dashes, unless given
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None
    choices: tuple[str, ...] = ()
    check: Check | None = None
    shown: str = ""
    keyword: bool = True
    python_default: Any = _SAME
    secret: bool = False

    @property
    def spelled(self) -> str:
        """How the command line spells it: "--api-key", or the metavar of a positional."""
        if self.form == "positional":
            return self.metavar or self.name.upper()
        return self.flag or "--" + self.name.replace("_", "-")


LISTENS = "how it listens"
CONTRACT = "the contract and its answers"
FAULTS = "faults and stubs"
KEEPS = "what it keeps"
PROXY = "proxy and recording"
BROWSER = "pages on other origins"
RUN = "the conformance run"

# The options of `jimeng-mock` (and `jimeng-mock serve`), in the order `-h` lists them.
SERVE = (
    Option(
        "proxy_headers",
        LISTENS,
        home="serve",
        form="switch",
        default=False,
        keyword=False,
        help="take the client's scheme and address from `X-Forwarded-Proto` and "
        "`X-Forwarded-For` sent by `--forwarded-allow-ips`, which also turns this on (off by "
        "default: any local process could rewrite the image URLs; `--public-url` sets their "
        "base instead)",
    ),
    Option(
        "forwarded_allow_ips",
        LISTENS,
        home="serve",
        metavar="IPS",
        keyword=False,
        shown="`127.0.0.1`",
        help="comma-separated addresses (or `*`) whose `X-Forwarded-*` headers are believed; "
        "implies `--proxy-headers`",
    ),
    Option("host", LISTENS, default="127.0.0.1", metavar="ADDRESS", help="address to bind"),
    Option(
        "port",
        LISTENS,
        home="command",
        default=8000,
        python_default=0,
        parse=int,
        metavar="PORT",
        help="port to bind; `0` picks a free one",
    ),
    Option(
        "workers",
        LISTENS,
        home="command",
        default=1,
        parse=int,
        metavar="N",
        keyword=False,
        check=kind.at_least("--workers", 1),
        help="processes serving the port, each with its own journal; image URLs are signed, "
        "not stored, so any of them serves any image",
    ),
    Option(
        "http",
        LISTENS,
        home="serve",
        default="auto",
        choices=HTTP_CHOICES,
        check=kind.one_of("http", HTTP_CHOICES, listed=True),
        help="uvicorn's HTTP parser; `auto` is httptools where it is installed (a plain "
        "install brings it), else h11",
    ),
    Option(
        "loop",
        LISTENS,
        home="serve",
        default="auto",
        choices=LOOP_CHOICES,
        keyword=False,
        check=kind.one_of("loop", LOOP_CHOICES, listed=True),
        help="the event loop; `auto` is uvloop where it is installed, else asyncio",
    ),
    Option(
        "log_level",
        LISTENS,
        home="serve",
        default="info",
        python_default="warning",
        choices=LOG_LEVELS,
        help="uvicorn's log level; `trace` is not offered, as it would log request headers "
        "and so API keys",
    ),
    Option(
        "access_log",
        LISTENS,
        home="serve",
        form="switch",
        default=False,
        help="uvicorn's line per request, at info level; off by default because the journal "
        "(`GET /__admin/requests`) has every request, with more in it, and a line per "
        "request is work on every answer",
    ),
    Option(
        "admin_token",
        LISTENS,
        metavar="TOKEN",
        check=kind.admin_token,
        help="the `/__admin/` routes want it in `X-Admin-Token`; needed to use them when "
        "`--host` is not a loopback address",
    ),
    Option(
        "read_timeout",
        LISTENS,
        home="serve",
        default=DEFAULT_READ_TIMEOUT,
        parse=kind.amount("seconds"),
        metavar="SECONDS",
        check=kind.seconds("read_timeout", optional=True),
        help="a request's headers must all arrive within this of the connection opening (or "
        "of the client starting its next request on it), and its body within this of its "
        "headers: a late body is `408 request_timeout` and the connection is closed; a "
        "connection that sends nothing, or only part of its headers, is closed without an "
        "answer. Idle keep-alive connections are uvicorn's (5 s). In Python, `None`: no limit",
    ),
    Option(
        "limit_concurrency",
        LISTENS,
        home="serve",
        parse=kind.whole(1),
        metavar="N",
        check=kind.count("limit_concurrency", 1, optional=True),
        shown="no limit",
        help="when N connections are open or N requests are being answered, uvicorn answers "
        'new requests itself: `503 text/plain` "Service Unavailable", no envelope, no '
        "journal entry",
    ),
    Option(
        "shutdown_timeout",
        LISTENS,
        home="serve",
        default=DEFAULT_SHUTDOWN_TIMEOUT,
        parse=kind.amount("seconds", zero=True),
        metavar="SECONDS",
        check=kind.seconds("shutdown_timeout", zero=True),
        help="on SIGTERM or SIGINT (`stop()` in Python), answers in progress may finish for "
        "this long; then every connection still open is cut, and the command exits 0",
    ),
    Option(
        "api_keys",
        CONTRACT,
        form="repeat",
        default=(),
        flag="--api-key",
        metavar="KEY",
        check=kind.api_keys,
        help="accept only these Bearer keys; without any, every non-empty key is accepted",
    ),
    Option(
        "created",
        CONTRACT,
        default=1735689600,
        parse=kind.timestamp,
        metavar="EPOCH|now",
        check=kind.created,
        help="the `created` of every answer (the default is the API document's example); "
        "`now` follows the clock (and gives up byte-identical answers)",
    ),
    Option(
        "public_url",
        CONTRACT,
        metavar="URL",
        check=kind.base_url("public url"),
        shown="the request's host",
        help="base of returned image URLs, e.g. `https://proxy.ci/mock` behind a proxy or in "
        "a container",
    ),
    Option(
        "strict",
        CONTRACT,
        form="switch",
        default=False,
        help="reject request fields the API document does not define (`unknown_parameter`)",
    ),
    Option(
        "ark",
        CONTRACT,
        form="switch",
        default=False,
        help="also answer Ark's own route, `POST /api/v3/images/generations`, in Ark's shapes "
        "(docs/ark.md)",
    ),
    Option(
        "sizes",
        CONTRACT,
        parse=Path,
        metavar="FILE",
        check=kind.path,
        shown="`schemas/sizes.json`",
        help="the ratio x resolution table and the explicit-size bounds",
    ),
    Option(
        "errors",
        CONTRACT,
        parse=Path,
        metavar="FILE",
        check=kind.path,
        shown="`schemas/errors.json`",
        help="the error catalogue (statuses, types, messages)",
    ),
    Option(
        "secret",
        CONTRACT,
        metavar="SECRET",
        check=kind.secret,
        secret=True,
        shown=f"`{DEFAULT_SECRET}` on loopback; beyond it, random at each start",
        help="key that signs image URLs; URLs stay valid across restarts and workers with the "
        "same secret",
    ),
    Option(
        "max_body",
        CONTRACT,
        default=1024 * 1024,
        parse=int,
        metavar="BYTES",
        check=kind.max_body,
        help="largest request body, sent or decompressed (`Content-Encoding: gzip` or "
        "`deflate`), enforced while reading",
    ),
    Option(
        "fixtures",
        FAULTS,
        parse=Path,
        metavar="DIR",
        check=kind.path,
        help="folder of stub files (`*.json`) that answer the requests they match",
    ),
    Option(
        "fault_catalogue",
        FAULTS,
        parse=Path,
        metavar="FILE",
        check=kind.path,
        shown="`schemas/faults.json`",
        help="the fault catalogue",
    ),
    Option(
        "latency_ms",
        FAULTS,
        default=(0, 0),
        flag="--latency",
        parse=kind.milliseconds,
        metavar="MS|MIN-MAX",
        check=kind.latency,
        shown="`0`",
        help="delay every generation answer by MS, or a random MIN to MAX, milliseconds (in "
        "Python `250` or `(100, 500)`)",
    ),
    Option(
        "fault_rate",
        FAULTS,
        default=0.0,
        parse=float,
        metavar="P",
        check=kind.probability("fault rate"),
        help="answer a share P (0 to 1) of generation requests with a random `--fault`",
    ),
    Option(
        "fault_names",
        FAULTS,
        form="repeat",
        default=(),
        flag="--fault",
        metavar="NAME",
        check=kind.names,
        help="a fault `--fault-rate` draws from",
    ),
    Option(
        "seed",
        FAULTS,
        parse=int,
        metavar="N",
        check=kind.count("seed", 0, optional=True),
        help="seed of the `--latency` and `--fault-rate` draws",
    ),
    Option(
        "rpm",
        FAULTS,
        parse=int,
        metavar="N",
        check=kind.count("rpm", 1, optional=True),
        help="requests a key may send per minute before `429 rate_limit_exceeded`",
    ),
    Option(
        "journal_size",
        KEEPS,
        default=1000,
        parse=int,
        metavar="N",
        check=kind.count("journal size", 1),
        help="requests the journal keeps (the newest)",
    ),
    Option(
        "journal_mb",
        KEEPS,
        default=DEFAULT_JOURNAL_MB,
        parse=int,
        metavar="MB",
        check=kind.count("journal MB", 1),
        help="memory the journal may take, in MiB, per worker (its own estimate): past it the "
        "oldest requests go; long strings of a body are kept as excerpts",
    ),
    Option(
        "render_concurrency",
        KEEPS,
        default=min(4, os.cpu_count() or 1),
        parse=int,
        metavar="N",
        check=kind.count("render concurrency", 1),
        shown="CPU count, at most 4",
        help="images drawn at once",
    ),
    Option(
        "render_queue",
        KEEPS,
        default=64,
        parse=int,
        metavar="N",
        check=kind.count("render queue", 0),
        help="renders that may wait their turn; past that, `503 server_busy` with `Retry-After`",
    ),
    Option(
        "image_cache_mb",
        KEEPS,
        default=32,
        parse=int,
        metavar="MB",
        check=kind.count("image cache", 0),
        help="memory for drawn PNGs, in MiB, per worker",
    ),
    Option(
        "upstream",
        PROXY,
        metavar="URL",
        check=kind.base_url("upstream"),
        help="proxy mode: forward generation and model requests to this base URL "
        "(`http://host:port/v1`), judging each by the mock's contract too (drift)",
    ),
    Option(
        "upstream_api_key",
        PROXY,
        metavar="KEY",
        check=kind.upstream_api_key,
        secret=True,
        shown="the client's",
        help="the key sent to the upstream instead of the client's",
    ),
    Option(
        "upstream_timeout",
        PROXY,
        default=60.0,
        parse=kind.amount("seconds"),
        metavar="SECONDS",
        check=kind.seconds("upstream timeout"),
        help="an upstream slower than this is answered `504 gateway_timeout`",
    ),
    Option(
        "upstream_max_mb",
        PROXY,
        default=64,
        parse=int,
        metavar="MB",
        check=kind.count("upstream answer limit", 1),
        help="the largest upstream answer, in MiB once decompressed; a larger one is "
        "`502 bad_gateway`",
    ),
    Option(
        "upstream_invalid",
        PROXY,
        default="forward",
        choices=UPSTREAM_INVALID,
        check=kind.one_of("upstream invalid", UPSTREAM_INVALID),
        help="requests the mock judges invalid: forward them, or answer them with the mock's "
        "own error",
    ),
    Option(
        "record",
        PROXY,
        parse=Path,
        metavar="DIR",
        check=kind.path,
        help="with `--upstream`: write each generation answer to DIR as a stub file, its "
        "images beside it, for `--fixtures DIR` to replay",
    ),
    Option(
        "record_mode",
        PROXY,
        default="new",
        choices=RECORD_MODES,
        check=kind.one_of("record mode", RECORD_MODES),
        help="new: keep a stub file already there; all: overwrite it; none: record nothing",
    ),
    Option(
        "cors",
        BROWSER,
        form="repeat",
        default=(),
        metavar="ORIGIN",
        check=kind.cors_origins,
        shown="off",
        help="let pages of ORIGIN (`http(s)://host[:port]`), or of any origin (`*`), call the "
        "API and draw its images: preflights answered, CORS headers on every answer; admin "
        "routes excepted",
    ),
)

# The options of `jimeng-mock conform URL`: the fields of `conform.Options`.
CONFORM = (
    Option(
        "url",
        RUN,
        home="conform",
        form="positional",
        metavar="URL",
        keyword=False,
        help="base URL as the openai SDK takes it, e.g. `https://host/v1`",
    ),
    Option(
        "api_key",
        RUN,
        home="conform",
        default=DEFAULT_API_KEY,
        metavar="KEY",
        keyword=False,
        shown=f"the mock's, `{DEFAULT_API_KEY}`",
        help="sent as `Authorization: Bearer KEY`; a case's own header wins",
    ),
    Option(
        "cases",
        RUN,
        home="conform",
        form="repeat",
        default=(),
        parse=Path,
        metavar="DIR",
        keyword=False,
        help="also run the case files (`*.json`) of DIR, in the contract's format",
    ),
    Option(
        "select",
        RUN,
        home="conform",
        form="repeat",
        default=(),
        metavar="GLOB",
        keyword=False,
        shown="all",
        help="run only the cases whose id (`<file stem>::<name>`) matches GLOB, e.g. `'size::*'`",
    ),
    Option(
        "report",
        RUN,
        home="conform",
        parse=Path,
        metavar="PATH",
        keyword=False,
        help="write the results as JSON to PATH",
    ),
    Option(
        "max_generations",
        RUN,
        home="conform",
        default=0,
        parse=kind.whole(0),
        metavar="N",
        keyword=False,
        help="run up to N cases that generate images (they cost on a real service); `0` runs "
        "only the cases the mock refuses",
    ),
    Option(
        "rate",
        RUN,
        home="conform",
        parse=kind.amount("requests a second"),
        metavar="N",
        keyword=False,
        shown="no limit",
        help="at most N requests a second",
    ),
    Option(
        "timeout",
        RUN,
        home="conform",
        default=60.0,
        parse=kind.amount("seconds"),
        metavar="SECONDS",
        keyword=False,
        help="seconds to wait for each answer",
    ),
)

OPTIONS = {row.name: row for row in SERVE}
_EVERY = {row.name: row for row in (*SERVE, *CONFORM)}


def rows(home: Home) -> tuple[Option, ...]:
    return tuple(row for row in (*SERVE, *CONFORM) if row.home == home)


def default(name: str) -> Any:
    """The default of the option `name` of `jimeng-mock`."""
    return OPTIONS[name].default


# ---------------------------------------------------------------- the dataclasses

C = TypeVar("C")


def field(name: str) -> Any:
    """The dataclass field of the option `name`: its default (a positional has none), its row
    (`metadata["option"]`), and no `repr` for a secret. As
    `api_keys: Sequence[str] = options.field("api_keys")`."""
    row = _EVERY[name]
    if row.form == "positional":
        return dataclasses.field(metadata={"option": row})
    return dataclasses.field(default=row.default, repr=not row.secret, metadata={"option": row})


def declared(home: Home) -> Callable[[type[C]], type[C]]:
    """A class decorator (outside `@dataclass`): the dataclass has a field for every option of
    `home`, each from `field()`; else a TypeError as the module is imported."""

    def check(cls: type[C]) -> type[C]:
        have = {
            f.name: f.metadata.get("option")
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        }
        wanted = rows(home)
        missing = [row.name for row in wanted if have.get(row.name) is not row]
        stray = [n for n, row in have.items() if row is not None and row not in wanted]
        if missing or stray:
            raise TypeError(f"{cls.__name__}: no field for {missing}, no row for {stray}")
        return cls

    return check


def checked(instance: object, home: Home, error: type[Exception]) -> None:
    """Check, in the table's order, each field of `instance` that is an option of `home`, and
    keep its normal form (on a frozen dataclass too); the first refusal is an `error`."""
    for row in rows(home):
        if row.check is None:
            continue
        try:
            value = row.check(getattr(instance, row.name))
        except OptionError as exc:
            raise error(str(exc)) from None
        object.__setattr__(instance, row.name, value)


def sort_keywords(
    where: str, given: Mapping[str, Any], *homes: Home, also: Iterable[str] = ()
) -> dict[Home, dict[str, Any]]:
    """Keyword options sorted by their home, for `where` ("MockServer"), which takes the
    options of `homes` that are keywords, and the names of `also`. An unknown keyword is a
    TypeError naming the nearest known one."""
    known = {row.name: row for row in SERVE if row.home in homes and row.keyword}
    sorted_: dict[Home, dict[str, Any]] = {home: {} for home in homes}
    for name, value in given.items():
        row = known.get(name)
        if row is None:
            raise TypeError(_unknown(where, name, [*known, *also]))
        sorted_[row.home][name] = value
    return sorted_


def _unknown(where: str, name: str, known: Sequence[str]) -> str:
    row = OPTIONS.get(name)
    if row is not None:
        owner = "MockServer's, and the command line's" if row.keyword else "the command line's only"
        return f"{where}() takes no {name!r}: {row.spelled} is {owner}"
    (nearest,) = difflib.get_close_matches(name, known, n=1, cutoff=0) or [known[0]]
    return f"{where}() got an unexpected keyword argument {name!r}; did you mean {nearest!r}?"


def python_defaults(home: Home) -> dict[str, Any]:
    """The options of `home` whose default in Python differs from the command's: theirs."""
    return {r.name: r.python_default for r in rows(home) if r.python_default is not _SAME}


# ---------------------------------------------------------------- the command line


def add_arguments(
    parser: argparse.ArgumentParser, options: Iterable[Option], *, defaults: bool = True
) -> None:
    """The options as `parser`'s arguments, in argument groups by `group`. Without
    `defaults` an option not given is left out of the namespace (argparse.SUPPRESS): for a
    subcommand whose parent parser has the same options and their defaults."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for row in options:
        if row.group not in groups:
            groups[row.group] = parser.add_argument_group(row.group)
        kwargs: dict[str, Any] = {"help": _help(row).replace("%", "%%")}
        if row.form == "switch":
            kwargs["action"] = "store_true"
        else:
            kwargs.update(type=row.parse, metavar=row.metavar, choices=row.choices or None)
            if row.form == "repeat":
                kwargs["action"] = "append"
        if row.form == "positional":
            groups[row.group].add_argument(row.name, **kwargs)
            continue
        value = list(row.default) if row.form == "repeat" else row.default
        kwargs.update(dest=row.name, default=value if defaults else argparse.SUPPRESS)
        groups[row.group].add_argument(row.spelled, **kwargs)


def _help(row: Option) -> str:
    notes = ["repeatable"] if row.form == "repeat" else []
    if row.form not in ("switch", "positional"):
        notes.append(f"default: {_default_text(row, row.default)}")
    text = row.help + (f" ({'; '.join(notes)})" if notes else "")
    return text.replace("`", "")


def check_command(values: Mapping[str, Any]) -> str | None:
    """What is wrong with the parsed options of the command's own ("command" home), if
    anything: the first refusal's message."""
    for row in rows("command"):
        if row.check is not None:
            try:
                row.check(values[row.name])
            except OptionError as exc:
                return str(exc)
    return None


# ---------------------------------------------------------------- the README

README = Path(__file__).resolve().parent.parent / "README.md"
HEADING = "## Options"
REGENERATE = "python -m mockserver.options --readme"


def _default_text(row: Option, value: Any) -> str:
    if row.shown and value is row.default:
        return row.shown
    if value is None or value == ():
        return "none"
    if value is False:
        return "off"
    return f"`{value:g}`" if isinstance(value, float) else f"`{value}`"


def _cells(row: Option) -> list[str]:
    spelled = row.spelled
    if row.form in ("value", "repeat"):
        spelled += " " + (row.metavar or "|".join(row.choices) or row.name.upper())
    line = f"`{spelled}`" + (" (repeatable)" if row.form == "repeat" else "")
    written = {"switch": "True", "repeat": "[...]"}.get(row.form, "")
    if row.home == "config":
        python = f"`{row.name}={written}`"
    elif row.keyword:
        python = f"`MockServer({row.name}={written})`"
    else:
        python = "(command only)"
    shown = "(required)" if row.form == "positional" else _default_text(row, row.default)
    if row.python_default is not _SAME:
        shown += f" ({_default_text(row, row.python_default)} in Python)"
    return [line, python, shown, row.help]


def _table(options: Sequence[Option], columns: Sequence[str], pick: Sequence[int]) -> list[str]:
    lines: list[str] = []
    for group in dict.fromkeys(row.group for row in options):
        lines += ["", f"**{group}**", "", f"| {' | '.join(columns)} |", "|---" * len(columns) + "|"]
        for row in options:
            if row.group == group:
                cells = [_cells(row)[index].replace("|", "\\|") for index in pick]
                lines.append(f"| {' | '.join(cells)} |")
    return lines


def readme_section() -> str:
    """The README's `## Options` section, from the table, up to the next section."""
    lines = [
        HEADING,
        "",
        f"<!-- Made from mockserver/options.py by `{REGENERATE}`: edit the table there. -->",
        "",
        "`jimeng-mock [options]` and `jimeng-mock serve [options]` serve with these "
        "(`jimeng-mock -h` lists them by group, as here). In Python, `MockConfig(...)` and "
        "`create_app(...)` take the keywords written `name=`, and `MockServer(...)` those and "
        "the ones written `MockServer(name=)`; an unknown keyword is an error that names the "
        "nearest known one.",
        *_table(SERVE, ("command line", "Python", "default", "meaning"), (0, 1, 2, 3)),
        "",
        "`jimeng-mock conform URL [options]` (see "
        "[docs/proxy-and-conformance.md](docs/proxy-and-conformance.md)):",
        *_table(CONFORM, ("command line", "default", "meaning"), (0, 2, 3)),
    ]
    return "\n".join(lines) + "\n"


def _section_bounds(text: str) -> tuple[int, int]:
    start = text.index(f"\n{HEADING}\n") + 1
    end = text.find("\n## ", start)
    return start, len(text) if end < 0 else end + 1


def readme_options(text: str) -> str:
    """The `## Options` section of a README's text."""
    start, end = _section_bounds(text)
    return text[start:end].rstrip("\n") + "\n"


def rewrite_readme(path: Path = README) -> bool:
    """Put `readme_section()` in place of the README's section; whether that changed it."""
    text = path.read_text(encoding="utf-8")
    start, end = _section_bounds(text)
    new = text[:start] + readme_section() + "\n" + text[end:]
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mockserver.options", description="The table of options, rendered."
    )
    parser.add_argument(
        "--readme", action="store_true", help="rewrite README.md's '## Options' section"
    )
    args = parser.parse_args(argv)
    if args.readme:
        changed = rewrite_readme()
        print(f"{README}: {'rewritten' if changed else 'already up to date'}")
    else:
        sys.stdout.write(readme_section())
    return 0


if __name__ == "__main__":
    sys.exit(main())
