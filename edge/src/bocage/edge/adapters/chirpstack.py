"""ChirpStack v4 integration events (JSON) → readings and alarms.

ChirpStack publishes one JSON document per event on
``application/<application id>/device/<devEui>/event/<type>`` (MQTT integration), or POSTs
the same document to ``<url>?event=<type>`` (HTTP integration). An *up* event carries the
payload decoded by the device profile's codec in ``object``; each numeric field becomes a
reading. A sensor is matched by ``options.dev_eui`` (or, failing that, by ``deviceInfo
.deviceName`` equal to the sensor id); ``options.fields`` renames codec fields to metrics and
``options.ignore`` lists fields to skip. Boolean fields ``tamper`` and ``fault`` raise alarms;
*log* events of level ERROR raise a device-fault alarm.

Anything else is counted, never fatal: ``bad_json``, ``bad_event``, ``unknown_device``,
``bad_type``.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import msgspec

from bocage.core.events import Alarm, AlarmKind
from bocage.edge.adapters import Sink
from bocage.edge.reading import Reading
from bocage.edge.settings import EdgeSettings, SensorSection

_ALARM_FIELDS: dict[str, AlarmKind] = {"tamper": "tamper", "fault": "device_fault"}


class DeviceInfo(msgspec.Struct, rename="camel"):
    """``deviceInfo`` of a ChirpStack v4 event (fields Bocage uses)."""

    dev_eui: str = ""
    device_name: str = ""


class Event(msgspec.Struct, rename="camel"):
    """A ChirpStack v4 integration event: up, status or log (other fields ignored)."""

    device_info: DeviceInfo = msgspec.field(default_factory=DeviceInfo)
    time: str | None = None
    object: dict[str, Any] | None = None
    f_cnt: int | None = None
    level: str | None = None
    code: str | None = None
    description: str | None = None
    battery_level: float | None = None


_decoder = msgspec.json.Decoder(Event)


def parse_time_ms(text: str | None) -> int | None:
    """Epoch ms of an RFC 3339 time (ChirpStack writes up to nanoseconds), or None."""
    if not text:
        return None
    head, dot, frac = text.partition(".")
    if dot:
        digits = "".join(c for c in frac if c.isdigit())
        zone = frac[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp() * 1000)


class ChirpStackDecoder:
    """Maps ChirpStack events of known devices to the gateway's sensors."""

    def __init__(self, settings: EdgeSettings, sensors: list[SensorSection]) -> None:
        self.territory = settings.gateway.territory
        self.gateway = settings.gateway.id
        self.by_eui: dict[str, SensorSection] = {}
        self.by_name: dict[str, SensorSection] = {}
        for sensor in sensors:
            eui = str(sensor.options.get("dev_eui", "")).lower()
            if eui:
                self.by_eui[eui] = sensor
            self.by_name[sensor.id] = sensor

    def sensor_for(self, event: Event, topic_eui: str = "") -> SensorSection | None:
        """The sensor an event belongs to, or None for an unknown device."""
        eui = (event.device_info.dev_eui or topic_eui).lower()
        return self.by_eui.get(eui) or self.by_name.get(event.device_info.device_name)

    def feed(
        self, sink: Sink, event_type: str, body: bytes, *, topic_eui: str = "",
        redelivered: bool = False,
    ) -> int:
        """Turn one event into readings/alarms pushed to ``sink``; returns readings pushed.

        ``redelivered``: the event may have been fed before (MQTT DUP flag, retained message);
        its readings are pushed as such (the sink drops those it already holds). Its alarms go
        again: alarms are at least once (the datacenter collapses repeats)."""
        try:
            event = _decoder.decode(body)
        except msgspec.ValidationError:
            sink.reject("bad_event")
            return 0
        except msgspec.DecodeError:
            sink.reject("bad_json")
            return 0
        sensor = self.sensor_for(event, topic_eui)
        if sensor is None:
            sink.reject("unknown_device")
            return 0
        now_ms = int(time.time() * 1000)
        time_ms = parse_time_ms(event.time) or now_ms
        if event_type == "log":
            if (event.level or "").upper() == "ERROR":
                sink.alarm(self._alarm(sensor, "device_fault", time_ms, event.description or ""))
            return 0
        if event_type != "up":
            return 0  # join, status, ack, txack...: nothing to measure
        if event.object is None:
            sink.reject("no_decoded_object")
            return 0
        fields: dict[str, str] = sensor.options.get("fields", {})
        ignore = set(sensor.options.get("ignore", ()))
        pushed = 0
        for name, value in event.object.items():
            if name in ignore:
                continue
            if name in _ALARM_FIELDS:
                if value is True:
                    sink.alarm(self._alarm(sensor, _ALARM_FIELDS[name], time_ms, name))
                continue
            if not isinstance(value, int | float):
                sink.reject("bad_type")
                continue
            number = int(value) if isinstance(value, bool) else value
            reading = Reading(sensor.id, fields.get(name, name), time_ms, number)
            sink.push(reading, redelivered=redelivered)
            pushed += 1
        return pushed

    def _alarm(
        self, sensor: SensorSection, kind: AlarmKind, time_ms: int, message: str
    ) -> Alarm:
        return Alarm(
            territory=self.territory, gateway=self.gateway, sensor=sensor.id,
            kind=kind, time_ms=time_ms, message=message,
        )
