"""Where the mock's data files are: inside an installed wheel (`mockserver/_data/`, copied there
by the build), else at the top of the repository (`schemas/`, `fixtures/contract/`)."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
PACKAGED = PACKAGE / "_data"  # pyproject.toml's force-include puts the data here in a wheel
REPOSITORY = PACKAGE.parent


def data_dir() -> Path:
    """The schemas, the size table and the catalogues."""
    packaged = PACKAGED / "schemas"
    return packaged if packaged.is_dir() else REPOSITORY / "schemas"


def contract_dir() -> Path:
    """The contract cases."""
    packaged = PACKAGED / "contract"
    return packaged if packaged.is_dir() else REPOSITORY / "fixtures" / "contract"


def case_schema_file() -> Path:
    """The schema of a case file: beside the cases' folder, in the repository and in a wheel."""
    return contract_dir().parent / "contract.schema.json"
