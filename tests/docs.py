"""The README and the docs/ pages it links to, read as one text by the tests that run or check
what they say."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TEXT = "\n\n".join(page.read_text(encoding="utf-8") for page in PAGES)
