"""Ingest: JetStream frames from the gateways into ClickHouse, exactly once, with a quarantine.

See ``docs/ingest.md``. Public API: :class:`IngestSettings`, :class:`Ingestor`; the operator
commands ``bocage quarantine list|replay`` are in :mod:`bocage.ingest.cli`.
"""

from __future__ import annotations

from bocage.ingest.ingestor import Ingestor
from bocage.ingest.settings import IngestSettings

__all__ = ["IngestSettings", "Ingestor"]
