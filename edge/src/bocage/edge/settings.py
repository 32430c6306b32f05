"""Settings of one gateway agent (``edge.toml``), validated once at start.

Load with ``bocage.core.settings.load(EdgeSettings, path)``; environment variables override the
file (``BOCAGE_NATS__URL=...``). Every field has a default except the gateway identity, so a
minimal file is::

    [gateway]
    id = "gw-1"
    territory = "29042"

    [[sensors]]
    id = "lamp-1"
    kind = "lighting_cabinet"
    adapter = "simulator"

A wrong value raises :class:`~bocage.core.errors.ConfigError` naming the field, e.g.
``sensors.0.kind``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import msgspec

from bocage.core.register import SENSOR_KINDS
from bocage.core.subjects import valid_token

if TYPE_CHECKING:
    SensorKindName = str
else:
    # Built from the register at import time so that the two never drift apart, while msgspec
    # still rejects an unknown kind with an error that names the field (`sensors.N.kind`).
    SensorKindName = Literal[tuple(SENSOR_KINDS)]

AdapterName = Literal["simulator", "mqtt", "http", "csv"]
FsyncPolicy = Literal["always", "interval", "never"]
LinkKind = Literal["ethernet", "wifi", "cellular", "lora"]
PowerKind = Literal["mains", "solar"]

class GatewaySection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Identity of the gateway: the only settings without a default."""

    id: str
    """Gateway identifier, unique in its territory (a NATS subject token: ``[A-Za-z0-9_-]``)."""
    territory: str
    """INSEE COG code of the commune, or SIREN of the grouping, the gateway belongs to."""
    name: str = ""
    latitude: float = 46.6
    """Where the gateway stands; the simulator computes dusk and dawn from it."""
    longitude: float = 2.4

    def __post_init__(self) -> None:
        for what, token in (("id", self.id), ("territory", self.territory)):
            if not valid_token(token):
                raise ValueError(f"gateway {what} {token!r} must match [A-Za-z0-9_-]{{1,64}}")


class NatsSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the forwarder reaches the datacenter's NATS."""

    url: str = "nats://127.0.0.1:4222"
    credentials: str | None = None
    """Path of a NATS ``.creds`` file (the gateway's own, scoped to its territory)."""
    connect_timeout_s: float = 5.0
    publish_timeout_s: float = 10.0
    backoff_initial_s: float = 0.5
    """First wait after a failed connection; doubles up to ``backoff_max_s``, with full jitter."""
    backoff_max_s: float = 30.0
    ensure_streams: bool = True
    """Create the Bocage streams if missing (idempotent); off when credentials forbid it."""


class SpoolSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The on-disk store of frames waiting for delivery."""

    dir: str = "/var/lib/bocage/spool"
    budget_bytes: int = 256 * 1024 * 1024
    """Disk the spool may use; beyond it the overflow policy compacts, then drops oldest."""
    segment_bytes: int = 0
    """Size at which a segment file is closed; 0 = budget/32 clamped to [64 KiB, 16 MiB]."""
    fsync: FsyncPolicy = "interval"
    """``always``: fsync every append; ``interval``: at most every ``fsync_interval_s``
    (a kill loses nothing, a power cut at most that interval); ``never``: leave it to the OS."""
    fsync_interval_s: float = 1.0
    compact_window_s: float = 900.0
    """Window of the aggregates old raw frames are compacted into when the budget is reached."""
    debug_split_append_s: float = 0.0
    """Fault injection for the crash tests only: write each record in two halves with this
    pause between them, so that a kill -9 can land mid-append. Leave at 0."""

    def __post_init__(self) -> None:
        if self.budget_bytes < 256 * 1024:
            raise ValueError("budget_bytes must be at least 262144 (256 KiB)")
        if self.segment_bytes and not 4096 <= self.segment_bytes <= self.budget_bytes // 4:
            raise ValueError("segment_bytes must be 0 or between 4096 and budget_bytes/4")


class BatchSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """When a group of readings becomes a frame: whichever limit is reached first."""

    max_readings: int = 2000
    max_age_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_readings < 1:
            raise ValueError("max_readings must be at least 1")


class ForwardSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How frames leave the spool."""

    drain_rate: float = 50_000.0
    """Upper bound on readings sent per second (0 = unbounded): after an outage a whole
    territory coming back must not flood the datacenter."""
    max_inflight: int = 32
    """Frames published and awaiting their acknowledgement at once."""
    reconnect_jitter_s: float = 2.0
    """Random delay before draining after a reconnection, so gateways do not drain in step."""
    traceparent: bool = False
    """Stamp each message with a W3C ``traceparent`` header (about 70 bytes a message). Off by
    default: the datacenter derives a frame's trace from its ``Nats-Msg-Id`` anyway; the
    header only adds the id of each publish attempt."""


class MqttSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The MQTT broker a LoRaWAN network server (ChirpStack v4) publishes uplink events on."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    client_id: str = ""
    """Persistent session id (default ``bocage-<gateway>``) so QoS 1 messages wait for us."""
    topic: str = "application/+/device/+/event/+"
    qos: int = 1
    """Subscription QoS: 1 (at least once into the spool: a message is acknowledged once its
    readings are durable in the spool) or 0 (at most once). QoS 2 is refused: the client
    answers PUBREC on receipt, after which the broker no longer redelivers the message."""
    max_unacked: int = 16
    """Messages read but not yet acknowledged (their readings wait for their batch) at which
    the open batch is spooled early, so acknowledgements flow. Keep it below the broker's
    in-flight window (mosquitto ``max_inflight_messages``, 20 by default), which otherwise
    pauses deliveries until the batch closes by age."""
    debug_ack_delay_s: float = 0.0
    """Fault injection for the crash tests only: wait this long between readings becoming
    durable and their messages' acknowledgements, so that a kill -9 can land in between (the
    broker then redelivers messages already spooled). Leave at 0."""

    def __post_init__(self) -> None:
        if self.qos not in (0, 1):
            raise ValueError(
                "qos must be 0 or 1 (QoS 2 is acknowledged before the readings are spooled)"
            )
        if self.max_unacked < 1:
            raise ValueError("max_unacked must be at least 1")


class HttpSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The local HTTP endpoint sensors (or a ChirpStack HTTP integration) push readings to."""

    host: str = "127.0.0.1"
    port: int = 8088
    max_body_bytes: int = 4 * 1024 * 1024


class CsvSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A CSV file to replay: columns ``time`` (ISO 8601 or epoch ms), ``sensor``, ``metric``,
    ``value`` and optionally ``quality``."""

    path: str = ""
    speed: float = 0.0
    """Replay speed relative to the recorded times (0 = as fast as possible)."""
    progress: bool = True
    """Show a progress bar on a terminal."""


class SensorSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One sensor the gateway reads, and through which adapter."""

    id: str
    kind: SensorKindName
    adapter: AdapterName = "simulator"
    name: str = ""
    profile: str = "default"
    """Simulator profile variant (e.g. ``leak`` for a water meter with a night leak)."""
    seed: int = 0
    start_ms: int | None = None
    """Simulator: time of the first sample (default: now)."""
    step_ms: int = 60_000
    """Simulator: interval between two samples."""
    limit: int | None = None
    """Simulator/CSV: stop after this many samples (None = forever)."""
    realtime: bool = True
    """Simulator: pace samples on the wall clock; False replays as fast as possible."""
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    """Adapter-specific options (MQTT ``dev_eui``, field → metric mapping, CSV ``path``...)."""


class MetricFilter(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Filters of one metric (``[filters.power]``) or of one kind's metric
    (``[filters."water_meter.flow"]``). Plausibility comes from the metric spec unless set."""

    min: float | None = None
    max: float | None = None
    deadband: float = 0.0
    """Change-of-value: drop a reading closer than this to the last one sent..."""
    heartbeat_s: float = 900.0
    """...unless the last one sent is older than this."""
    min_interval_s: float = 0.0
    """Rate limit: at most one reading per series in this interval."""
    duplicates: bool = True
    """Drop a reading whose series and timestamp were already seen."""
    downsample_s: float = 0.0
    """Replace raw readings by one aggregate per window (0 = off)."""
    alarm_above: float | None = None
    alarm_below: float | None = None


class LinkSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The uplink: steers batching and accounting (see docs/edge.md, sobriety)."""

    kind: LinkKind = "ethernet"
    daily_budget_bytes: int = 0
    """Metered link: bytes per day the agent may send (0 = unmetered); alarms always go."""
    duty_cycle: float = 0.01
    """LoRa-class link: fraction of time the radio may transmit."""
    bitrate_bps: float = 0.0
    """Link bitrate for the airtime estimate (0 = the kind's default)."""


class PowerSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Power supply; on solar the battery level slows batching and sampling down."""

    kind: PowerKind = "mains"
    battery_file: str | None = None
    """File holding the battery level in percent (e.g. a sysfs ``capacity``)."""
    battery_command: list[str] | None = None
    """Command printing the battery level in percent."""
    low_battery_pct: float = 30.0


class EdgeSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one gateway agent needs. Only ``gateway`` has no default.

    Sections reject unknown keys (a typo names its field); the top level ignores them, because
    ``BOCAGE_<SECTION>__<FIELD>`` variables meant for the datacenter share the environment of
    an all-in-one host.
    """

    gateway: GatewaySection
    nats: NatsSection = msgspec.field(default_factory=NatsSection)
    spool: SpoolSection = msgspec.field(default_factory=SpoolSection)
    batch: BatchSection = msgspec.field(default_factory=BatchSection)
    forward: ForwardSection = msgspec.field(default_factory=ForwardSection)
    sensors: list[SensorSection] = msgspec.field(default_factory=list)
    filters: dict[str, MetricFilter] = msgspec.field(default_factory=dict)
    link: LinkSection = msgspec.field(default_factory=LinkSection)
    power: PowerSection = msgspec.field(default_factory=PowerSection)
    mqtt: MqttSection = msgspec.field(default_factory=MqttSection)
    http: HttpSection = msgspec.field(default_factory=HttpSection)
    csv: CsvSection = msgspec.field(default_factory=CsvSection)
    metrics_port: int = 0
    """Port of the Prometheus endpoint on loopback (0 = off)."""
    metrics_host: str = "127.0.0.1"
    status_interval_s: float = 60.0
    """How often a gateway status event (health and sobriety accounting) is sent."""

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for sensor in self.sensors:
            if sensor.id in seen:
                raise ValueError(f"sensor id {sensor.id!r} appears twice in `sensors`")
            seen.add(sensor.id)
        for key in self.filters:
            kind, _, metric = key.rpartition(".")
            kinds = [SENSOR_KINDS[kind]] if kind in SENSOR_KINDS else list(SENSOR_KINDS.values())
            if kind and kind not in SENSOR_KINDS:
                raise ValueError(f"filter `{key}`: unknown sensor kind {kind!r}")
            if not any(k.metric(metric) for k in kinds):
                raise ValueError(f"filter `{key}`: no sensor kind has a metric {metric!r}")

    def sensor(self, sensor_id: str) -> SensorSection | None:
        """The configured sensor ``sensor_id``, or None."""
        return next((s for s in self.sensors if s.id == sensor_id), None)
