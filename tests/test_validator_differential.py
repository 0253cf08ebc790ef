"""The compiled validator (jsonschema_rs) takes exactly the bodies jsonschema takes.

RequestContract.validate trusts the compiled validator's yes and asks jsonschema (the reference,
which names the error) about everything else, so the two must agree on every body: generated
ones, from values in and out of every field's rules, and the tricky ones named below, against
the default contract, the --strict one and one built on another size table.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mockserver.answers.matching import Matcher
from mockserver.contract.fast import compile_fast
from mockserver.contract.schemas import EcmaValidator, data_dir
from mockserver.contract.sizes import SizeTable
from mockserver.contract.validation import RequestContract, RequestValidator

SCHEMA = json.loads((data_dir() / "images-generations.request.json").read_text("utf-8"))
FIELDS = tuple(SCHEMA["properties"])
MODELS = tuple(SCHEMA["properties"]["model"]["enum"])
MAX_PROMPT = SCHEMA["properties"]["prompt"]["maxLength"]
PROMPT_PATTERN = SCHEMA["properties"]["prompt"]["pattern"]

# Another size table: other ratios and resolutions than schemas/sizes.json, and fewer.
OTHER_SIZES = {
    "defaults": {"ratio": "5:4", "resolution": "hd"},
    "explicit_size_bounds": {"min_pixels": 65536, "max_pixels": 4194304, "max_aspect_ratio": 4},
    "table": {
        "5:4": {"hd": [1280, 1024], "8k": [8000, 6400]},
        "1:2": {"hd": [720, 1440]},
    },
}
CONTRACTS = ("default", "strict", "other-sizes")

# Every character Python's `\s` matches (in all of Unicode), ECMA's `\s` adds (U+FEFF), or older
# Unicode counted as a space (U+180E).
PY_SPACES = [chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace()]
SPACES = "".join(PY_SPACES) + "\ufeff\u180e"
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
URL = "https://example.com/cat.png"
DATA_URI = "data:image/png;base64,iVBORw0KGgo="
SETTINGS = settings(
    max_examples=2000,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def contracts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RequestContract]:
    other = tmp_path_factory.mktemp("sizes") / "sizes.json"
    other.write_text(json.dumps(OTHER_SIZES), encoding="utf-8")
    sizes = SizeTable.from_file(data_dir() / "sizes.json")
    return {
        "default": RequestContract.from_dir(data_dir(), sizes, strict=False),
        "strict": RequestContract.from_dir(data_dir(), sizes, strict=True),
        "other-sizes": RequestContract.from_dir(
            data_dir(), SizeTable.from_file(other), strict=False
        ),
    }


def agree(contract: RequestContract, request: dict[str, Any]) -> bool:
    """Whether both validators give the same answer; asserts it, with both answers shown."""
    body = contract.without_nulls(request)
    fast, reference = contract.fast_accepts(body), contract.reference_accepts(body)
    assert fast == reference, f"jsonschema_rs says {fast}, jsonschema {reference}: {body!r}"
    return reference


# --- Values in and out of each field's rules -------------------------------------------------

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
NOT_STRINGS = st.one_of(
    st.booleans(), st.integers(), st.floats(), st.lists(st.text(max_size=3), max_size=2)
)


BLANK = st.text(st.sampled_from(SPACES + ZERO_WIDTH), min_size=1, max_size=4)


def tricky_text(max_size: int = 12) -> st.SearchStrategy[str]:
    """Text of spaces, zero-width characters, NUL, line ends and anything else."""
    return st.text(
        st.sampled_from(SPACES + ZERO_WIDTH + "\x00\n\r\u2028a") | st.characters(codec="utf-8"),
        max_size=max_size,
    )


MODEL = st.one_of(
    st.sampled_from(MODELS),
    st.sampled_from(["jimeng-3.0", "Jimeng-4.0", ""]),
    st.text(max_size=12),
    NOT_STRINGS,
)
PROMPT = st.one_of(
    st.text(min_size=1, max_size=80),
    tricky_text(),
    BLANK,
    st.sampled_from(["", " ", "\t\n", ZERO_WIDTH, "a\x00b", "\x00", "\x1c", "\x85", "\ufeffa"]),
    st.sampled_from([MAX_PROMPT - 1, MAX_PROMPT, MAX_PROMPT + 1]).flatmap(
        lambda length: st.sampled_from(["x" * length, " " * (length - 1) + "x", "😀" * length])
    ),
    NOT_STRINGS,
)
N = st.one_of(
    st.integers(-2, 17),
    st.sampled_from([2.0, 1.5, 1.0, 15.0, 16.0, 0.0, -1.0, 1e300, True, False, "2", "", [2]]),
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2),
    st.integers(max_value=-(2**63) + 2, min_value=-(2**64) - 2),
    st.floats(),
    st.text(max_size=3),
)
SIZE_EXAMPLES = [
    "1024*1024",
    "1024x1024",
    "1024*1024\n",
    "1024*1024 ",
    " 1024*1024",
    "\n1024*1024",
    "01024*1024",
    "1024*01024",
    "0*0",
    "123456789*1",
    "12345678*12345678",
    "1024X1024",
    "1024\u00d71024",
    "1024*",
    "*1024",
    "1024**1024",
    "\uff11\uff10\uff12\uff14*1024",
    "",
]
SIZE = st.one_of(
    st.sampled_from(SIZE_EXAMPLES),
    st.from_regex(r"\A[0-9]{1,10}[*xX\u00d7][0-9]{1,10}\Z"),
    st.from_regex(r"[1-9][0-9]{0,7}[*x][1-9][0-9]{0,7}", fullmatch=False),
    tricky_text(),
    NOT_STRINGS,
)
IMAGE_ITEM = st.one_of(
    st.sampled_from(
        [
            URL,
            "http://a",
            "HTTP://A/b?c#d",
            "https://a/b c",
            "https://",
            "ftp://a",
            "https://a\x1cb",
            "https://a\x85b",
            "https://a\ufeffb",
            "https://a/\u3000",
            DATA_URI,
            "data:image/png;base64,",
            "data:image/svg+xml;base64,AAAA==",
            "data:image/png;base64,AA===",
            "data:text/plain;base64,AAAA",
            URL + "\n",
        ]
    ),
    st.from_regex(r"\Ahttps?://[^\s/?#]+([/?#]\S*)?\Z"),
    st.from_regex(r"\Adata:image/[A-Za-z0-9.+-]+;base64,[A-Za-z0-9+/]+={0,2}\Z"),
    st.builds(lambda host, rest: f"https://{host}/{rest}", tricky_text(4), tricky_text(4)),
    st.builds(
        lambda blank, rest: f"https://a{blank}{rest}", BLANK, st.sampled_from(["", "b", "/b"])
    ),
    tricky_text(),
    NOT_STRINGS,
    st.none(),
)
IMAGES = st.one_of(
    st.sampled_from([9, 10, 11, 13, 14, 15, 16]).flatmap(
        lambda k: st.lists(st.sampled_from([URL, DATA_URI]), min_size=k, max_size=k)
    ),
    st.lists(IMAGE_ITEM, max_size=4),
    st.lists(st.sampled_from([URL, DATA_URI]), min_size=1, max_size=3).flatmap(
        lambda good: IMAGE_ITEM.map(lambda bad: [*good, bad])
    ),
    st.sampled_from([URL, "", {}]),
    NOT_STRINGS,
)
ENUM_JUNK = st.one_of(st.text(max_size=6), NOT_STRINGS)
RESPONSE_FORMAT = st.one_of(st.sampled_from(["url", "b64_json", "URL", "b64", "json"]), ENUM_JUNK)


def field_values(contract: RequestContract) -> dict[str, st.SearchStrategy[Any]]:
    sizes = contract.sizes
    return {
        "model": MODEL,
        "prompt": PROMPT,
        "n": N,
        "size": SIZE,
        "image": IMAGES,
        # The contract's own table, the other one's and junk: each table refuses the other's.
        "ratio": st.one_of(st.sampled_from([*sizes.ratios, "1:1", "5:4", "1:2", "1:3"]), ENUM_JUNK),
        "resolution": st.one_of(st.sampled_from([*sizes.resolutions, "2k", "hd", "8k"]), ENUM_JUNK),
        "response_format": RESPONSE_FORMAT,
    }


VALID_IMAGES = st.lists(st.sampled_from([URL, DATA_URI, "http://a/b?c"]), max_size=10)


def valid_values(contract: RequestContract) -> dict[str, st.SearchStrategy[Any]]:
    """Values within every rule, so that most bodies are accepted or refused for one reason."""
    return {
        "model": st.sampled_from(MODELS),
        "prompt": st.text(min_size=1, max_size=40).filter(lambda text: not text.isspace()),
        "n": st.integers(1, 4),
        "size": st.sampled_from(["1024*1024", "2048x2048"]),
        "image": VALID_IMAGES,
        "ratio": st.sampled_from(contract.sizes.ratios),
        "resolution": st.sampled_from(contract.sizes.resolutions),
        "response_format": st.sampled_from(["url", "b64_json"]),
    }


UNKNOWN_FIELDS = st.dictionaries(
    st.text(min_size=1, max_size=8).filter(lambda name: name not in FIELDS),
    JSON_VALUES,
    min_size=1,
    max_size=2,
)


def bodies(contract: RequestContract) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies of mostly valid fields, a few out of their rules, missing or null, or unknown."""
    anything, valid = field_values(contract), valid_values(contract)

    @st.composite
    def body(draw: st.DrawFn) -> dict[str, Any]:
        drawn: dict[str, Any] = {}
        for name in FIELDS:
            roll = draw(st.integers(0, 14))
            if roll == 0:
                continue  # absent, even when required
            if roll == 1:
                drawn[name] = None
            else:
                drawn[name] = draw(anything[name] if roll <= 3 else valid[name])
        if draw(st.integers(0, 4)) == 0:
            drawn.update(draw(UNKNOWN_FIELDS))
        if draw(st.booleans()):
            drawn = {name: drawn[name] for name in draw(st.permutations(list(drawn)))}
        return drawn

    return body()


@pytest.mark.parametrize("name", CONTRACTS)
def test_compiled_validator_agrees_with_jsonschema(
    contracts: dict[str, RequestContract], name: str
) -> None:
    contract = contracts[name]
    accepted: list[bool] = []

    @SETTINGS
    @given(bodies(contract))
    def check(body: dict[str, Any]) -> None:
        accepted.append(agree(contract, body))

    check()
    # Not vacuous: a fair share of the bodies was accepted, and a fair share refused.
    assert 0.1 < sum(accepted) / len(accepted) < 0.9, (sum(accepted), len(accepted))


# --- The tricky bodies, always run -----------------------------------------------------------

BASE = {"model": "jimeng-4.5", "prompt": "a cat", "n": 1}
TRICKY: dict[str, tuple[dict[str, Any], bool]] = {
    # name: (body, whether the default contract accepts it)
    "minimal": (BASE, True),
    "every field": (
        {
            **BASE,
            "size": "1024*1024",
            "image": [URL, DATA_URI],
            "ratio": "16:9",
            "resolution": "4k",
            "response_format": "b64_json",
        },
        True,
    ),
    "n 2.0": ({**BASE, "n": 2.0}, False),
    "n 1.0": ({**BASE, "n": 1.0}, False),
    "n 1.5": ({**BASE, "n": 1.5}, False),
    "n 1e300": ({**BASE, "n": 1e300}, False),
    "n true": ({**BASE, "n": True}, False),
    "n false": ({**BASE, "n": False}, False),
    "n string": ({**BASE, "n": "2"}, False),
    "n null": ({**BASE, "n": None}, False),
    "n 0": ({**BASE, "n": 0}, False),
    "n 15": ({**BASE, "n": 15}, True),
    "n 16": ({**BASE, "n": 16}, False),
    "n 2**64": ({**BASE, "n": 2**64}, False),
    "n -2**64": ({**BASE, "n": -(2**64)}, False),
    "model jimeng-4.0": ({**BASE, "model": "jimeng-4.0"}, True),
    "model unknown": ({**BASE, "model": "jimeng-3.0"}, False),
    "model not a string": ({**BASE, "model": 4.5}, False),
    "model missing": ({"prompt": "a cat", "n": 1}, False),
    "prompt empty": ({**BASE, "prompt": ""}, False),
    "prompt spaces": ({**BASE, "prompt": " \t\n\u3000"}, False),
    "prompt zero-width": ({**BASE, "prompt": ZERO_WIDTH}, False),
    "prompt NUL": ({**BASE, "prompt": "a\x00b"}, False),
    "prompt U+001C": ({**BASE, "prompt": "\x1c"}, False),  # Python's \s, not ECMA's
    "prompt U+0085": ({**BASE, "prompt": "\x85"}, False),  # Python's \s, not ECMA's
    "prompt U+FEFF and text": ({**BASE, "prompt": "\ufeffa"}, True),
    "prompt 4000": ({**BASE, "prompt": "x" * MAX_PROMPT}, True),
    "prompt 4001": ({**BASE, "prompt": "x" * (MAX_PROMPT + 1)}, False),
    "prompt 4000 astral": ({**BASE, "prompt": "😀" * MAX_PROMPT}, True),
    "size x": ({**BASE, "size": "1024x1024"}, True),
    "size newline": ({**BASE, "size": "1024*1024\n"}, False),
    "size leading zero": ({**BASE, "size": "01024*1024"}, False),
    "size huge": ({**BASE, "size": "123456789*1"}, False),
    "size largest form": ({**BASE, "size": "99999999*99999999"}, True),  # bounds come later
    "size fullwidth digits": ({**BASE, "size": "\uff11\uff10\uff12\uff14*1024"}, False),
    "image 10 for jimeng-4.0": ({**BASE, "model": "jimeng-4.0", "image": [URL] * 10}, True),
    "image 11 for jimeng-4.0": ({**BASE, "model": "jimeng-4.0", "image": [URL] * 11}, False),
    "image 14 for jimeng-4.5": ({**BASE, "image": [DATA_URI] * 14}, True),
    "image 15 for jimeng-4.5": ({**BASE, "image": [DATA_URI] * 15}, False),
    "image 11, no model": ({"prompt": "a", "n": 1, "image": [URL] * 11}, False),
    "image junk": ({**BASE, "image": ["not a url"]}, False),
    "image U+001C in host": ({**BASE, "image": ["https://a\x1cb"]}, False),
    "image U+FEFF in host": ({**BASE, "image": ["https://a\ufeffb"]}, True),
    "image data URI, no data": ({**BASE, "image": ["data:image/png;base64,"]}, False),
    "image trailing newline": ({**BASE, "image": [URL + "\n"]}, False),
    "image not a list": ({**BASE, "image": URL}, False),
    "ratio not in table": ({**BASE, "ratio": "5:4"}, False),
    "resolution not in table": ({**BASE, "resolution": "8k"}, False),
    "response_format unknown": ({**BASE, "response_format": "json"}, False),
    "optionals null": (
        {
            **BASE,
            "size": None,
            "image": None,
            "ratio": None,
            "resolution": None,
            "response_format": None,
        },
        True,
    ),
    "unknown field": ({**BASE, "quality": "hd"}, True),
    "unknown field, float": ({**BASE, "guidance_scale": 2.0}, True),
    "unknown field null": ({**BASE, "user": None}, True),
}


@pytest.mark.parametrize("name", CONTRACTS)
@pytest.mark.parametrize(("body", "default_accepts"), TRICKY.values(), ids=list(TRICKY))
def test_tricky_bodies(
    contracts: dict[str, RequestContract],
    name: str,
    body: dict[str, Any],
    default_accepts: bool,
) -> None:
    accepted = agree(contracts[name], body)
    if name == "default":
        assert accepted is default_accepts


@pytest.mark.parametrize("space", [*PY_SPACES, "\ufeff", "\u180e"], ids=lambda c: f"U+{ord(c):04X}")
def test_every_space_is_the_same_to_both(contracts: dict[str, RequestContract], space: str) -> None:
    for text in (space, f"{space}a", f"https://a{space}b"):
        agree(contracts["default"], {**BASE, "prompt": text})
        agree(contracts["default"], {**BASE, "image": [text]})


def test_strict_and_other_sizes_refuse_what_the_default_takes(
    contracts: dict[str, RequestContract],
) -> None:
    assert not agree(contracts["strict"], {**BASE, "quality": "hd"})
    assert not agree(contracts["strict"], {**BASE, "user": None})  # only a known field's null
    assert agree(contracts["strict"], {**BASE, "size": None})  # is taken as absent
    assert agree(contracts["other-sizes"], {**BASE, "ratio": "5:4", "resolution": "8k"})
    assert not agree(contracts["other-sizes"], {**BASE, "ratio": "1:1"})


def test_the_contract_schema_is_left_as_it_was(contracts: dict[str, RequestContract]) -> None:
    # GET /openapi.json shows contract.schema: the compiled validator's copy is its own.
    for contract in contracts.values():
        assert "mockStrictInteger" not in json.dumps(contract.schema)
        assert contract.schema["properties"]["prompt"]["pattern"] == PROMPT_PATTERN


def test_a_lone_surrogate_falls_back_to_jsonschema(contracts: dict[str, RequestContract]) -> None:
    # jsonschema_rs cannot take it (no UTF-8 for it); the body reader refuses it before. The
    # compiled validator only says no, and validate() answers as jsonschema does.
    contract = contracts["default"]
    body = {**BASE, "prompt": "a\ud800"}
    assert not contract.fast_accepts(body)
    assert contract.reference_accepts(body)
    assert contract.validate(body).prompt == "a\ud800"


# --- The pattern rewriting, beyond the schema's own patterns ---------------------------------

PATTERNS = [r"^a.b$", r"\S", r"^[\s]*$", r"^\S+$", r"^x{2,3}$", r"\$", r"^(?:ab)+$", r"[^\s-]"]


@pytest.mark.parametrize("pattern", PATTERNS)
@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(text=tricky_text(6))
def test_rewritten_patterns_match_what_python_matches(pattern: str, text: str) -> None:
    schema = {"type": "string", "pattern": pattern}
    fast = compile_fast(schema)
    assert fast is not None
    assert fast.is_valid(text) == RequestValidator(schema).is_valid(text), repr(text)


@pytest.mark.parametrize("pattern", [*PATTERNS, r"a$", r"[$]", r"^\\$"])
@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(text=st.one_of(tricky_text(6), st.sampled_from(["a", "a\n", "$", "\\", "\\\n"])))
def test_schemas_and_matchers_read_a_pattern_alike(pattern: str, text: str) -> None:
    """A JSON pattern means one thing to every part of the mock: the schemas' validator and a
    matcher of a stub file or a queued fault."""
    matcher = Matcher.from_json({"regex": pattern})
    in_schema = EcmaValidator({"type": "string", "pattern": pattern}).is_valid(text)
    assert matcher.matches(text) == in_schema, repr(text)


def test_a_dollar_is_the_very_end_of_the_text_everywhere() -> None:
    for pattern in (r"^a$", r"a$", r"^(?:a|b)$"):
        assert re.search(pattern, "a\n")  # where Python's own `$` would take it
        assert not Matcher.from_json({"regex": pattern}).matches("a\n")
        assert not EcmaValidator({"pattern": pattern}).is_valid("a\n")
        assert not RequestValidator({"pattern": pattern}).is_valid("a\n")
        fast = compile_fast({"pattern": pattern})
        assert fast is not None
        assert not fast.is_valid("a\n")


@pytest.mark.parametrize("pattern", [r"\d", r"\w", r"\bx", r"(?i)a", r"(?=a)", "a{", "[]a]", r"\p"])
def test_patterns_it_cannot_rewrite_leave_jsonschema_alone(pattern: str) -> None:
    assert compile_fast({"type": "string", "pattern": pattern}) is None
    assert compile_fast({"properties": {"a": {"items": {"pattern": pattern}}}}) is None


def test_x_annotations_do_not_change_either_validator() -> None:
    annotated = {"type": "integer", "x-error-code": {"type": "nope"}, "x-hint": {"enum": [1]}}
    for value, expected in ((3, True), (3.0, False), ("3", False)):
        fast = compile_fast(annotated)
        assert fast is not None
        assert fast.is_valid(value) is expected
        assert RequestValidator(annotated).is_valid(value) is expected
