"""The OpenAPI 3.1 document of the mock, built from the files in schemas/."""

from __future__ import annotations

from typing import Any

from mockserver.contract import RequestContract
from mockserver.errors import ErrorCatalogue
from mockserver.faults import FaultCatalogue


def build_document(
    contract: RequestContract, catalogue: ErrorCatalogue, faults: FaultCatalogue
) -> dict[str, Any]:
    return {"openapi": "3.1.0", "info": {"title": "jimeng-mockserver", "version": "0.1.0"}, "paths": {}}
