"""Prometheus metrics of ingest (default registry; labels bounded: result, reason, kind)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FRAMES = Counter(
    "bocage_ingest_frames_total",
    "Frames handled by ingest, by result (stored, duplicate, quarantined, empty).",
    ["result"],
)
READINGS = Counter("bocage_ingest_readings_total", "Readings stored in ClickHouse by ingest.")
QUARANTINED = Counter(
    "bocage_ingest_quarantined_total", "Messages sent to quarantine, by reason.", ["reason"]
)
EVENTS = Counter(
    "bocage_ingest_events_total", "Alarms and gateway status messages stored.", ["kind"]
)
ERRORS = Counter(
    "bocage_ingest_errors_total",
    "Failures that ingest retried or skipped, by stage (insert, quarantine, ack, fetch).",
    ["stage"],
)
INSERT_SECONDS = Histogram(
    "bocage_ingest_insert_seconds",
    "Duration of one batch insert into ClickHouse.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
BATCH_READINGS = Histogram(
    "bocage_ingest_batch_readings",
    "Readings per insert.",
    buckets=(100, 1_000, 10_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_000_000),
)
IN_FLIGHT = Gauge("bocage_ingest_in_flight_messages", "Messages fetched and not yet acknowledged.")
