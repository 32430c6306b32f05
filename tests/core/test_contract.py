from __future__ import annotations

import msgspec
import pytest

from bocage.core import events, subjects
from bocage.core.register import SENSOR_KINDS, Gateway, Register, Sensor, Territory


def test_subject_round_trip() -> None:
    s = subjects.subject("36228", "gw-1", "frames")
    assert s == "bocage.36228.gw-1.frames"
    assert subjects.parse(s) == ("36228", "gw-1", "frames")


@pytest.mark.parametrize("bad", ["", "a.b", "a b", "*", ">", "x" * 65])
def test_subject_rejects_tokens_that_would_break_routing(bad: str) -> None:
    with pytest.raises(ValueError, match="subject token"):
        subjects.subject(bad, "gw", "frames")


def test_parse_rejects_foreign_subjects() -> None:
    assert subjects.parse("other.36228.gw.frames") is None
    assert subjects.parse("bocage.36228.gw.unknown") is None
    assert subjects.parse("bocage.36228.frames") is None


def test_quarantine_subject_sanitises_territory() -> None:
    assert subjects.quarantine_subject("a.b", "checksum") == "bocage-quarantine.unknown.checksum"


def test_events_round_trip_and_ignore_unknown_fields() -> None:
    status = events.GatewayStatus(territory="36228", gateway="gw", time_ms=1, bytes_sent=10)
    assert events.decode_status(events.encode(status)) == status
    # a newer gateway may send fields this receiver does not know: they are ignored
    newer = msgspec.msgpack.encode(
        {"territory": "36228", "gateway": "gw", "time_ms": 2, "future": 1}
    )
    assert events.decode_status(newer).time_ms == 2


def test_register_lookups() -> None:
    sensor = Sensor(id="lum-1", kind="lighting_cabinet")
    register = Register(
        territories=(
            Territory(
                code="36228",
                name="Valençay",
                gateways=(Gateway(id="gw", territory="36228", sensors=(sensor,)),),
            ),
        )
    )
    assert register.gateway("36228", "gw") is not None
    assert register.gateway("36001", "gw") is None  # a gateway belongs to one territory only
    assert register.sensors()[0][2].spec.metric("energy") is not None
    assert {k.name for k in SENSOR_KINDS.values()} >= {
        "lighting_cabinet",
        "water_meter",
        "air_quality",
    }
