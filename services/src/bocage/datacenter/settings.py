"""Settings of a datacenter process (``bocage.toml``), composed from each service's own."""

from __future__ import annotations

import msgspec

from bocage.api import ApiSettings
from bocage.core.register import Register
from bocage.indicators import IndicatorsSettings
from bocage.ingest import IngestSettings
from bocage.store import StoreSettings


class NatsSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How the datacenter reaches NATS."""

    url: str = "nats://127.0.0.1:4222"
    credentials: str | None = None
    """Path of a NATS ``.creds`` file (production); None on the embedded default."""
    replicas: int = 1
    """JetStream replicas of the Bocage streams (3 on a NATS cluster)."""


class DatacenterSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything ``bocage serve`` reads: one section per service, plus the register."""

    nats: NatsSettings = NatsSettings()
    store: StoreSettings = StoreSettings()
    ingest: IngestSettings = IngestSettings()
    indicators: IndicatorsSettings = IndicatorsSettings()
    api: ApiSettings = ApiSettings()
    register: Register = Register()
