"""The table of options (`mockserver.options`) and what is made from it: the command line,
`MockConfig`'s and `ServeOptions`' fields, the keywords of `MockServer` and `create_app`, and
the README's Options section."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path
from typing import Any

import httpx
import pytest

from mockserver import MockServer, create_app, options
from mockserver.cli import build_parser, config_from, serve_options
from mockserver.config import MockConfig
from mockserver.contract.conform import Options as ConformOptions
from mockserver.errors import ConfigError
from mockserver.web.uvicorn_glue import ServeOptions

README = Path(__file__).resolve().parent.parent / "README.md"

# A value other than the default for every option of `jimeng-mock`, as the command line
# writes it, and as the field holds it then. A new option needs a line here.
SAMPLES: dict[str, tuple[list[str], Any]] = {
    "proxy_headers": (["--proxy-headers"], True),
    "forwarded_allow_ips": (["--forwarded-allow-ips", "10.0.0.1"], "10.0.0.1"),
    "host": (["--host", "::1"], "::1"),
    "port": (["--port", "0"], 0),
    "workers": (["--workers", "3"], 3),
    "http": (["--http", "h11"], "h11"),
    "loop": (["--loop", "asyncio"], "asyncio"),
    "log_level": (["--log-level", "debug"], "debug"),
    "access_log": (["--access-log"], True),
    "admin_token": (["--admin-token", "token-for-ci"], "token-for-ci"),
    "read_timeout": (["--read-timeout", "2.5"], 2.5),
    "limit_concurrency": (["--limit-concurrency", "8"], 8),
    "shutdown_timeout": (["--shutdown-timeout", "0"], 0.0),
    "api_keys": (["--api-key", "sk-a", "--api-key", "sk-b"], ("sk-a", "sk-b")),
    "created": (["--created", "now"], "now"),
    "public_url": (["--public-url", "http://proxy/mock/"], "http://proxy/mock"),
    "strict": (["--strict"], True),
    "ark": (["--ark"], True),
    "sizes": (["--sizes", "s.json"], Path("s.json")),
    "errors": (["--errors", "e.json"], Path("e.json")),
    "secret": (["--secret", "mine"], "mine"),
    "max_body": (["--max-body", "2048"], 2048),
    "fixtures": (["--fixtures", "stubs"], Path("stubs")),
    "fault_catalogue": (["--fault-catalogue", "f.json"], Path("f.json")),
    "latency_ms": (["--latency", "100-500"], (100, 500)),
    "fault_rate": (["--fault-rate", "0.5", "--fault", "quota"], 0.5),
    "fault_names": (["--fault", "quota", "--fault-rate", "1"], ("quota",)),
    "seed": (["--seed", "7"], 7),
    "rpm": (["--rpm", "60"], 60),
    "journal_size": (["--journal-size", "5"], 5),
    "journal_mb": (["--journal-mb", "4"], 4),
    "render_concurrency": (["--render-concurrency", "9"], 9),
    "render_queue": (["--render-queue", "0"], 0),
    "image_cache_mb": (["--image-cache-mb", "0"], 0),
    "upstream": (["--upstream", "http://up:9/v1/"], "http://up:9/v1"),
    "upstream_api_key": (["--upstream-api-key", "sk-up"], "sk-up"),
    "upstream_timeout": (["--upstream-timeout", "1.5"], 1.5),
    "upstream_max_mb": (["--upstream-max-mb", "8"], 8),
    "upstream_invalid": (["--upstream-invalid", "reject"], "reject"),
    "record": (["--record", "rec", "--upstream", "http://up:9/v1"], Path("rec")),
    "record_mode": (["--record-mode", "all"], "all"),
    "cors": (["--cors", "HTTP://Page.test:80/"], ("http://page.test",)),
}


def test_the_readme_options_section_is_the_table() -> None:
    written = options.readme_options(README.read_text(encoding="utf-8"))
    assert written == options.readme_section(), (
        "README.md's '## Options' differs from the table in mockserver/options.py: "
        f"run `{options.REGENERATE}` to rewrite it"
    )


def test_the_readme_section_names_every_option_with_its_default() -> None:
    section = options.readme_section()
    lines = section.splitlines()
    for row in (*options.SERVE, *options.CONFORM):
        cell = row.help.replace("|", "\\|")
        assert [li for li in lines if li.startswith(f"| `{row.spelled}") and cell in li], row.name
    assert "| `--port PORT` | `MockServer(port=)` | `8000` (`0` in Python) |" in section
    assert "| `--api-key KEY` (repeatable) | `api_keys=[...]` | none |" in section
    assert "| `--loop auto\\|asyncio\\|uvloop` | (command only) | `auto` |" in section


def test_rewriting_the_readme_replaces_only_its_options_section(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\nintro\n\n## Options\n\nold table\n\n## Layout\n\nkept\n")

    assert options.rewrite_readme(readme) is True
    text = readme.read_text()
    assert text.startswith("# x\n\nintro\n\n## Options\n")
    assert text.endswith("\n## Layout\n\nkept\n")
    assert "old table" not in text
    assert options.readme_options(text) == options.readme_section()
    assert options.rewrite_readme(readme) is False


def test_every_option_has_a_sample_and_reaches_its_field() -> None:
    assert set(SAMPLES) == {row.name for row in options.SERVE}
    for name, (argv, value) in SAMPLES.items():
        args = build_parser().parse_args(argv)
        row = options.OPTIONS[name]
        assert row.default != value, name
        if row.home == "config":
            assert getattr(config_from(args), name) == value, name
        elif row.home == "serve":
            assert getattr(serve_options(args), name) == value, name
        else:
            assert getattr(args, name) == value, name


def test_the_same_options_after_serve_and_before_it() -> None:
    for argv in (["--created", "7", "--strict"], ["serve", "--created", "7", "--strict"]):
        args = build_parser().parse_args(argv)
        assert (args.command, config_from(args).created, config_from(args).strict) == (
            argv[0] if argv[0] == "serve" else None,
            7,
            True,
        )
    # Given before `serve` and not after it, an option keeps its value.
    args = build_parser().parse_args(["--port", "0", "serve", "--host", "::1"])
    assert (args.port, args.host) == (0, "::1")


def test_the_command_line_defaults_are_the_dataclasses_defaults() -> None:
    args = build_parser().parse_args([])
    assert config_from(args) == MockConfig()
    assert serve_options(args) == ServeOptions()


def test_the_dataclasses_fields_are_the_tables_rows() -> None:
    homes: list[tuple[Any, options.Home]] = [
        (MockConfig, "config"),
        (ServeOptions, "serve"),
        (ConformOptions, "conform"),
    ]
    for cls, home in homes:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for row in options.rows(home):
            assert fields[row.name].metadata["option"] is row
            if row.form != "positional":
                assert fields[row.name].default == row.default, row.name
            assert fields[row.name].repr is not row.secret
    assert "sk-up" not in repr(MockConfig(upstream="http://up/v1", upstream_api_key="sk-up"))


def test_a_dataclass_missing_an_option_is_refused_at_once() -> None:
    @dataclasses.dataclass
    class Partial:
        http: str = options.field("http")

    with pytest.raises(
        TypeError, match=r"no field for \['proxy_headers', 'forwarded_allow_ips', 'loop'"
    ):
        options.declared("serve")(Partial)


def test_the_parser_has_each_row_once_in_its_group() -> None:
    parser = build_parser()
    flags = [
        s for action in parser._actions for s in action.option_strings if s not in ("-h", "--help")
    ]
    assert sorted(flags) == sorted(row.spelled for row in options.SERVE)
    titles = [group.title for group in parser._action_groups]
    groups = list(dict.fromkeys(row.group for row in options.SERVE))
    assert titles[-len(groups) :] == groups


def test_help_lists_the_subcommands_and_the_groups(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    assert exited.value.code == 0
    assert "\n    serve " in text
    assert "\n    conform " in text
    for row in options.SERVE:
        assert f"\n{row.group}:\n" in text
        assert row.spelled in text
    assert "`" not in text  # the README's code marks, left out


def test_checks_refuse_bad_values_with_a_config_error() -> None:
    for keywords, message in (
        ({"journal_size": 0}, "journal size must be a whole number of at least 1"),
        ({"cors": ["ftp://x"]}, "cors origin 'ftp://x' must be http"),
        ({"upstream_invalid": "drop"}, "upstream invalid must be forward or reject"),
        ({"record_mode": "some"}, "record mode must be new, all or none"),
        ({"record": "dir"}, "needs an upstream"),
    ):
        with pytest.raises(ConfigError, match=message):
            MockConfig(**keywords)
    with pytest.raises(ConfigError, match="read_timeout must be seconds above 0"):
        ServeOptions(read_timeout=0)


def test_an_unknown_keyword_names_the_nearest_known_one() -> None:
    with pytest.raises(TypeError, match="'jurnal_size'; did you mean 'journal_size'"):
        MockServer(jurnal_size=5)
    with pytest.raises(TypeError, match="'fixture'; did you mean 'fixtures'"):
        create_app(fixture="stubs")
    with pytest.raises(TypeError, match="'prot'; did you mean 'port'"):
        MockServer(prot=0)
    with pytest.raises(TypeError, match="takes no 'http': --http is MockServer's"):
        create_app(http="h11")  # the app is not served: it has no parser to choose
    with pytest.raises(TypeError, match="takes no 'loop': --loop is the command line's only"):
        MockServer(loop="uvloop")


def test_mock_server_takes_config_and_serving_keywords() -> None:
    config = MockConfig(api_keys=["sk-own"])
    with MockServer(config, http="h11", read_timeout=5) as server:
        answer = httpx.post(
            server.api_base + "/images/generations",
            json={"model": "jimeng-4.0", "prompt": "p", "n": 1},
            headers={"Authorization": "Bearer sk-other"},
        )
        assert server.http == "h11"
    assert answer.status_code == 401
    with pytest.raises(TypeError, match="not both"):
        MockServer(config, strict=True)


def test_the_command_hands_its_workers_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """No argv to parse again: the checked config, its random secret in it, pickled."""
    handed: list[tuple[Any, ...]] = []

    def fake_workers(sock: Any, count: int, factory: Any, args: Any, *rest: Any) -> int:
        handed.append((count, factory, args))
        return 0

    monkeypatch.setattr("mockserver.cli.serve_workers", fake_workers)
    from mockserver import cli

    argv = ["--workers", "2", "--port", "0", "--host", "0.0.0.0", "--journal-size", "3"]
    assert cli.main(argv) == 0
    ((count, factory, (config,)),) = handed
    assert (count, factory) == (2, create_app)
    assert isinstance(config, MockConfig)
    assert config.journal_size == 3
    assert len(config.secret or "") == 64
    assert pickle.loads(pickle.dumps(config)) == config


def test_the_serve_subcommand_refuses_what_it_does_not_know(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv, prog in ((["serve", "--nope"], "jimeng-mock serve"), (["--nope"], "jimeng-mock")):
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args(argv)
        assert exited.value.code == 2
        assert f"{prog}: error: unrecognized arguments: --nope" in capsys.readouterr().err


def test_the_conform_options_are_its_rows() -> None:
    args = build_parser().parse_args(["conform", "http://x/v1", "--max-generations", "2"])
    from mockserver.contract.conform import options_of

    assert options_of(args) == ConformOptions(url="http://x/v1", max_generations=2)
