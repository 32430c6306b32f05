"""The ClickHouse store of the datacenter: raw readings, rollups, register, ingest bookkeeping.

One API over embedded chDB (``chdb://``) and a ClickHouse server (``http://``), through
clickhouse-connect. Schema: ``docs/storage.md``; migrations: ``infra/clickhouse/migrations``.
"""

from __future__ import annotations

from bocage.store.batch import READINGS_COLUMNS, ReadingsBatch
from bocage.store.register_rows import effective_retention
from bocage.store.settings import StoreSettings
from bocage.store.sketches import FrameReadings, MergedSketch, merged_sketch, sketch_table
from bocage.store.store import Store, StoredFrame, StoreError

__all__ = [
    "READINGS_COLUMNS",
    "FrameReadings",
    "MergedSketch",
    "ReadingsBatch",
    "Store",
    "StoreError",
    "StoreSettings",
    "StoredFrame",
    "effective_retention",
    "merged_sketch",
    "sketch_table",
]
