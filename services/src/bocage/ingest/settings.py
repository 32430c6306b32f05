"""Settings of the ingest service (section ``[ingest]`` of the datacenter settings)."""

from __future__ import annotations

import msgspec


class IngestSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How ingest consumes JetStream and batches inserts into ClickHouse."""

    durable: str = "bocage-ingest"
    """Durable consumer name: every ingest process with the same name shares the work."""
    fetch_frames: int = 256
    """Messages asked for in one pull request."""
    fetch_timeout_s: float = 0.5
    """How long one pull waits for the first message when the stream is idle."""
    batch_readings: int = 250_000
    """An insert is sent once this many readings are pending..."""
    batch_frames: int = 4_096
    """...or this many frames..."""
    batch_age_s: float = 1.0
    """...or when the oldest pending message waited this long (latency when the flow is low)."""
    max_in_flight: int = 8_192
    """Messages delivered but not yet acknowledged, across the consumer (JetStream
    ``max_ack_pending``): the server stops delivering beyond it, so memory stays bounded."""
    ack_wait_s: float = 120.0
    """A message not acknowledged within this time is redelivered (kept alive while inserting)."""
    future_tolerance_s: float = 300.0
    """Readings later than now + this are refused (clock of the gateway is wrong)."""
    oldest_reading: str = "2000-01-01"
    """Readings before this date (UTC) are refused as absurd (a gateway clock at epoch 0)."""
    retry_initial_s: float = 0.2
    """First pause after a failed insert; doubles up to ``retry_max_s``."""
    retry_max_s: float = 10.0
    shutdown_timeout_s: float = 30.0
    """On stop, time allowed to finish the in-flight insert before releasing the messages."""
    metrics_port: int = 0
    """Port of the Prometheus endpoint of an ingest process of its own (0 = none; in
    ``bocage serve all`` the API serves ``/metrics``)."""
    quarantine_payload_max: int = 1_048_576
    """Payloads larger than this are kept in the quarantine stream but truncated in the table."""
