"""What happened to every reading, counted: loss is visible, never silent.

The identities the agent maintains (and the tests check):

    produced + derived        = accepted + rejected + filtered + buffered
    accepted + compacted_into = delivered + backlog + compacted + dropped

- ``produced``: readings (or unparseable payloads) the adapters handed to the agent;
- ``derived``: readings the agent created (downsampling aggregates);
- ``rejected[reason]``: malformed input (bad JSON, wrong type, unknown device, absurd value);
- ``filtered[reason]``: valid readings a configured filter removed (deadband, rate limit,
  duplicate, downsampled into an aggregate), or a redelivered MQTT message's readings the
  spool or the open batch already holds (``redelivered``);
- ``buffered``: readings in memory waiting for their batch (lost on kill -9; replayable
  sources resume from the spool's watermarks so they are produced again, and MQTT messages
  are acknowledged only once their readings are durable, so the broker redelivers them);
- ``accepted``: readings written to the spool inside a frame;
- ``delivered``: readings whose frame JetStream acknowledged;
- ``compacted`` / ``dropped``: readings the spool's overflow policy replaced by aggregates
  or discarded (``compacted_into`` aggregates were written in their place).

Plain integers updated on the hot path; Prometheus reads them at scrape time through
:class:`CountersCollector`, so counting costs nothing per reading.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class Counters:
    """Counters of one agent (one gateway)."""

    def __init__(self) -> None:
        self.produced = 0
        self.derived = 0
        self.rejected: Tally[str] = Tally()
        self.filtered: Tally[str] = Tally()
        self.accepted = 0
        self.delivered = 0
        self.compacted = 0
        self.compacted_into = 0
        self.dropped: Tally[str] = Tally()
        self.frames_spooled = 0
        self.frames_delivered = 0
        self.frames_duplicate = 0
        """Frames JetStream reported as already stored (a retry after a lost ack)."""
        self.alarms_spooled = 0
        self.alarms_sent = 0
        self.status_sent = 0
        self.publish_errors: Tally[str] = Tally()
        self.connects = 0
        self.disconnects = 0
        self.bytes_sent = 0
        self.messages_sent = 0
        self.radio_wakeups = 0
        self.energy_mj = 0.0
        self.spool_bytes = 0
        self.backlog_frames = 0
        self.backlog_readings = 0
        self.buffered = 0
        self.battery_pct: float | None = None

    @property
    def rejected_total(self) -> int:
        """Readings refused as malformed, all reasons."""
        return sum(self.rejected.values())

    @property
    def filtered_total(self) -> int:
        """Readings removed by filters, all reasons."""
        return sum(self.filtered.values())

    @property
    def dropped_total(self) -> int:
        """Readings the spool discarded, all reasons."""
        return sum(self.dropped.values())

    def snapshot(self) -> dict[str, object]:
        """Every counter as plain data (for logs, status events and tests)."""
        out: dict[str, object] = {}
        for name, value in vars(self).items():
            out[name] = dict(value) if isinstance(value, Tally) else value
        return out


class CountersCollector(Collector):
    """Exposes a :class:`Counters` as ``bocage_edge_*`` Prometheus metrics."""

    def __init__(self, counters: Counters, *, territory: str, gateway: str) -> None:
        self.counters = counters
        self.labels = {"territory": territory, "gateway": gateway}

    def _counter(self, name: str, doc: str, value: float) -> CounterMetricFamily:
        family = CounterMetricFamily(name, doc, labels=list(self.labels))
        family.add_metric(list(self.labels.values()), value)
        return family

    def _by_reason(self, name: str, doc: str, tally: Tally[str]) -> CounterMetricFamily:
        family = CounterMetricFamily(name, doc, labels=[*self.labels, "reason"])
        for reason, value in sorted(tally.items()):
            family.add_metric([*self.labels.values(), reason], value)
        return family

    def _gauge(self, name: str, doc: str, value: float) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, doc, labels=list(self.labels))
        family.add_metric(list(self.labels.values()), value)
        return family

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """Called by prometheus-client at each scrape."""
        c = self.counters
        yield self._counter("bocage_edge_readings_produced", "Readings from adapters", c.produced)
        yield self._counter(
            "bocage_edge_readings_derived", "Readings created by downsampling", c.derived
        )
        yield self._by_reason(
            "bocage_edge_readings_rejected", "Malformed readings refused", c.rejected
        )
        yield self._by_reason(
            "bocage_edge_readings_filtered", "Readings removed by filters", c.filtered
        )
        yield self._counter("bocage_edge_readings_accepted", "Readings spooled", c.accepted)
        yield self._counter(
            "bocage_edge_readings_delivered", "Readings acknowledged by JetStream", c.delivered
        )
        yield self._counter(
            "bocage_edge_readings_compacted", "Readings replaced by aggregates", c.compacted
        )
        yield self._by_reason(
            "bocage_edge_readings_dropped", "Readings discarded by the spool", c.dropped
        )
        yield self._counter("bocage_edge_frames_spooled", "Frames appended", c.frames_spooled)
        yield self._counter(
            "bocage_edge_frames_delivered", "Frames acknowledged", c.frames_delivered
        )
        yield self._counter("bocage_edge_alarms_sent", "Alarms acknowledged", c.alarms_sent)
        yield self._by_reason(
            "bocage_edge_publish_errors", "Failed publish attempts", c.publish_errors
        )
        yield self._counter("bocage_edge_sent_bytes", "Payload bytes sent upstream", c.bytes_sent)
        yield self._counter("bocage_edge_messages_sent", "Messages sent", c.messages_sent)
        yield self._counter(
            "bocage_edge_radio_wakeups", "Radio wake-ups (estimated)", c.radio_wakeups
        )
        yield self._counter(
            "bocage_edge_energy_joules", "Estimated radio energy", c.energy_mj / 1000.0
        )
        yield self._gauge("bocage_edge_spool_bytes", "Spool size on disk", c.spool_bytes)
        yield self._gauge(
            "bocage_edge_backlog_frames", "Frames waiting for delivery", c.backlog_frames
        )
        yield self._gauge(
            "bocage_edge_backlog_readings", "Readings waiting for delivery", c.backlog_readings
        )
        yield self._gauge(
            "bocage_edge_buffered_readings", "Readings batched in memory", c.buffered
        )
        if c.battery_pct is not None:
            yield self._gauge("bocage_edge_battery_percent", "Battery level", c.battery_pct)
