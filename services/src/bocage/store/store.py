"""The ClickHouse store: one client for embedded chDB or a ClickHouse server over HTTP."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import clickhouse_connect
import pyarrow as pa  # type: ignore[import-untyped]  # no stubs published
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

from bocage.core.errors import BocageError, ConfigError, UnreachableError
from bocage.core.logs import get_logger
from bocage.core.register import Register
from bocage.store import schema
from bocage.store.batch import READINGS_COLUMNS
from bocage.store.register_rows import register_tables
from bocage.store.settings import StoreSettings
from bocage.store.sketches import SKETCH_COLUMNS

log = get_logger("bocage.store")


class StoredFrame(NamedTuple):
    """A frame as recorded in the ``frames`` ledger."""

    readings: int
    first_ms: int
    last_ms: int


class StoreError(BocageError):
    """A store operation failed (the message carries ClickHouse's reason)."""


def _redact(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _chdb_path(dsn: str) -> Path:
    """Data folder of a ``chdb://`` DSN (``chdb:///abs`` or ``chdb://./rel``)."""
    rest = dsn[len("chdb://") :].split("?", 1)[0]
    if not rest or rest == "/":
        raise ConfigError(
            "a chdb DSN needs a data folder, e.g. chdb://./.bocage/store", field="store.dsn"
        )
    return Path(rest).expanduser().resolve()


class Store:
    """Readings, rollups, register and ingest bookkeeping in one ClickHouse database.

    Open with :meth:`connect`. Every method is safe to call from several threads: with chDB
    calls are serialised by a lock (one embedded engine per process); with a server the HTTP
    client is used concurrently. Methods block: call them from asyncio via ``asyncio.to_thread``.
    """

    def __init__(self, settings: StoreSettings, client: Client, *, embedded: bool) -> None:
        self.settings = settings
        self.database = settings.database
        self.embedded = embedded
        self._client = client
        self._lock: AbstractContextManager[Any] = threading.RLock() if embedded else nullcontext()
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def connect(cls, settings: StoreSettings) -> Store:
        """Connect, create the database if needed, and migrate if ``migrate_on_connect``.

        Raises :class:`UnreachableError` when the server cannot be reached and
        :class:`ConfigError` for a malformed DSN.
        """
        dsn = settings.dsn
        if not settings.database or "`" in settings.database:
            raise ConfigError("must be a plain identifier", field="store.database")
        embedded = dsn.startswith("chdb://")
        try:
            if embedded:
                path = _chdb_path(dsn)
                try:
                    path.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise UnreachableError(
                        "ClickHouse (chDB)", dsn, f"cannot create {path}: {exc.strerror}"
                    ) from None
                client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
            elif dsn.startswith(("http://", "https://", "clickhouse://", "clickhouses://")):
                client = clickhouse_connect.get_client(
                    dsn=dsn,
                    connect_timeout=settings.connect_timeout_s,
                    send_receive_timeout=settings.query_timeout_s,
                    # no server session: the client is shared by threads and processes
                    autogenerate_session_id=False,
                )
            else:
                raise ConfigError(
                    f"unsupported DSN {_redact(dsn)!r} (use chdb:// or http(s)://)",
                    field="store.dsn",
                )
        except OperationalError as exc:
            raise UnreachableError("ClickHouse", _redact(dsn), _reason(exc)) from None
        except ClickHouseError as exc:
            if "different path" in str(exc):
                raise ConfigError(
                    "chDB is already open on another data folder in this process "
                    "(one per process); "
                    "share one Store between services",
                    field="store.dsn",
                ) from None
            raise UnreachableError("ClickHouse", _redact(dsn), _reason(exc)) from None
        store = cls(settings, client, embedded=embedded)
        try:
            store.command(f"CREATE DATABASE IF NOT EXISTS {store.quoted_database}")
            store._client.database = settings.database
            if settings.migrate_on_connect:
                store.migrate()
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        """Release the client (idempotent)."""
        if not self._closed:
            self._closed = True
            with self._lock:
                self._client.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def quoted_database(self) -> str:
        """The database name quoted for SQL."""
        return f"`{self.database}`"

    def table(self, name: str) -> str:
        """Fully qualified, quoted name of table ``name`` of this store's database."""
        return f"{self.quoted_database}.`{name}`"

    def ping(self) -> bool:
        """True if the store answers a trivial query now."""
        try:
            self.query("SELECT 1")
        except BocageError:
            return False
        return True

    # -- plain queries -----------------------------------------------------------------------

    @contextmanager
    def _call(self, what: str) -> Iterator[None]:
        """Serialise (chDB) and translate ClickHouse exceptions into Bocage errors."""
        with self._lock:
            try:
                yield
            except OperationalError as exc:
                raise UnreachableError(
                    "ClickHouse", _redact(self.settings.dsn), _reason(exc)
                ) from None
            except ClickHouseError as exc:
                raise StoreError(f"{what} failed: {_reason(exc)}") from None

    def command(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        """Run a statement that returns no rows (DDL, INSERT ... SELECT, mutations)."""
        with self._call("command"):
            self._client.command(
                sql, parameters=dict(parameters or {}), settings=dict(settings or {})
            )

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a query; bind values with ``{name:Type}`` placeholders in ``sql``."""
        with self._call("query"):
            result = self._client.query(sql, parameters=dict(parameters or {}))
            return [tuple(row) for row in result.result_rows]

    def query_dicts(
        self, sql: str, parameters: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Rows of a query as dicts keyed by column name."""
        with self._call("query"):
            result = self._client.query(sql, parameters=dict(parameters or {}))
            return list(result.named_results())

    def query_arrow(self, sql: str, parameters: Mapping[str, Any] | None = None) -> pa.Table:
        """Result of a query as an Arrow table (the cheapest form for large results)."""
        with self._call("query"):
            return self._client.query_arrow(
                sql, parameters=dict(parameters or {}), use_strings=True
            )

    def scalar(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        """First column of the first row (None for an empty result)."""
        rows = self.query(sql, parameters)
        return rows[0][0] if rows else None

    def insert_rows(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        column_names: Sequence[str],
        *,
        dedup_token: str | None = None,
    ) -> None:
        """Insert a few row-oriented rows (register, quarantine, events — not readings).

        ``dedup_token`` makes a retried insert a no-op on tables with a deduplication window.
        """
        if not rows:
            return
        settings = {"insert_deduplication_token": dedup_token} if dedup_token else {}
        with self._call(f"insert into {table}"):
            self._client.insert(
                self.table(table),
                [tuple(r) for r in rows],
                column_names=list(column_names),
                settings=settings,
            )

    # -- migrations --------------------------------------------------------------------------

    def migrate(self) -> list[str]:
        """Apply pending migrations in order; return those applied now (``"0001_register"``).

        Versions are recorded in ``schema_migrations``. Statements are idempotent, so a
        migration interrupted half-way is simply applied again.
        """
        folder = schema.locate(self.settings.migrations_dir)
        pending = schema.load(folder)
        self.command(
            f"CREATE TABLE IF NOT EXISTS {self.table('schema_migrations')} "
            "(version UInt32, name String, checksum String, "
            "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
            "ENGINE = MergeTree ORDER BY version"
        )
        applied = {
            int(v): c
            for v, c in self.query(
                "SELECT version, any(checksum) "
                f"FROM {self.table('schema_migrations')} GROUP BY version"
            )
        }
        done: list[str] = []
        for migration in pending:
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    log.warning(
                        "migration changed after it was applied",
                        version=migration.version,
                        name=migration.name,
                    )
                continue
            for statement in migration.statements(self.database):
                self.command(statement)
            self.insert_rows(
                "schema_migrations",
                [(migration.version, migration.name, migration.checksum)],
                ["version", "name", "checksum"],
            )
            log.info(
                "migration applied",
                version=migration.version,
                name=migration.name,
                database=self.database,
            )
            done.append(f"{migration.version:04d}_{migration.name}")
        return done

    def applied_migrations(self) -> list[int]:
        """Versions recorded in ``schema_migrations``, ascending."""
        return [
            int(r[0])
            for r in self.query(
                f"SELECT DISTINCT version FROM {self.table('schema_migrations')} ORDER BY version"
            )
        ]

    # -- register ----------------------------------------------------------------------------

    def sync_register(self, register: Register) -> None:
        """Make the register tables equal to ``register`` (territories, gateways, sensors).

        Each table is rebuilt in a side table and swapped in with ``EXCHANGE TABLES``, so a
        reader sees either the old or the new register, never a partial one.
        """
        for name, (columns, rows) in register_tables(register).items():
            side = f"{name}__sync"
            self.command(f"DROP TABLE IF EXISTS {self.table(side)}")
            self.command(f"CREATE TABLE {self.table(side)} AS {self.table(name)}")
            self.insert_rows(side, rows, columns)
            self.command(f"EXCHANGE TABLES {self.table(side)} AND {self.table(name)}")
            self.command(f"DROP TABLE IF EXISTS {self.table(side)}")

    def retention_days(self) -> dict[tuple[str, str], int]:
        """Effective retention of every registered sensor, keyed by (territory, sensor)."""
        return {
            (t, s): int(d)
            for t, s, d in self.query(
                f"SELECT territory, id, retention_days FROM {self.table('sensors')}"
            )
        }

    # -- readings ----------------------------------------------------------------------------

    def insert_readings(self, batch: pa.Table, *, dedup_token: str | None = None) -> int:
        """Insert a columnar batch of readings (see :class:`~bocage.store.batch.ReadingsBatch`).

        With ``dedup_token``, inserting the same batch again with the same token is a no-op
        (ClickHouse insert deduplication; materialized views deduplicate their own blocks too),
        which makes retrying an insert whose outcome is unknown safe. Returns the row count.
        """
        if batch.num_rows == 0:
            return 0
        settings: dict[str, Any] = {"deduplicate_blocks_in_dependent_materialized_views": 1}
        if dedup_token:
            settings["insert_deduplication_token"] = dedup_token
        started = time.perf_counter()
        with self._call("insert into readings"):
            self._client.insert_arrow(
                self.table("readings"), batch.select(list(READINGS_COLUMNS)), settings=settings
            )
        log.debug(
            "readings inserted",
            rows=batch.num_rows,
            seconds=round(time.perf_counter() - started, 3),
        )
        return int(batch.num_rows)

    def insert_sketches(self, table: pa.Table, *, dedup_token: str | None = None) -> int:
        """Insert rows of ``sketches_1h`` (see :func:`bocage.store.sketches.sketch_table`).

        Rows are keyed by frame id: inserting a frame's rows again is harmless (readers count
        one row per frame and hour); ``dedup_token`` also makes a retried insert a no-op.
        Returns the row count.
        """
        if table.num_rows == 0:
            return 0
        settings: dict[str, Any] = {}
        if dedup_token:
            settings["insert_deduplication_token"] = dedup_token
        with self._call("insert into sketches_1h"):
            self._client.insert_arrow(
                self.table("sketches_1h"), table.select(list(SKETCH_COLUMNS)), settings=settings
            )
        return int(table.num_rows)

    def stored_frames(self, frames: Iterable[tuple[str, str, int]]) -> dict[str, StoredFrame]:
        """What the ledger says of frames given as (territory, gateway, sequence).

        Reads the ``frames`` ledger (fed by the same INSERT as the readings). Frames absent
        from the result are not stored.
        """
        keys = list(frames)
        if not keys:
            return {}
        rows = self.query(
            "SELECT any(frame_id), sum(readings), toUnixTimestamp64Milli(min(first_ts)), "
            f"toUnixTimestamp64Milli(max(last_ts)) FROM {self.table('frames')} "
            "WHERE (territory, gateway, sequence) IN {keys:Array(Tuple(String, String, UInt64))} "
            "GROUP BY territory, gateway, sequence",
            {"keys": keys},
        )
        return {str(f): StoredFrame(int(n), int(a), int(b)) for f, n, a, b in rows}


_OS_ERROR = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")
_TIMED_OUT = re.compile(r"timed? ?out", re.IGNORECASE)


def _reason(exc: BaseException) -> str:
    """First line of a ClickHouse/driver message, without the driver's noise.

    A refused connection reads "Connection refused", not urllib3's retry chain.
    """
    text = str(exc).strip()
    if isinstance(exc, OperationalError):
        found = _OS_ERROR.search(text)
        if found:
            return found.group(1).strip()
        if _TIMED_OUT.search(text):
            return "timed out"
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:500]
