"""Argument types of the command line (`jimeng-mock` and `jimeng-mock conform`): numbers
refused with one message that says what was wanted."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def whole(minimum: int) -> Callable[[str], int]:
    """A whole number of at least `minimum`."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = minimum - 1
        if number < minimum:
            raise argparse.ArgumentTypeError(
                f"expected a whole number of at least {minimum}, not {value!r}"
            )
        return number

    return parse


def amount(what: str, *, zero: bool = False) -> Callable[[str], float]:
    """A finite number of `what` ("seconds") above 0, or 0 or more with `zero`."""

    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not (number >= 0 if zero else number > 0) or math.isinf(number):
            least = "0 or more" if zero else "above 0"
            raise argparse.ArgumentTypeError(f"expected {what} {least}, not {value!r}")
        return number

    return parse
