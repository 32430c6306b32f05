"""Settings of the ClickHouse store (section ``[store]`` of the datacenter settings)."""

from __future__ import annotations

import msgspec


class StoreSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where readings are stored and how long the store may take.

    ``dsn`` selects the backend: ``chdb:///abs/path`` or ``chdb://./relative/path`` embeds
    ClickHouse in this process (chDB: one data path per process), ``http(s)://user:pass@host:8123``
    talks to a ClickHouse server.
    """

    dsn: str = "chdb://./.bocage/store"
    database: str = "bocage"
    """Every Bocage table lives in this database (tests use one database per test)."""
    connect_timeout_s: float = 10.0
    query_timeout_s: float = 60.0
    """Socket read timeout of one query or insert on a ClickHouse server (HTTP)."""
    migrate_on_connect: bool = True
    """Apply pending migrations when a service connects (``bocage migrate`` does it explicitly)."""
    migrations_dir: str = ""
    """Folder of ``NNNN_name.sql`` files; empty = the packaged copy, else the repository's."""
