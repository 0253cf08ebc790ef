"""How a secret is shown where it must be named at all: an API key as `...` and its last four
characters, or `****` when it has 8 or fewer; and secrets taken out of text that came from
elsewhere (an upstream that echoes the key it was sent)."""

from __future__ import annotations

from collections.abc import Iterable

SHOWN_TAIL = 4  # characters of a key shown
SHORT_KEY = 8  # a key of this many characters or fewer is shown as nothing of it


def masked(key: str) -> str:
    return f"...{key[-SHOWN_TAIL:]}" if len(key) > SHORT_KEY else "****"


def without(text: bytes, secrets: Iterable[str]) -> bytes:
    """`text` with every secret in it (as UTF-8) replaced by its masked form."""
    for secret in secrets:
        if secret:
            text = text.replace(secret.encode("utf-8", "surrogateescape"), masked(secret).encode())
    return text


def without_in(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, masked(secret))
    return text
