"""JetStream streams Bocage relies on, created idempotently by whoever connects first."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from bocage.core import subjects

DUPLICATE_WINDOW_S = 24 * 3600.0
"""How long JetStream remembers a Nats-Msg-Id: a gateway retrying within it is deduplicated.

Ingest deduplicates again by frame id in ClickHouse, so a retry after the window is still safe.
"""


def main_stream_config(*, replicas: int = 1, max_bytes: int = -1) -> StreamConfig:
    """Configuration of the ``BOCAGE`` stream (frames, alarms, status)."""
    return StreamConfig(
        name=subjects.STREAM,
        subjects=subjects.stream_subjects(),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_S,
        max_bytes=max_bytes,
        # a full stream refuses new messages (the gateways keep them in their spool) rather
        # than silently discarding old ones
        discard=DiscardPolicy.NEW,
        num_replicas=replicas,
    )


def quarantine_stream_config(*, replicas: int = 1) -> StreamConfig:
    """Configuration of the ``BOCAGE_QUARANTINE`` stream (rejected messages with their reason)."""
    return StreamConfig(
        name=subjects.QUARANTINE_STREAM,
        subjects=[f"{subjects.QUARANTINE_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.NEW,
        num_replicas=replicas,
    )


async def ensure_streams(js: JetStreamContext, *, replicas: int = 1) -> None:
    """Create the Bocage streams if missing (safe to call from every process)."""
    for config in (
        main_stream_config(replicas=replicas),
        quarantine_stream_config(replicas=replicas),
    ):
        assert config.name is not None
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            await js.add_stream(config)
