"""Versioned, idempotent SQL migrations of the store.

Files are ``NNNN_name.sql`` in ``infra/clickhouse/migrations`` (the source of truth); the wheel
of bocage-services carries a copy under ``bocage/store/migrations``. ``{db}`` in a file is
replaced by the database name; statements are separated by a ``;`` at the end of a line.
Every statement is idempotent (``IF NOT EXISTS``) so a half-applied migration can be re-run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bocage.core.errors import ConfigError

_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
_STATEMENT_END = re.compile(r";[ \t]*(?:\n|$)")


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file text: a changed, already applied file is reported."""
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self, database: str) -> list[str]:
        """The SQL statements, with ``{db}`` bound to the quoted database name."""
        text = "\n".join(
            line for line in self.sql.splitlines() if not line.lstrip().startswith("--")
        )
        quoted = f"`{database}`"
        parts = (part.strip() for part in _STATEMENT_END.split(text))
        return [part.replace("{db}", quoted) for part in parts if part]


def locate(configured: str = "") -> Path:
    """The migrations folder: ``configured`` if given, else the packaged copy, else the repo's."""
    if configured:
        path = Path(configured)
        if not path.is_dir():
            raise ConfigError(f"{path} is not a directory", field="store.migrations_dir")
        return path
    packaged = resources.files("bocage.store") / "migrations"
    if packaged.is_dir():
        return Path(str(packaged))
    # Development checkout (editable install): walk up to the repository's infra/ folder.
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "infra" / "clickhouse" / "migrations"
        if candidate.is_dir():
            return candidate
    raise ConfigError(
        "no ClickHouse migrations found (neither packaged nor in a checkout); "
        "set store.migrations_dir",
        field="store.migrations_dir",
    )


def load(folder: Path) -> list[Migration]:
    """Every migration of ``folder``, ordered by version (duplicate versions are an error)."""
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise ConfigError(f"migration file name {path.name!r} is not NNNN_name.sql")
        version = int(match["version"])
        if version in found:
            raise ConfigError(f"two migrations with version {version:04d} in {folder}")
        found[version] = Migration(version, match["name"], path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]
