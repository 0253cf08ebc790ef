"""The API dialects, one module each: its routes, request schema, models, size rules, and
how its answers and errors are shaped. The engine never imports them: the app's assembly
(`mockserver.app`) hands them in."""

from __future__ import annotations
